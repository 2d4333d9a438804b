// Small hand-made tokenizer files for behaviour and error tests: a 7-piece tokenizer.json, a
// protobuf writer for crafting tokenizer.model files, and a fixture with a scratch directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "formats/tokenizer/tokenizer.h"

namespace jetmoe::test {

class TokenizerFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("jetmoe_tokenizer_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path.string();
  }

  // Loading must throw jetmoe::Error whose message names the file and contains `needle`.
  void expect_error(const std::string& path, const std::string& needle) {
    try {
      Tokenizer::load(path);
      ADD_FAILURE() << path << " loaded, expected an error containing '" << needle << "'";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find(needle), std::string::npos) << "'" << needle << "' not in: " << message;
    }
  }

  std::filesystem::path dir_;
};

// A small valid tokenizer.json to break one part at a time.
inline nlohmann::json tiny_json() {
  return nlohmann::json::parse(R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": false,
              "vocab": {"<unk>": 0, "<s>": 1, "▁": 2, "a": 3, "b": 4, "▁a": 5, "ab": 6},
              "merges": ["▁ a", "a b"]}
  })");
}

// --- tokenizer.model: a tiny protobuf writer to craft messages ---

inline std::string varint(uint64_t v) {
  std::string out;
  do {
    uint8_t byte = v & 0x7F;
    v >>= 7;
    if (v) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (v);
  return out;
}
inline std::string key(int field, int wire_type) { return varint((uint64_t(field) << 3) | wire_type); }
inline std::string bytes_field(int field, const std::string& payload) { return key(field, 2) + varint(payload.size()) + payload; }
inline std::string varint_field(int field, uint64_t v) { return key(field, 0) + varint(v); }
inline std::string piece(const std::string& text, float score, int type) {
  std::string score_bytes(4, '\0');
  std::memcpy(score_bytes.data(), &score, 4);
  return bytes_field(1, bytes_field(1, text) + key(2, 5) + score_bytes + varint_field(3, type));
}
inline std::string tiny_model(int model_type, const std::string& trainer_extra = "") {
  const std::string pieces = piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) + piece("a", -1, 1) +
                             piece("\xE2\x96\x81", -2, 1) + piece("\xE2\x96\x81" "a", -3, 1);
  const std::string trainer = bytes_field(2, varint_field(3, model_type) + trainer_extra);
  const std::string normalizer = bytes_field(3, bytes_field(1, "identity") + varint_field(4, 0));
  return pieces + trainer + normalizer;
}

}  // namespace jetmoe::test
