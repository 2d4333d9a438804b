// Next-token cross-entropy over a sequence's logits.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"

namespace jetmoe {

// Sum over t of -log softmax(logits[t])[targets[t + 1]], skipping targets < 0 (ignored labels,
// like HF's -100). logits: [T, V]; targets: T entries (HF labels, the last position unscored) or
// T + 1 (the token after the window too). Returns the sum and, through *count, how many terms.
double next_token_nll_sum(const FloatTensor& logits, std::span<const int64_t> targets, int64_t* count);

}  // namespace jetmoe
