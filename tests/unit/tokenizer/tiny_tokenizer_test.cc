// Behaviour on hand-made tokenizers whose expected ids follow from the reference rules by hand:
// Hugging Face merges by rank, Metaspace splitting and prepend schemes, unknown-token fusing,
// added tokens with lstrip/rstrip, byte fallback; SentencePiece scores and unused pieces.
#include <gtest/gtest.h>

#include "formats/tokenizer/tokenizer.h"
#include "tiny_tokenizer_files.h"

namespace jetmoe {
namespace {

using test::piece;
using test::tiny_json;
using test::tiny_model;
using Ids = std::vector<int32_t>;

class TokenizerTiny : public test::TokenizerFileTest {
 protected:
  Tokenizer load_json(const nlohmann::json& j) { return Tokenizer::load(write("tokenizer.json", j.dump())); }
};

TEST_F(TokenizerTiny, JsonMergesByRank) {
  const Tokenizer tok = load_json(tiny_json());
  // "▁ab▁a": "▁ a" (rank 0) beats "a b" (rank 1), so "ab" never forms.
  EXPECT_EQ(tok.encode("ab a", false), (Ids{5, 4, 5}));
  EXPECT_EQ(tok.encode("c", false), (Ids{2, 0}));  // no byte fallback: <unk>
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.encode("a"), (Ids{5}));  // no post-processor: no BOS is added
  EXPECT_EQ(tok.encode("", false), (Ids{}));

  nlohmann::json swapped = tiny_json();
  swapped["model"]["merges"] = {"a b", "\xE2\x96\x81 a"};
  EXPECT_EQ(load_json(swapped).encode("ab a", false), (Ids{2, 6, 5}));
}

TEST_F(TokenizerTiny, UnknownCharactersFuseOnlyWhenAsked) {
  nlohmann::json j = tiny_json();
  EXPECT_EQ(load_json(j).encode("cc", false), (Ids{2, 0, 0}));  // fuse_unk defaults to false
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(load_json(j).encode("cc", false), (Ids{2, 0}));
}

TEST_F(TokenizerTiny, ByteFallback) {
  nlohmann::json j = tiny_json();
  j["model"]["byte_fallback"] = true;
  j["model"]["vocab"]["<0x63>"] = 7;  // 'c'
  const Tokenizer tok = load_json(j);
  EXPECT_EQ(tok.encode("c", false), (Ids{2, 7}));
  EXPECT_EQ(tok.encode("d", false), (Ids{2, 0}));  // no <0x64> piece: <unk>
}

// "a ▁" ranks before "▁ a": only a whole-text word can merge across a '▁'.
TEST_F(TokenizerTiny, MetaspacePreTokenizerSplits) {
  nlohmann::json j = tiny_json();
  j["normalizer"] = nullptr;
  j["model"]["vocab"]["a\xE2\x96\x81"] = 7;
  j["model"]["merges"] = {"a \xE2\x96\x81", "\xE2\x96\x81 a"};
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", true}};
  EXPECT_EQ(load_json(j).encode("a a", false), (Ids{5, 5}));  // split defaults to true: "▁a" "▁a"
  j["pre_tokenizer"]["split"] = false;
  EXPECT_EQ(load_json(j).encode("a a", false), (Ids{2, 7, 3}));  // "▁a▁a": a▁ first
  // No '▁' is prepended to text that already starts with a space.
  EXPECT_EQ(load_json(j).encode(" a", false), (Ids{5}));
}

TEST_F(TokenizerTiny, MetaspacePrependSchemes) {
  nlohmann::json j = tiny_json();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}};
  EXPECT_EQ(load_json(j).encode("a<s>a", false), (Ids{5, 1, 3}));  // only the input's first text
  j["pre_tokenizer"]["prepend_scheme"] = "always";
  EXPECT_EQ(load_json(j).encode("a<s>a", false), (Ids{5, 1, 5}));
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_EQ(load_json(j).encode("a<s>a", false), (Ids{3, 1, 3}));
}

TEST_F(TokenizerTiny, AddedTokens) {
  nlohmann::json j = tiny_json();
  j["added_tokens"].push_back({{"id", 7}, {"content", "<x>"}, {"special", true}, {"rstrip", true}});
  j["added_tokens"].push_back({{"id", 8}, {"content", "<y>"}, {"special", false}, {"lstrip", true}});
  j["decoder"] = nlohmann::json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
      {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})");
  const Tokenizer tok = load_json(j);
  EXPECT_EQ(tok.vocab_size(), 9);
  EXPECT_EQ(tok.piece(7), "<x>");
  EXPECT_EQ(tok.encode("<x>  a", false), (Ids{7, 5}));           // rstrip swallows the spaces
  EXPECT_EQ(tok.encode("<x>  a", false, false), (Ids{2, 0, 0, 0, 2, 5}));  // special text not parsed
  EXPECT_EQ(tok.encode("a  <y>", false, false), (Ids{5, 8}));     // non-special: always parsed
  EXPECT_FALSE(tok.is_special(8));
  EXPECT_EQ(tok.decode(Ids{7, 5, 8}), "<x> a<y>");  // Strip acts on the start of the whole text
  EXPECT_EQ(tok.decode(Ids{7, 5, 8}, true), "a<y>");
}

TEST_F(TokenizerTiny, ModelMergesByScore) {
  const Tokenizer tok = Tokenizer::load(write("tokenizer.model", tiny_model(2)));
  EXPECT_EQ(tok.encode("a a"), (Ids{1, 5, 5}));
  EXPECT_EQ(tok.encode("b", false), (Ids{4, 0}));
  EXPECT_EQ(tok.encode("bb", false), (Ids{4, 0}));  // SentencePiece fuses unknown runs
  EXPECT_EQ(tok.decode(Ids{1, 5, 0, 5}), "<s>a \xE2\x81\x87  a");  // <unk> is " ⁇ "
}

// An UNUSED piece can be merged through, but is split back into the pair it came from.
TEST_F(TokenizerTiny, ModelUnusedPiecesAreResegmented) {
  const std::string pieces = piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) + piece("a", -1, 1) +
                             piece("\xE2\x96\x81", -2, 1) + piece("\xE2\x96\x81" "a", -3, 5) +
                             piece("\xE2\x96\x81" "ab", -4, 1) + piece("b", -5, 1);
  const std::string model = pieces + test::bytes_field(2, test::varint_field(3, 2));
  const Tokenizer tok = Tokenizer::load(write("tokenizer.model", model));
  EXPECT_EQ(tok.encode("a", false), (Ids{4, 3}));  // "▁a" is unused: back to "▁" "a"
  EXPECT_EQ(tok.encode("ab", false), (Ids{6}));    // but "▁ab" forms through it
}

}  // namespace
}  // namespace jetmoe
