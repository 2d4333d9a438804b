#include "formats/tokenizer/utf8.h"

namespace jetmoe::utf8 {
namespace {

// Expected length of a character from its lead byte, 0 for bytes that never lead.
size_t sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // continuation byte, overlong lead C0/C1, or F5..FF
}

// Allowed range of the second byte; narrower than 80..BF for E0, ED, F0 and F4 so that overlongs,
// surrogates and code points above U+10FFFF are rejected.
bool second_byte_ok(uint8_t lead, uint8_t second) {
  switch (lead) {
    case 0xE0: return second >= 0xA0 && second <= 0xBF;
    case 0xED: return second >= 0x80 && second <= 0x9F;
    case 0xF0: return second >= 0x90 && second <= 0xBF;
    case 0xF4: return second >= 0x80 && second <= 0x8F;
    default: return second >= 0x80 && second <= 0xBF;
  }
}

bool is_continuation(uint8_t byte) { return (byte & 0xC0) == 0x80; }

// Number of bytes at text[pos..] that agree with a well-formed character (at most its length).
size_t matching_prefix(std::string_view text, size_t pos, size_t length) {
  const auto lead = static_cast<uint8_t>(text[pos]);
  size_t n = 1;
  while (n < length && pos + n < text.size()) {
    const auto byte = static_cast<uint8_t>(text[pos + n]);
    if (n == 1 ? !second_byte_ok(lead, byte) : !is_continuation(byte)) break;
    ++n;
  }
  return n;
}

}  // namespace

size_t valid_char_length(std::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  const size_t length = sequence_length(static_cast<uint8_t>(text[pos]));
  if (length == 0) return 0;
  return matching_prefix(text, pos, length) == length ? length : 0;
}

bool is_truncated_char(std::string_view text, size_t pos) {
  if (pos >= text.size()) return false;
  const size_t length = sequence_length(static_cast<uint8_t>(text[pos]));
  if (length <= 1) return false;
  const size_t matched = matching_prefix(text, pos, length);
  return matched < length && pos + matched == text.size();
}

bool is_valid(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = valid_char_length(text, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

size_t append_sanitized(std::string_view bytes, std::string& out, bool final) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t length = valid_char_length(bytes, pos);
    if (length > 0) {
      out.append(bytes.substr(pos, length));
      pos += length;
    } else if (!final && is_truncated_char(bytes, pos)) {
      break;
    } else {
      out.append(kReplacement);
      ++pos;
    }
  }
  return pos;
}

char32_t decode_char(std::string_view text, size_t pos, size_t length) {
  const auto byte = [&](size_t i) { return static_cast<char32_t>(static_cast<uint8_t>(text[pos + i])); };
  switch (length) {
    case 1: return byte(0);
    case 2: return ((byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
    case 3: return ((byte(0) & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    default:
      return ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
  }
}

bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

}  // namespace jetmoe::utf8
