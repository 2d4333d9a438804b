// Byte-pair encoding of one normalised word: start from characters, repeatedly merge the best
// adjacent pair (a priority queue over a linked list of symbols: O(n log n)), then map the
// remaining symbols to ids, falling back to <0xXX> byte pieces or <unk> for unknown characters.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "formats/tokenizer/tokenizer_model.h"

namespace jetmoe::tokenizer_detail {

// `word` must be valid UTF-8. Appends its ids to `out`.
void bpe_encode_word(const TokenizerModel& model, std::string_view word, std::vector<int32_t>& out);

}  // namespace jetmoe::tokenizer_detail
