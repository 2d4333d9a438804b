// tokenizer.json path against @lenml/tokenizers (a JS port of Hugging Face tokenizers) on every
// corpus line, and against llama-tokenizer-js (an independent Llama-2 implementation).
#include <gtest/gtest.h>

#include <iostream>

#include "formats/tokenizer/tokenizer.h"
#include "tokenizer_assets.h"

namespace jetmoe {
namespace {

using test::expected_ids;
using test::read_json_asset;
using test::show;
using test::tokenizer_asset;
using test::tokenizer_corpus;

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size() && i < 24; ++i) {
    if (i > 0) text += ',';
    text += std::to_string(ids[i]);
  }
  return "[" + text + (ids.size() > 24 ? ",...]" : "]");
}

class TokenizerJsonReference : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerJsonReference, IdsMatchOnEveryCorpusLine) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset(GetParam() + "/tokenizer.json"));
  const auto corpus = tokenizer_corpus();
  const auto expected = expected_ids(read_json_asset(GetParam() + "/expected.json"));
  ASSERT_EQ(expected.size(), corpus.size());
  size_t same = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto ids = tok.encode(corpus[i]);
    if (ids == expected[i]) {
      ++same;
    } else {
      ADD_FAILURE() << "line " << i << " " << show(corpus[i]) << "\n  ours      " << ids_text(ids)
                    << "\n  reference " << ids_text(expected[i]);
    }
  }
  std::cout << GetParam() << ": " << same << "/" << corpus.size() << " corpus lines encode identically\n";
  RecordProperty("identical_lines", static_cast<int>(same));
  EXPECT_EQ(same, corpus.size());
}

// Decoding with special tokens skipped ("decoded") and kept as text ("decoded_with_special").
void expect_decodes_match(const std::string& asset, const char* field, bool skip_special) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset(asset + "/tokenizer.json"));
  const auto expected = read_json_asset(asset + "/expected.json");
  const auto ids = expected_ids(expected);
  const auto decoded = expected.at(field).get<std::vector<std::string>>();
  ASSERT_EQ(decoded.size(), ids.size()) << field;
  size_t same = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string ours = tok.decode(ids[i], skip_special);
    if (ours == decoded[i]) {
      ++same;
    } else {
      ADD_FAILURE() << "line " << i << " ids " << ids_text(ids[i]) << "\n  ours      " << show(ours)
                    << "\n  reference " << show(decoded[i]);
    }
  }
  std::cout << asset << ": " << same << "/" << ids.size() << " decodes identical (" << field << ")\n";
  EXPECT_EQ(same, ids.size());
}

TEST_P(TokenizerJsonReference, DecodeMatchesReferenceWithSpecialTokensSkipped) {
  expect_decodes_match(GetParam(), "decoded", /*skip_special=*/true);
}

TEST_P(TokenizerJsonReference, DecodeMatchesReferenceWithSpecialTokensKept) {
  expect_decodes_match(GetParam(), "decoded_with_special", /*skip_special=*/false);
}

INSTANTIATE_TEST_SUITE_P(Assets, TokenizerJsonReference,
                         ::testing::Values("mistral", "mistral-pairs", "mistral-metaspace", "llama2"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

// llama-tokenizer-js encodes without recognising special-token text, and gives [] (no BOS) for "".
TEST(TokenizerLlama2, MatchesLlamaTokenizerJsOnCorpus) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("llama2/tokenizer.json"));
  const auto corpus = tokenizer_corpus();
  const auto expected = expected_ids(read_json_asset("llama2/llama_tokenizer_js.json"));
  ASSERT_EQ(expected.size(), corpus.size());
  size_t same = 0, compared = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    if (corpus[i].empty()) continue;
    ++compared;
    const auto ids = tok.encode(corpus[i], /*add_bos=*/true, /*parse_special=*/false);
    if (ids == expected[i]) {
      ++same;
    } else {
      ADD_FAILURE() << "line " << i << " " << show(corpus[i]) << "\n  ours               " << ids_text(ids)
                    << "\n  llama-tokenizer-js " << ids_text(expected[i]);
    }
  }
  std::cout << "llama2 vs llama-tokenizer-js: " << same << "/" << compared << " non-empty lines identical\n";
  EXPECT_EQ(same, compared);
}

