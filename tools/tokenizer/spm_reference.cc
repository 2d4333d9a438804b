// Reference ids for the .model tests, computed by Debian's libsentencepiece.
// Reads a JSON array of strings and writes {"reference", "ids": [[bos, ...]], "decoded": [...]}
// where ids = Encode(line) with the "bos" extra option and decoded = DecodeIds(ids).
//
// build: g++ -std=c++17 -O1 spm_reference.cc -lsentencepiece -o spm_reference
// usage: spm_reference MODEL CORPUS.json OUT.json

#include <sentencepiece_processor.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: spm_reference MODEL CORPUS.json OUT.json\n";
    return 2;
  }
  sentencepiece::SentencePieceProcessor processor;
  if (const auto status = processor.Load(argv[1]); !status.ok()) {
    std::cerr << argv[1] << ": " << status.ToString() << "\n";
    return 1;
  }
  if (const auto status = processor.SetEncodeExtraOptions("bos"); !status.ok()) {
    std::cerr << status.ToString() << "\n";
    return 1;
  }
  std::ifstream corpus_file(argv[2]);
  const auto corpus = nlohmann::json::parse(corpus_file);

  nlohmann::json ids = nlohmann::json::array();
  nlohmann::json decoded = nlohmann::json::array();
  for (const auto& line : corpus) {
    std::vector<int> line_ids;
    if (const auto status = processor.Encode(line.get<std::string>(), &line_ids); !status.ok()) {
      std::cerr << "encode failed: " << status.ToString() << "\n";
      return 1;
    }
    decoded.push_back(processor.DecodeIds(line_ids));
    ids.push_back(line_ids);
  }
  nlohmann::json out = {{"reference", "libsentencepiece"},
                        {"ids", ids},
                        {"decoded", decoded}};
  std::ofstream(argv[3]) << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::cout << "spm_reference: " << ids.size() << " lines -> " << argv[3] << "\n";
  return 0;
}
