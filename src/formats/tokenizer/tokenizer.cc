#include "formats/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/tokenizer/bpe.h"
#include "formats/tokenizer/tokenizer_model.h"
#include "formats/tokenizer/utf8.h"

namespace jetmoe {
namespace tokenizer_detail {

std::optional<uint8_t> parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece.back() != '>') return std::nullopt;
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int high = hex(piece[3]);
  const int low = hex(piece[4]);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<uint8_t>(high * 16 + low);
}

namespace {

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string result;
  size_t start = 0;
  for (size_t hit = text.find(from); hit != std::string::npos; hit = text.find(from, start)) {
    result.append(text, start, hit - start).append(to);
    start = hit + from.size();
  }
  if (start == 0) return;
  result.append(text, start);
  text = std::move(result);
}

// SentencePiece's remove_extra_whitespaces: no ' ' at either end, no two ' ' in a row.
void collapse_spaces(std::string& text) {
  std::string result;
  bool previous_space = true;  // drops leading spaces
  for (const char c : text) {
    if (c == ' ' && previous_space) continue;
    result.push_back(c);
    previous_space = c == ' ';
  }
  if (!result.empty() && result.back() == ' ') result.pop_back();
  text = std::move(result);
}

std::string byte_piece_name(int byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
}

}  // namespace

void finish_model(TokenizerModel& model, bool metaspace_to_space, bool drop_leading_space,
                  std::optional<std::string_view> unknown_text) {
  for (int byte = 0; byte < 256; ++byte) model.byte_ids[byte] = model.find(byte_piece_name(byte)).value_or(-1);

  model.texts.assign(model.pieces.size(), PieceText{});
  for (size_t id = 0; id < model.pieces.size(); ++id) {
    PieceText& text = model.texts[id];
    const std::string& piece = model.pieces[id];
    const PieceKind kind = model.kinds[id];
    if (kind == PieceKind::kByte && parse_byte_piece(piece)) {
      text.kind = PieceText::Kind::kByte;
      text.byte = *parse_byte_piece(piece);
    } else if (kind == PieceKind::kControl) {
      text.kind = PieceText::Kind::kSpecial;
      text.text = piece;
    } else if (kind == PieceKind::kUnknown && unknown_text) {
      text.text = std::string(*unknown_text);
    } else {
      text.text = piece;
      if (metaspace_to_space) replace_all(text.text, kMetaspace, " ");
      text.leading_space = drop_leading_space && text.text.starts_with(' ');
    }
  }

  for (auto& list : model.added_by_first_byte) list.clear();
  for (size_t i = 0; i < model.added_tokens.size(); ++i) {
    const std::string& content = model.added_tokens[i].content;
    if (!content.empty()) model.added_by_first_byte[static_cast<uint8_t>(content[0])].push_back(static_cast<int32_t>(i));
  }
  for (auto& list : model.added_by_first_byte) {
    std::stable_sort(list.begin(), list.end(), [&](int32_t a, int32_t b) {
      return model.added_tokens[a].content.size() > model.added_tokens[b].content.size();
    });
  }
}

void append_piece_bytes(const TokenizerModel& model, int32_t id, bool skip_special, bool& at_start,
                        std::string& pending) {
  if (id < 0 || id >= model.vocab_size()) {
    fail(model.source, ": token id ", id, " is out of range [0, ", model.vocab_size(), ")");
  }
  const PieceText& text = model.texts[id];
  switch (text.kind) {
    case PieceText::Kind::kSpecial:
      if (skip_special) return;
      pending += text.text;
      if (model.special_text_ends_start && !text.text.empty()) at_start = false;
      return;
    case PieceText::Kind::kByte:
      pending.push_back(static_cast<char>(text.byte));
      break;
    case PieceText::Kind::kText: {
      const bool drop = at_start && text.leading_space;
      pending.append(text.text, drop ? 1 : 0);
      // Text that decodes to nothing after dropping its space keeps the rule going only when
      // every leading space is to go (SentencePiece with remove_extra_whitespaces).
      if (drop && text.text.size() == 1 && model.drop_all_leading_spaces) return;
      break;
    }
  }
  at_start = false;
}