// llama-tokenizer-js's own test suite, recorded by tools/tokenizer/extract_assets.mjs.
TEST(TokenizerLlama2, PassesLlamaTokenizerJsTestCases) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("llama2/tokenizer.json"));
  const auto cases = read_json_asset("llama2/js_cases.json");
  ASSERT_GE(cases.at("encode").size(), 10u);
  for (const auto& c : cases.at("encode")) {
    const auto text = c.at("text").get<std::string>();
    EXPECT_EQ(tok.encode(text), c.at("ids").get<std::vector<int32_t>>()) << show(text);
  }
  // Only its decode modes that mean "drop BOS and the prepended space" have an equivalent here.
  int decode_cases = 0;
  for (const auto& c : cases.at("decode")) {
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    const bool drops_bos = c.at("add_bos_token").get<bool>() || ids.empty() || ids[0] != 1;
    if (!c.at("add_preceding_space").get<bool>() || !drops_bos) continue;
    ++decode_cases;
    EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), c.at("text").get<std::string>()) << ids_text(ids);
  }
  EXPECT_GE(decode_cases, 10);
}

// The JetMoE spec's HF integration test feeds these ids; they are Llama-2's pieces for this text.
TEST(TokenizerLlama2, SpecIntegrationPrompt) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("llama2/tokenizer.json"));
  const std::vector<int32_t> ids = {1, 306, 4658, 278, 6593, 310, 2834, 338};
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "I believe the meaning of life is");
  EXPECT_EQ(tok.encode("I believe the meaning of life is"), ids);
}

TEST(TokenizerJson, VocabularyFacts) {
  for (const std::string name : {"mistral", "llama2"}) {
    const Tokenizer tok = Tokenizer::load(tokenizer_asset(name + "/tokenizer.json"));
    EXPECT_EQ(tok.vocab_size(), 32000) << name;
    EXPECT_EQ(tok.unk_id(), 0) << name;
    EXPECT_EQ(tok.bos_id(), 1) << name;
    EXPECT_EQ(tok.eos_id(), 2) << name;
    EXPECT_EQ(tok.piece(2), "</s>") << name;
    EXPECT_EQ(tok.piece(3), "<0x00>") << name;
    EXPECT_EQ(tok.piece(258), "<0xFF>") << name;
    EXPECT_EQ(tok.token_id("<0x0A>"), 13) << name;
    EXPECT_EQ(tok.token_id("no such piece"), std::nullopt) << name;
    EXPECT_TRUE(tok.is_special(1));
    EXPECT_FALSE(tok.is_special(13));
    // A directory is loaded through its tokenizer.json.
    EXPECT_EQ(Tokenizer::load(tokenizer_asset(name)).encode("Hello"), tok.encode("Hello")) << name;
  }
}

// Special-token text is recognised by default for tokenizer.json (as in Hugging Face), and can be
// turned off; text between special tokens gets its own prepended '▁' (legacy Llama behaviour).
TEST(TokenizerJson, SpecialTokensInText) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("llama2/tokenizer.json"));
  const auto hello = tok.encode("Hello", false);
  const auto world = tok.encode("world", false);
  std::vector<int32_t> expected = {1};
  expected.insert(expected.end(), hello.begin(), hello.end());
  expected.push_back(2);
  expected.insert(expected.end(), world.begin(), world.end());
  EXPECT_EQ(tok.encode("Hello</s>world"), expected);
  EXPECT_EQ(tok.encode("Hello</s>world", true, true), expected);
  const auto literal = tok.encode("Hello</s>world", true, false);
  EXPECT_EQ(std::count(literal.begin(), literal.end(), 2), 0);
  EXPECT_EQ(tok.decode(literal), "<s> Hello</s>world");
  EXPECT_EQ(tok.decode(expected), "<s> Hello</s> world");
  EXPECT_EQ(tok.decode(expected, /*skip_special=*/true), "Hello world");
}

}  // namespace
}  // namespace jetmoe
