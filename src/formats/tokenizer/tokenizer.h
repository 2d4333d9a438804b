// Tokenizer of the Llama / Mistral SentencePiece-BPE family that JetMoE uses: 32000 pieces,
// <unk>=0 <s>=1 </s>=2, byte-fallback pieces <0x00>..<0xFF>, '▁' (U+2581) for spaces and a '▁'
// prepended to the text. Loads a Hugging Face tokenizer.json (merges by rank) or a SentencePiece
// tokenizer.model (merges by piece score); ids match those reference implementations.
//
// Decoding (both formats): byte pieces are gathered into UTF-8 and every byte that is not part of
// a well-formed character becomes U+FFFD; '▁' becomes ' '; the leading '▁' of the first text piece
// is dropped (the prepended space); special tokens (<s>, </s>, and <unk> of a tokenizer.json) are
// written as their text unless skip_special, and are ignored by the leading-space rule.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe {

namespace tokenizer_detail {
struct TokenizerModel;
}

class Tokenizer {
 public:
  // PATH is a tokenizer.json, a tokenizer.model (SentencePiece protobuf), or a model directory
  // containing either (tokenizer.json preferred). Throws jetmoe::Error naming the file and problem.
  static Tokenizer load(const std::string& path);
  // The same from the bytes of a tokenizer.json (text starting with '{') or a tokenizer.model
  // (anything else), e.g. one embedded in a GGUF file; messages name `source`.
  static Tokenizer from_bytes(std::string_view bytes, const std::string& source);

  // Like the reference tokenizers: BOS first when add_bos (for a tokenizer.json, the special
  // tokens its post-processor template adds). Special-token text such as "</s>" is recognised by
  // default for a tokenizer.json (as Hugging Face does) and not for a tokenizer.model (as
  // SentencePiece does). Invalid UTF-8 in `text` is read as U+FFFD per bad byte.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = true) const;
  // With parse_special, special-token text splits the input; each piece of text between special
  // tokens is encoded on its own (with its own prepended '▁', Hugging Face's legacy behaviour).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // Throws jetmoe::Error on an id outside [0, vocab_size()).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  std::string_view piece(int32_t id) const;  // throws on an id out of range
  int32_t vocab_size() const;
  int32_t bos_id() const;  // -1 when the tokenizer has none
  int32_t eos_id() const;  // -1 when the tokenizer has none
  int32_t unk_id() const;  // -1 when the tokenizer has none
  std::optional<int32_t> token_id(std::string_view piece) const;
  bool is_special(int32_t id) const;  // skipped by decode(..., skip_special=true)

 private:
  friend class StreamingDecoder;
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::TokenizerModel> model);
  std::shared_ptr<const tokenizer_detail::TokenizerModel> model_;
};

// Incremental detokenizer for streamed output: push ids one at a time and get back only complete
// UTF-8 text. Never splits a character across outputs (byte-fallback pieces may carry one
// character's bytes over several ids); the concatenation of all outputs and flush() equals
// decode() of all ids. Holds a copy of the tokenizer (cheap: the vocabulary is shared).
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tok, bool skip_special = false);
  std::string push(int32_t id);  // throws jetmoe::Error on an id out of range
  std::string flush();           // what is pending; an incomplete character becomes U+FFFD per byte

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  bool at_start_ = true;  // no text piece seen yet: the next one loses its leading '▁'
  std::string pending_;   // bytes of a character still incomplete
};

}  // namespace jetmoe
