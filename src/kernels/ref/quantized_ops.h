// The numerics of products with Q8_0 / Q4_0 weights, written plainly: the oracle of the SIMD
// kernels behind ops::matmul_xwT for quantized weights.
//
// Each activation row is quantized once per product to 8-bit blocks of 32 values (like GGML's
// q8 activations, with an fp32 scale):
//   d = max |x_j| / 127,  q_j = round_half_even(x_j / d) in [-127, 127]
// (x_j / d computed as x_j * (1 / d), so every implementation rounds the same products; a block
// whose d would be subnormal or zero, max |x_j| < 127 * 2^-126, gets d = 0 and q = 0, so that 1 / d
// stays finite).
// Then for weight blocks with scale dw and integer levels w_j (Q8_0: q; Q4_0: nibble - 8)
//   y[t, o] = sum over blocks b of (dw_b * d_b) * (sum_j w_j q_j)      (integer inner sums, exact)
// This differs from the fp32 product of x with the dequantized weights only by the activation
// rounding: |x_j - d q_j| <= d / 2 (up to fp32 rounding of x_j * (1 / d)), so per output
//   |y - sum_j x_j (dw w_j)| <= sum_b (d_b / 2) sum_{j in b} |dw_b w_j|  + fp32 summation error.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace jetmoe::kernels {

// Quantizes one row of n values (n a multiple of kQuantBlock): q [n], scale [n / 32].
void quantize_row_q8(const float* x, int64_t n, int8_t* q, float* scale);

// y[t, o] for W [out, in] in Q8_0 or Q4_0 with the numerics above; rows strided like matmul_xwT.
void matmul_xwT_q8(const float* x, int64_t x_stride, int64_t T, const TensorView& W, float* y, int64_t y_stride);

// The integer levels and scale of block b of row `row` of a Q8_0 / Q4_0 weight: value j of the
// block is scale * levels[j].
float weight_block(const TensorView& W, int64_t row, int64_t b, int levels[32]);

}  // namespace jetmoe::kernels
