// The search behind our Q4_K and Q5_K quantizers (GGML's layouts, not its search): per sub-block
// of 32 values, the scale and min that minimise the squared error among a few candidate ranges,
// then both quantized to 6 bits against the super-block's d = max scale / 63 and dmin = max min /
// 63, then the levels rounded to nearest against those quantized values, with two passes that
// refit scale and min to the levels. The two formats differ only in their top level (15 or 31)
// and in how they store the levels.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/q4_k.h"

namespace jetmoe {

// The levels of a k-quant: 0 .. max_level, and the spacing of the candidate ranges the search
// tries (the step between candidates, in levels: about 1.3% of the range either way).
struct KQuantLevels {
  int max_level;
  float candidate_step;
};
inline constexpr KQuantLevels kQ4kLevels{15, 0.2f};
inline constexpr KQuantLevels kQ5kLevels{31, 0.4f};

// One fitted super-block: the f16 bits of d and dmin, the 6-bit scale and min of each sub-block
// (Q5_K packs them as Q4_K does), and each value's level.
struct KQuantSuperBlock {
  uint16_t d_bits = 0, dmin_bits = 0;
  Q4kScales scales{};
  uint8_t levels[kKQuantSuperBlock] = {};
};

// Fits 256 values (NaN and infinities spoil only this super-block).
KQuantSuperBlock fit_k_quant_super_block(const float* x, const KQuantLevels& levels);

// Stores what Q4_K and Q5_K lay out alike: d, dmin and the packed scales (bytes 0-15 of `block`),
// and the low 4 bits of each level in Q4_K's qs order at `qs` (core/q4_k.h).
void store_k_quant_scales(const KQuantSuperBlock& fit, uint8_t* block);
void store_low_nibbles(const KQuantSuperBlock& fit, uint8_t* qs);

}  // namespace jetmoe
