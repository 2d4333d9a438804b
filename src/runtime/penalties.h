// OpenAI's presence and frequency penalties. For every token j sampled so far in this
// completion (the prompt does not count), with c[j] its count:
//   logit[j] -= c[j] * frequency_penalty + (c[j] > 0 ? presence_penalty : 0)
// Positive values discourage repeats; both are 0 (off) by default and lie in [-2, 2].
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/sampler.h"

namespace jetmoe {

// Applies the penalties to `candidates` (any order) from the ids in `generated`.
void apply_presence_frequency_penalties(std::vector<Candidate>& candidates, std::span<const int32_t> generated,
                                        float presence_penalty, float frequency_penalty);

}  // namespace jetmoe
