// Helpers for the data tests: a scratch directory per test, a tiny character-level tokenizer whose
// ids are easy to compute by hand, and shard directories written straight from token vectors.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/data_manifest.h"
#include "train/data_shard.h"

namespace jetmoe::test {

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("jetmoe_data_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write(const std::string& name, const std::string& bytes) {
    std::filesystem::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return path(name);
  }

  // A shard directory holding `tokens` in shards of at most `shard_tokens`.
  std::string write_source(const std::string& name, const std::vector<int32_t>& tokens, int64_t vocab_size,
                           size_t shard_tokens = 1000) {
    const std::string dir = path(name);
    std::filesystem::create_directories(dir);
    ShardManifest manifest;
    manifest.tokenizer_file = "synthetic";
    manifest.tokenizer_hash = "0000000000000000";
    manifest.vocab_size = vocab_size;
    manifest.eos_id = 0;
    for (size_t begin = 0; begin < tokens.size(); begin += shard_tokens) {
      const size_t count = std::min(shard_tokens, tokens.size() - begin);
      const std::string file = "shard-" + std::to_string(manifest.shards.size()) + ".bin";
      write_token_shard(dir + "/" + file, std::span(tokens).subspan(begin, count), vocab_size);
      manifest.shards.push_back({file, int64_t(count)});
    }
    write_shard_manifest(dir, manifest);
    return dir;
  }

  std::filesystem::path dir_;
};

// <unk>=0 <s>=1 </s>=2 '▁'=3 'a'..'z'=4..29, no merges: a text's ids are its characters, with
// '▁' for the prepended space and for every space; anything else is <unk>.
inline std::string char_tokenizer_json() {
  std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3)";
  for (char c = 'a'; c <= 'z'; ++c) vocab += str_cat(", \"", c, "\": ", 4 + (c - 'a'));
  return R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": false, "vocab": {)" +
         vocab + R"(}, "merges": []}
  })";
}

// The ids char_tokenizer_json() gives `text` (no BOS), computed independently of the tokenizer.
inline std::vector<int32_t> char_ids(const std::string& text) {
  std::vector<int32_t> ids = {3};
  for (const char c : text) ids.push_back(c == ' ' ? 3 : c >= 'a' && c <= 'z' ? 4 + (c - 'a') : 0);
  return ids;
}

inline constexpr int32_t kCharEos = 2;
inline constexpr int64_t kCharVocab = 30;

}  // namespace jetmoe::test
