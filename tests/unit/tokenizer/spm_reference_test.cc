// tokenizer.model path against Debian's libsentencepiece (tools/tokenizer/spm_reference.cc) on every
// corpus line, for two small BPE models trained by spm_train:
//   test.model      Llama-like: byte fallback, identity normalizer, no whitespace squeezing
//   test_rew.model  no byte fallback (unknown characters -> <unk>), remove_extra_whitespaces,
//                   user-defined symbols <tool> [[x]] @@ and a control symbol <ctl>
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

class TokenizerModelReference : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerModelReference, IdsMatchLibSentencePiece) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("spm/" + GetParam() + ".model"));
  const auto corpus = tokenizer_corpus();
  const auto expected = expected_ids(read_json_asset("spm/" + GetParam() + ".expected.json"));
  ASSERT_EQ(expected.size(), corpus.size());
  size_t same = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto ids = tok.encode(corpus[i]);  // BOS, special-token text not parsed: like SentencePiece
    if (ids == expected[i]) {
      ++same;
    } else if (same + 20 > i) {  // keep the log readable
      ADD_FAILURE() << "line " << i << " " << show(corpus[i]) << ": " << ids.size() << " ids, reference "
                    << expected[i].size();
    }
  }
  std::cout << GetParam() << ".model: " << same << "/" << corpus.size()
            << " corpus lines encode identically to libsentencepiece\n";
  EXPECT_EQ(same, corpus.size());
}

TEST_P(TokenizerModelReference, DecodeMatchesLibSentencePiece) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("spm/" + GetParam() + ".model"));
  const auto expected = read_json_asset("spm/" + GetParam() + ".expected.json");
  const auto ids = expected_ids(expected);
  const auto decoded = expected.at("decoded").get<std::vector<std::string>>();
  size_t same = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    // SentencePiece never writes control pieces such as <s>: compare with them skipped.
    const std::string ours = tok.decode(ids[i], /*skip_special=*/true);
    if (ours == decoded[i]) {
      ++same;
    } else {
      ADD_FAILURE() << "line " << i << "\n  ours      " << show(ours) << "\n  reference " << show(decoded[i]);
    }
  }
  std::cout << GetParam() << ".model: " << same << "/" << ids.size() << " decodes identical\n";
  EXPECT_EQ(same, ids.size());
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerModelReference, ::testing::Values("test", "test_rew"));

TEST(TokenizerModel, Facts) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("spm/test.model"));
  EXPECT_EQ(tok.vocab_size(), 6000);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.piece(1), "<s>");
  EXPECT_EQ(tok.token_id("<0x41>"), 3 + 0x41);
  EXPECT_TRUE(tok.is_special(2));
  EXPECT_EQ(tok.encode("", true), std::vector<int32_t>{1});
  EXPECT_EQ(tok.encode("", false), std::vector<int32_t>{});
  // SentencePiece does not read special-token text unless asked to.
  const auto literal = tok.encode("a</s>b");
  EXPECT_EQ(std::count(literal.begin(), literal.end(), 2), 0);
  const auto parsed = tok.encode("a</s>b", true, true);
  EXPECT_EQ(std::count(parsed.begin(), parsed.end(), 2), 1);
}

TEST(TokenizerModel, UserDefinedSymbolsStayWhole) {
  const Tokenizer tok = Tokenizer::load(tokenizer_asset("spm/test_rew.model"));
  const auto tool = tok.token_id("<tool>");
  ASSERT_TRUE(tool.has_value());
  const auto ids = tok.encode("call<tool>now", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tool), 1);
}

}  // namespace
}  // namespace jetmoe
