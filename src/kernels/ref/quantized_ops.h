// The numerics of products with Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K weights, written plainly: the oracle of the
// SIMD kernels behind ops::matmul_xwT for quantized weights.
//
// Each activation row is quantized once per product to 8-bit blocks of 32 values (like GGML's
// q8 activations, with an fp32 scale):
//   d = max |x_j| / 127,  q_j = round_half_even(x_j / d) in [-127, 127]
// (x_j / d computed as x_j * (1 / d), so every implementation rounds the same products; a block
// whose d would be subnormal or zero, max |x_j| < 127 * 2^-126, gets d = 0 and q = 0, so that 1 / d
// stays finite).
// Then for weight blocks with scale dw and integer levels w_j (Q8_0: q; Q4_0: nibble - 8)
//   y[t, o] = sum over blocks b of (dw_b * d_b) * (sum_j w_j q_j)      (integer inner sums, exact)
// Q4_K and Q5_K weights (core/q4_k.h, core/q5_k.h): sub-block b (32 values, the activation block
// b) of a super-block with scales d, dmin and 6-bit sc_b, m_b holds levels w_j in 0 .. 15 (Q4_K)
// or 0 .. 31 (Q5_K) (value (d sc_b) w_j - dmin m_b);
// with s_b = sum_j q_j the activation block's level sum,
//   y[t, o] = sum_b (d d_b) * (sc_b sum_j w_j q_j)  -  sum_b (dmin d_b) * (m_b s_b)
// (integer inner sums, exact; each of the two fp32 sums in block order, then the difference).
// Q6_K weights (core/q6_k.h): activation block b covers the groups of 16 values 2b and 2b + 1 of
// a super-block with scale d, signed 8-bit group scales sc_g and levels w_j = q_j - 32 in -32 .. 31
// (value (d sc_g) w_j);
//   y[t, o] = sum_b (d d_b) * (sc_2b sum_{j in 2b} w_j q_j + sc_2b+1 sum_{j in 2b+1} w_j q_j)
// (the integer sum exact, the fp32 sum in block order).
// Either way this differs from the fp32 product of x with the dequantized weights only by the
// activation rounding: |x_j - d q_j| <= d / 2 (up to fp32 rounding of x_j * (1 / d)), so per output
//   |y - sum_j x_j w_j| <= sum_b (d_b / 2) sum_{j in b} |w_j|  + fp32 rounding
// with w_j the dequantized weights (Q8_0 / Q4_0: dw_b times the level).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace jetmoe::kernels {

// Quantizes one row of n values (n a multiple of kQuantBlock): q [n], scale [n / 32].
void quantize_row_q8(const float* x, int64_t n, int8_t* q, float* scale);

// y[t, o] for W [out, in] in Q8_0, Q4_0, Q4_K, Q5_K or Q6_K with the numerics above; rows strided like matmul_xwT.
void matmul_xwT_q8(const float* x, int64_t x_stride, int64_t T, const TensorView& W, float* y, int64_t y_stride);

// The integer levels and scale of block b of row `row` of a Q8_0 / Q4_0 weight: value j of the
// block is scale * levels[j].
float weight_block(const TensorView& W, int64_t row, int64_t b, int levels[32]);

// Sub-block b (values 32 b .. 32 b + 31) of row `row` of a Q4_K or Q5_K weight: value j is
// (d * sc) * levels[j] - dmin * m.
struct KQuantSubBlock {
  float d = 0.0f, dmin = 0.0f;  // the super-block's scales
  int sc = 0, m = 0;            // the sub-block's 6-bit scale and min
  int levels[32] = {};          // 0 .. 15 (Q4_K) or 0 .. 31 (Q5_K)
};
KQuantSubBlock k_quant_sub_block(const TensorView& W, int64_t row, int64_t b);

// Values 32 b .. 32 b + 31 of row `row` of a Q6_K weight: value j is (d * sc[j / 16]) * levels[j].
struct Q6kBlock {
  float d = 0.0f;        // the super-block's scale
  int sc[2] = {};        // the two groups' signed 8-bit scales
  int levels[32] = {};   // -32 .. 31
};
Q6kBlock q6k_block(const TensorView& W, int64_t row, int64_t b);

}  // namespace jetmoe::kernels