namespace {

// A stretch of the input: text to encode, or one added token.
struct Section {
  std::string_view text;
  int32_t token = -1;  // index into added_tokens
  size_t offset = 0;   // in the input
};

std::vector<Section> split_on_added_tokens(const TokenizerModel& model, std::string_view text, bool parse_special) {
  std::vector<Section> sections;
  size_t text_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    int32_t match = -1;
    for (const int32_t index : model.added_by_first_byte[static_cast<uint8_t>(text[pos])]) {
      const AddedToken& token = model.added_tokens[index];
      if ((parse_special || !token.special) && text.substr(pos).starts_with(token.content)) {
        match = index;  // the list is longest first
        break;
      }
    }
    if (match < 0) {
      ++pos;
      continue;
    }
    if (pos > text_start) sections.push_back({text.substr(text_start, pos - text_start), -1, text_start});
    sections.push_back({{}, match, pos});
    pos += model.added_tokens[match].content.size();
    text_start = pos;
  }
  if (text_start < text.size()) sections.push_back({text.substr(text_start), -1, text_start});

  // lstrip / rstrip: the token swallows the whitespace beside it.
  const auto trim = [](std::string_view s, bool front) {
    while (!s.empty()) {
      size_t pos = front ? 0 : s.size() - 1;
      if (!front) {
        while (pos > 0 && (static_cast<uint8_t>(s[pos]) & 0xC0) == 0x80) --pos;
      }
      const size_t length = utf8::valid_char_length(s, pos);
      if (length == 0 || !utf8::is_whitespace(utf8::decode_char(s, pos, length))) break;
      s = front ? s.substr(length) : s.substr(0, pos);
    }
    return s;
  };
  for (size_t i = 0; i < sections.size(); ++i) {
    if (sections[i].token < 0) continue;
    const AddedToken& token = model.added_tokens[sections[i].token];
    if (token.lstrip && i > 0 && sections[i - 1].token < 0) sections[i - 1].text = trim(sections[i - 1].text, false);
    if (token.rstrip && i + 1 < sections.size() && sections[i + 1].token < 0) {
      sections[i + 1].text = trim(sections[i + 1].text, true);
    }
  }
  return sections;
}

// Normalises one stretch of text, pre-tokenizes it into words and runs BPE on each.
void encode_text(const TokenizerModel& model, std::string_view section, bool starts_input, std::vector<int32_t>& out) {
  std::string text(section);
  for (const NormalizerStep& step : model.normalizer) {
    switch (step.kind) {
      case NormalizerStep::Kind::kPrepend:
        if (!text.empty()) text.insert(0, step.to);
        break;
      case NormalizerStep::Kind::kReplace:
        replace_all(text, step.from, step.to);
        break;
      case NormalizerStep::Kind::kCollapseSpaces:
        collapse_spaces(text);
        break;
      case NormalizerStep::Kind::kStripTrailing:
        while (!step.from.empty() && text.ends_with(step.from)) text.resize(text.size() - step.from.size());
        break;
    }
  }
  if (text.empty()) return;
  if (!model.metaspace) {
    bpe_encode_word(model, text, out);
    return;
  }

  const MetaspaceSplit& metaspace = *model.metaspace;
  const std::string_view mark = metaspace.replacement;
  replace_all(text, " ", mark);
  const bool prepend = metaspace.prepend == MetaspaceSplit::Prepend::kAlways ||
                       (metaspace.prepend == MetaspaceSplit::Prepend::kFirst && starts_input);
  if (prepend && !text.starts_with(mark)) text.insert(0, mark);
  if (!metaspace.split) {
    bpe_encode_word(model, text, out);
    return;
  }
  // Words start at each replacement character (HF's MergedWithNext split).
  const std::string_view all = text;
  size_t word_start = 0;
  for (size_t hit = all.find(mark, 1); hit != std::string_view::npos; hit = all.find(mark, hit + mark.size())) {
    bpe_encode_word(model, all.substr(word_start, hit - word_start), out);
    word_start = hit;
  }
  bpe_encode_word(model, all.substr(word_start), out);
}

