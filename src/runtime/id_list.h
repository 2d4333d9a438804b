// Token id lists as people type them ("1, 306,4658") and as we print them ("[1,306,4658]").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe {

// Comma-separated decimal ids, spaces allowed around them; an optional enclosing [ ] is
// accepted so that printed lists can be pasted back. Throws jetmoe::Error quoting the first
// bad entry ("1,2,x" -> "'x' is not a token id"). Empty lists are an error.
std::vector<int32_t> parse_id_list(std::string_view text);

// A JSON array: [1,306,4658].
std::string format_id_list(std::span<const int32_t> ids);

// Throws jetmoe::Error naming the first id outside [0, vocab_size) and its position.
void check_ids_in_vocab(std::span<const int32_t> ids, int64_t vocab_size);

}  // namespace jetmoe
