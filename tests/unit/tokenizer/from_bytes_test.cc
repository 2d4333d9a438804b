// Tokenizer::from_bytes (a tokenizer embedded in a GGUF file) against Tokenizer::load of the same
// file: both formats give the same ids and text; broken bytes give an error naming the source.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "formats/tokenizer/tokenizer.h"
#include "tokenizer_assets.h"

namespace jetmoe {
namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void expect_same_tokenizer(const std::string& relative) {
  const std::string path = test::tokenizer_asset(relative);
  const Tokenizer from_file = Tokenizer::load(path);
  const Tokenizer from_bytes = Tokenizer::from_bytes(file_bytes(path), "embedded " + relative);
  ASSERT_EQ(from_bytes.vocab_size(), from_file.vocab_size()) << relative;
  EXPECT_EQ(from_bytes.bos_id(), from_file.bos_id()) << relative;
  EXPECT_EQ(from_bytes.eos_id(), from_file.eos_id()) << relative;
  int lines = 0;
  for (const std::string& line : test::tokenizer_corpus()) {
    const std::vector<int32_t> ids = from_file.encode(line);
    EXPECT_EQ(from_bytes.encode(line), ids) << relative << ": " << line;
    EXPECT_EQ(from_bytes.decode(ids), from_file.decode(ids)) << relative << ": " << line;
    if (++lines == 200) break;
  }
  EXPECT_GT(lines, 0);
}

TEST(TokenizerFromBytes, HuggingFaceJsonMatchesLoadingTheFile) { expect_same_tokenizer("llama2/tokenizer.json"); }

TEST(TokenizerFromBytes, SentencePieceModelMatchesLoadingTheFile) { expect_same_tokenizer("spm/test.model"); }

TEST(TokenizerFromBytes, BrokenBytesNameTheSource) {
  for (const std::string& bytes : {std::string("{ not json"), std::string(""), std::string("\x0a\x05", 2)}) {
    try {
      Tokenizer::from_bytes(bytes, "model.gguf (tokenizer.huggingface.json)");
      ADD_FAILURE() << "accepted " << bytes.size() << " broken bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("model.gguf (tokenizer.huggingface.json)"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace jetmoe