// JSON text starts with '{' after whitespace; a SentencePiece protobuf never does (its first
// byte is a field tag).
bool looks_like_json(std::string_view bytes) {
  for (char c : bytes)
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return c == '{';
  return false;
}

}  // namespace
}  // namespace tokenizer_detail

using tokenizer_detail::TokenizerModel;

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerModel> model) : model_(std::move(model)) {}

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  std::string file = path;
  if (fs::is_directory(path, error)) {
    const fs::path json = fs::path(path) / "tokenizer.json";
    const fs::path model = fs::path(path) / "tokenizer.model";
    if (fs::exists(json, error)) {
      file = json.string();
    } else if (fs::exists(model, error)) {
      file = model.string();
    } else {
      fail(path, ": directory contains neither tokenizer.json nor tokenizer.model");
    }
  } else if (!fs::exists(path, error)) {
    fail(path, ": no such tokenizer file or directory");
  }
  const MappedFile mapped(file);
  const std::string_view bytes(reinterpret_cast<const char*>(mapped.data()), mapped.size());
  const std::string extension = fs::path(file).extension().string();
  const bool json = extension == ".json" || (extension != ".model" && tokenizer_detail::looks_like_json(bytes));
  auto model = std::make_shared<TokenizerModel>(json ? tokenizer_detail::parse_hf_json(bytes, file)
                                                     : tokenizer_detail::parse_spm_model(bytes, file));
  return Tokenizer(std::move(model));
}

Tokenizer Tokenizer::from_bytes(std::string_view bytes, const std::string& source) {
  auto model = std::make_shared<TokenizerModel>(tokenizer_detail::looks_like_json(bytes)
                                                    ? tokenizer_detail::parse_hf_json(bytes, source)
                                                    : tokenizer_detail::parse_spm_model(bytes, source));
  return Tokenizer(std::move(model));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  return encode(text, add_bos, model_->parse_special_by_default);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const TokenizerModel& model = *model_;
  std::string sanitized;
  if (!utf8::is_valid(text)) {
    utf8::append_sanitized(text, sanitized, /*final=*/true);
    text = sanitized;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_bos) ids.insert(ids.end(), model.bos_ids.begin(), model.bos_ids.end());
  for (const auto& section : tokenizer_detail::split_on_added_tokens(model, text, parse_special)) {
    if (section.token >= 0) {
      ids.push_back(model.added_tokens[section.token].id);
    } else {
      tokenizer_detail::encode_text(model, section.text, section.offset == 0, ids);
    }
  }
  if (add_bos) ids.insert(ids.end(), model.eos_ids.begin(), model.eos_ids.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  bool at_start = true;
  for (const int32_t id : ids) tokenizer_detail::append_piece_bytes(*model_, id, skip_special, at_start, bytes);
  std::string text;
  text.reserve(bytes.size());
  utf8::append_sanitized(bytes, text, /*final=*/true);
  return text;
}

std::string_view Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail(model_->source, ": token id ", id, " is out of range [0, ", vocab_size(), ")");
  return model_->pieces[id];
}

bool Tokenizer::is_special(int32_t id) const {
  piece(id);  // range check
  return model_->texts[id].kind == tokenizer_detail::PieceText::Kind::kSpecial;
}

int32_t Tokenizer::vocab_size() const { return model_->vocab_size(); }
int32_t Tokenizer::bos_id() const { return model_->bos_id; }
int32_t Tokenizer::eos_id() const { return model_->eos_id; }
int32_t Tokenizer::unk_id() const { return model_->unk_id; }
std::optional<int32_t> Tokenizer::token_id(std::string_view piece) const { return model_->find(piece); }

StreamingDecoder::StreamingDecoder(const Tokenizer& tok, bool skip_special)
    : tokenizer_(tok), skip_special_(skip_special) {}

std::string StreamingDecoder::push(int32_t id) {
  tokenizer_detail::append_piece_bytes(*tokenizer_.model_, id, skip_special_, at_start_, pending_);
  std::string text;
  pending_.erase(0, utf8::append_sanitized(pending_, text, /*final=*/false));
  return text;
}

std::string StreamingDecoder::flush() {
  std::string text;
  utf8::append_sanitized(pending_, text, /*final=*/true);
  pending_.clear();
  return text;
}

}  // namespace jetmoe
