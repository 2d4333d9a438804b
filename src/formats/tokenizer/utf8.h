// UTF-8 helpers for the tokenizer: splitting text into characters and turning arbitrary bytes
// (byte-fallback tokens can carry any byte) into valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace jetmoe::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed character starting at text[pos] (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if the bytes there are not one.
size_t valid_char_length(std::string_view text, size_t pos);

// Whether text[pos..] is the start of a well-formed character that is cut off by the end of text.
bool is_truncated_char(std::string_view text, size_t pos);

bool is_valid(std::string_view text);

// Appends `bytes` to `out` as valid UTF-8: each byte that does not belong to a well-formed
// character becomes U+FFFD (as SentencePiece's decoder does). Unless `final`, a character cut off
// at the end is left unconsumed, so that a later call can complete it. Returns bytes consumed.
size_t append_sanitized(std::string_view bytes, std::string& out, bool final);

// The code point of the well-formed character at text[pos] of length `length`.
char32_t decode_char(std::string_view text, size_t pos, size_t length);

// White_Space characters as JavaScript's trim() sees them (used for added tokens' lstrip/rstrip).
bool is_whitespace(char32_t c);

}  // namespace jetmoe::utf8
