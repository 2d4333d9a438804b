// What a loaded tokenizer knows, whichever file it came from: the pieces, how text becomes the
// string that BPE runs on, how pairs merge, and how ids become text again. Internal to the
// tokenizer; filled by parse_hf_json() or parse_spm_model().
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace jetmoe::tokenizer_detail {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
inline constexpr std::string_view kMetaspace = "\xE2\x96\x81";

// SentencePiece's piece types (sentencepiece_model.proto numbers).
enum class PieceKind : uint8_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// How BPE picks the next merge.
enum class MergeOrder : uint8_t {
  kByScore,  // SentencePiece: any adjacent pair whose concatenation is a piece; highest score first
  kByRank,   // Hugging Face: only listed merges; lowest rank (position in the list) first
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using PieceIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// One step of text normalisation, applied to each stretch of text between special tokens.
struct NormalizerStep {
  enum class Kind : uint8_t {
    kPrepend,           // prepend `to` unless the text is empty (HF Prepend, SPM add_dummy_prefix)
    kReplace,           // replace every `from` by `to`
    kCollapseSpaces,    // SPM remove_extra_whitespaces: trim ' ' at both ends, squeeze runs of ' '
    kStripTrailing,     // remove every `from` at the end
  };
  Kind kind;
  std::string from;
  std::string to;
};

// Hugging Face's Metaspace pre-tokenizer.
struct MetaspaceSplit {
  enum class Prepend : uint8_t { kAlways, kFirst, kNever };
  std::string replacement;
  Prepend prepend = Prepend::kAlways;
  bool split = true;  // split into words before each replacement character
};

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;  // swallow whitespace before the token
  bool rstrip = false;  // swallow whitespace after the token
};

struct MergeRule {
  int32_t rank;
  int32_t result;
};

// How one id turns into text.
struct PieceText {
  enum class Kind : uint8_t { kText, kByte, kSpecial };
  Kind kind = Kind::kText;
  uint8_t byte = 0;           // kByte
  bool leading_space = false; // kText whose text starts with the prepended space to drop
  std::string text;           // kText: '▁' already turned into ' '; kSpecial: the token's text
};

struct TokenizerModel {
  std::string source;  // the file, for messages

  // Vocabulary, indexed by id.
  std::vector<std::string> pieces;
  std::vector<PieceKind> kinds;
  std::vector<float> scores;  // kByScore only
  PieceIndex ids;             // piece -> id (added tokens included)

  // Encoding.
  MergeOrder merge_order = MergeOrder::kByScore;
  std::unordered_map<uint64_t, MergeRule> merges;  // kByRank: (left id << 32 | right id) -> rule
  std::vector<std::string> frozen_symbols;         // SPM user-defined pieces, never merged further
  bool byte_fallback = false;
  std::array<int32_t, 256> byte_ids{};  // -1 where the vocabulary lacks <0xXX>
  bool fuse_unk = true;                 // consecutive unknown characters become one <unk>
  bool ignore_merges = false;           // HF: a word that is a piece is taken whole
  std::vector<NormalizerStep> normalizer;
  std::optional<MetaspaceSplit> metaspace;
  std::vector<AddedToken> added_tokens;
  std::array<std::vector<int32_t>, 256> added_by_first_byte;  // indices into added_tokens, longest first
  bool parse_special_by_default = false;
  std::vector<int32_t> bos_ids;  // added in front by encode(add_bos=true)
  std::vector<int32_t> eos_ids;  // added at the end by encode(add_bos=true) (template suffix)
  int32_t unk_id = -1;
  int32_t bos_id = -1;
  int32_t eos_id = -1;

  // Decoding.
  std::vector<PieceText> texts;  // by id
  bool drop_all_leading_spaces = false;  // SPM remove_extra_whitespaces: not just the first one
  // HF decoders strip the prepended space only at the start of the whole output, so a special
  // token kept as text ("<s>") ends the start; SentencePiece looks through control tokens.
  bool special_text_ends_start = false;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces.size()); }
  std::optional<int32_t> find(std::string_view piece) const {
    const auto it = ids.find(piece);
    if (it == ids.end()) return std::nullopt;
    return it->second;
  }
};

// Parsers of a tokenizer.json and of a SentencePiece .model file's bytes; both throw
// jetmoe::Error naming `source`.
TokenizerModel parse_hf_json(std::string_view bytes, const std::string& source);
TokenizerModel parse_spm_model(std::string_view bytes, const std::string& source);

// Shared by both parsers once pieces and kinds are known: fills byte_ids and texts.
// metaspace_to_space: decoding turns '▁' into ' '; drop_leading_space: the first text piece loses
// a leading ' '; unknown_text: what the unknown piece decodes to (SentencePiece's " ⁇ "), or
// nullopt to treat it like any other piece of its kind.
void finish_model(TokenizerModel& model, bool metaspace_to_space, bool drop_leading_space,
                  std::optional<std::string_view> unknown_text);

// Decoding one id: appends its bytes to `pending` (special tokens only unless skip_special).
// `at_start` tracks whether a text piece was seen yet. Throws on an id out of range.
void append_piece_bytes(const TokenizerModel& model, int32_t id, bool skip_special, bool& at_start,
                        std::string& pending);

// Parses "<0xAB>" (upper- or lower-case hex) into its byte.
std::optional<uint8_t> parse_byte_piece(std::string_view piece);

}  // namespace jetmoe::tokenizer_detail
