// Generated tokenizer test assets (tools/tokenizer/fetch_assets.sh): vocabularies, the corpus, and
// the ids that the reference implementations produced for it. Missing assets fail the test with a
// message saying how to make them.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace jetmoe::test {

inline std::string tokenizer_asset_dir() {
  if (const char* dir = std::getenv("JETMOE_TOKENIZER_ASSETS"); dir != nullptr && *dir != '\0') return dir;
  return std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
}

// Full path of an asset; throws (failing the test) when it is missing.
inline std::string tokenizer_asset(const std::string& relative) {
  const std::string path = tokenizer_asset_dir() + "/" + relative;
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("missing tokenizer test asset " + path + ": run tools/tokenizer/fetch_assets.sh " +
                             tokenizer_asset_dir() + " (or set JETMOE_TOKENIZER_ASSETS)");
  }
  return path;
}

inline nlohmann::json read_json_asset(const std::string& relative) {
  std::ifstream in(tokenizer_asset(relative));
  return nlohmann::json::parse(in);
}

inline std::vector<std::string> tokenizer_corpus() {
  return read_json_asset("corpus.json").get<std::vector<std::string>>();
}

// Ids per corpus line from an expected.json ({"ids": [[...], ...], "decoded": [...]}).
inline std::vector<std::vector<int32_t>> expected_ids(const nlohmann::json& expected) {
  return expected.at("ids").get<std::vector<std::vector<int32_t>>>();
}

// Whether a line writes a special token's text ("<s>", "</s>", "<unk>").
inline bool has_special_text(const std::string& line) {
  return line.find("<s>") != std::string::npos || line.find("</s>") != std::string::npos ||
         line.find("<unk>") != std::string::npos;
}

// JSON-escaped and shortened, for failure messages.
inline std::string show(const std::string& line) {
  std::string shown = nlohmann::json(line).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return shown.size() > 120 ? shown.substr(0, 117) + "..." : shown;
}

}  // namespace jetmoe::test
