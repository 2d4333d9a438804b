// Broken, hostile or unsupported tokenizer files give jetmoe::Error naming the file, never a crash.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <random>

#include "core/error.h"
#include "formats/tokenizer/tokenizer.h"
#include "tiny_tokenizer_files.h"
#include "tokenizer_assets.h"

namespace jetmoe {
namespace {

using test::bytes_field;
using test::key;
using test::piece;
using test::tiny_json;
using test::tiny_model;
using test::tokenizer_asset;
using test::varint;
using test::varint_field;

class TokenizerInvalidInput : public test::TokenizerFileTest {};

TEST_F(TokenizerInvalidInput, BrokenJson) {
  expect_error(write("a.json", "this is not json"), "not valid JSON");
  expect_error(write("b.json", ""), "not valid JSON");
  expect_error(write("c.json", "[1, 2, 3]"), "not a JSON object");
  expect_error(write("d.json", "{}"), "no 'model' object");
  const std::string real = tiny_json().dump();
  expect_error(write("e.json", real.substr(0, real.size() / 2)), "not valid JSON");
}

TEST_F(TokenizerInvalidInput, UnsupportedOrInconsistentJson) {
  const auto with = [&](const std::string& name, auto change) {
    nlohmann::json j = tiny_json();
    change(j);
    return write(name, j.dump());
  };
  expect_error(with("type.json", [](auto& j) { j["model"]["type"] = "Unigram"; }), "\"Unigram\" is not supported");
  expect_error(with("vocab.json", [](auto& j) { j["model"].erase("vocab"); }), "no 'vocab'");
  expect_error(with("empty_vocab.json", [](auto& j) { j["model"]["vocab"] = nlohmann::json::object(); }),
               "the vocabulary is empty");
  expect_error(with("merges.json", [](auto& j) { j["model"].erase("merges"); }), "no 'merges'");
  expect_error(with("merge_piece.json", [](auto& j) { j["model"]["merges"].push_back("x y"); }),
               "'x' is not in the vocabulary");
  expect_error(with("merge_result.json", [](auto& j) { j["model"]["merges"].push_back("b a"); }),
               "'ba' is not in the vocabulary");
  expect_error(with("merge_format.json", [](auto& j) { j["model"]["merges"].push_back(7); }), "merges[2]");
  expect_error(with("vocab_id.json", [](auto& j) { j["model"]["vocab"]["c"] = 99; }), "ids must be");
  expect_error(with("vocab_dup.json", [](auto& j) { j["model"]["vocab"]["b"] = 3; }), "given to both");
  expect_error(with("normalizer.json", [](auto& j) { j["normalizer"] = {{"type", "NFKC"}}; }), "'NFKC' is not supported");
  expect_error(with("pre.json", [](auto& j) { j["pre_tokenizer"] = {{"type", "ByteLevel"}}; }),
               "'ByteLevel' is not supported");
  expect_error(with("regex.json", [](auto& j) { j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", "_"}}; }),
               "regular expressions");
  expect_error(with("added.json", [](auto& j) { j["added_tokens"].push_back({{"id", 5000}, {"content", "<x>"}}); }),
               "'id' must be");
  expect_error(with("unk.json", [](auto& j) { j["model"]["unk_token"] = "<nope>"; }), "'<nope>' is not in the vocabulary");
  expect_error(with("flag.json", [](auto& j) { j["model"]["byte_fallback"] = "yes"; }), "must be true or false");
}

TEST_F(TokenizerInvalidInput, UnsupportedModels) {
  expect_error(write("unigram.model", tiny_model(1)), "UNIGRAM");
  expect_error(write("char.model", tiny_model(4)), "only BPE");
  expect_error(write("default.model", tiny_model(2).substr(0, 0) + piece("<unk>", 0, 2)), "UNIGRAM");
  expect_error(write("charsmap.model", tiny_model(2) + bytes_field(3, bytes_field(2, "xyz"))), "precompiled");
  expect_error(write("bos.model", tiny_model(2, varint_field(41, 77))), "bos_id is 77");
  expect_error(write("unk.model", tiny_model(2, varint_field(40, 3))), "unk_id is 3");
  expect_error(write("type.model", tiny_model(2) + piece("zz", 0, 9)), "unknown type 9");
  expect_error(write("dup.model", tiny_model(2) + piece("a", 0, 1)), "appears twice");
  expect_error(write("empty.model", ""), "no pieces");
  expect_error(write("nopiece.model", bytes_field(1, varint_field(3, 1)) + tiny_model(2)), "has no text");
}

TEST_F(TokenizerInvalidInput, MalformedProtobuf) {
  expect_error(write("varint.model", key(1, 0) + std::string(11, '\xFF')), "varint overflows 64 bits");
  expect_error(write("varint_end.model", key(1, 0) + "\xFF\xFF"), "truncated varint");
  expect_error(write("key.model", "\x80"), "truncated varint");
  expect_error(write("length.model", key(1, 2) + varint(1000) + "abc"), "claims 1000 bytes");
  expect_error(write("group.model", key(7, 3)), "unsupported wire type 3");
  expect_error(write("wire7.model", key(7, 7)), "unsupported wire type 7");
  expect_error(write("fixed.model", key(9, 5) + "ab"), "truncated 32-bit value");
  expect_error(write("field0.model", key(0, 0) + varint(1)), "invalid field number 0");
  expect_error(write("wrongwire.model", varint_field(1, 5)), "ModelProto.pieces");
  expect_error(write("score.model", bytes_field(1, bytes_field(1, "a") + varint_field(2, 1)) + tiny_model(2)),
               "SentencePiece.score");
  expect_error(write("nested.model", bytes_field(1, key(1, 2) + varint(50) + "x")), "claims 50 bytes");
}

// Every prefix of a real model is either an error or (never, in practice) a valid model: no crash.
TEST_F(TokenizerInvalidInput, TruncatedRealModels) {
  std::ifstream in(tokenizer_asset("spm/test.model"), std::ios::binary);
  const std::string model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(model.size(), 1000u);
  int errors = 0;
  for (size_t length = 0; length < model.size(); length += (length < 64 ? 1 : 977)) {
    try {
      Tokenizer::load(write("cut.model", model.substr(0, length)));
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
  std::ifstream json_in(tokenizer_asset("mistral/tokenizer.json"), std::ios::binary);
  const std::string json((std::istreambuf_iterator<char>(json_in)), std::istreambuf_iterator<char>());
  for (const size_t length : {size_t{1}, json.size() / 3, json.size() - 2}) {
    expect_error(write("cut.json", json.substr(0, length)), "not valid JSON");
  }
}

// Random corruption: loading and encoding either work or throw jetmoe::Error.
TEST_F(TokenizerInvalidInput, CorruptedModelsNeverCrash) {
  std::ifstream in(tokenizer_asset("spm/test.model"), std::ios::binary);
  const std::string model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 random(1234);
  int loaded = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::string bad = model;
    for (int flips = 1 + trial % 4; flips > 0; --flips) bad[random() % bad.size()] = static_cast<char>(random());
    try {
      const Tokenizer tok = Tokenizer::load(write("bad.model", bad));
      const auto ids = tok.encode("Hello world, \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\xA6\x99!");
      tok.decode(ids);
      ++loaded;
    } catch (const Error&) {
    }
  }
  std::cout << loaded << "/200 corrupted models still loaded\n";
}

TEST_F(TokenizerInvalidInput, MissingFiles) {
  expect_error((dir_ / "nope.json").string(), "no such tokenizer file");
  expect_error(dir_.string(), "neither tokenizer.json nor tokenizer.model");
  // A directory with only tokenizer.model loads it; with both, tokenizer.json wins.
  write("tokenizer.model", tiny_model(2));
  EXPECT_EQ(Tokenizer::load(dir_.string()).vocab_size(), 6);
  write("tokenizer.json", tiny_json().dump());
  EXPECT_EQ(Tokenizer::load(dir_.string()).vocab_size(), 7);
}

}  // namespace
}  // namespace jetmoe
