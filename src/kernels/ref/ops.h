// Plain C++ kernels of every op the JetMoE forward needs: fp32 compute over weights of any dtype
// (quantized ones dequantized row by row; quantized_ops.h has the 8-bit-activation products).
// They are the oracles that the SIMD kernels of kernels/cpu (behind kernels/ops.h) are tested
// against, so clarity beats speed here: no intrinsics, no instruction-set clones.
#pragma once

#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"

namespace jetmoe::kernels {

// y[t, o] = sum_i x[t, i] * W[o, i] for t < T, o < out; W is [out, in] in any dtype.
// x rows are `x_stride` floats apart, y rows `y_stride` floats apart.
void matmul_xwT(const float* x, int64_t x_stride, int64_t T, const TensorView& W, float* y, int64_t y_stride,
                ThreadPool& pool);

// y[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * w, over rows of length d.
void rmsnorm(const float* x, const TensorView& weight, double eps, int64_t T, int64_t d, float* y);

// Rotate-half RoPE of one head vector of length `head_dim` at position `pos` (spec §1.6): pairs
// (i, i + head_dim/2) rotated by pos * theta^(-2i/head_dim).
class Rope {
 public:
  Rope(int64_t head_dim, double theta);
  void apply(float* head, int64_t pos) const;

  int64_t half() const { return half_; }
  // cos / sin of the `half` angles at `pos`, exactly as apply() computes them.
  void cos_sin(int64_t pos, float* cos, float* sin) const;

 private:
  int64_t half_;
  std::vector<float> inv_freq_;  // float32 like the reference, so angles round the same way
};

// z[n, F] = silu(u[n, 0:F]) * u[n, F:2F]  (first half is the SiLU branch, spec P6)
void silu_glu(const float* u, int64_t n, int64_t F, float* z);

// In-place numerically stable softmax of n values.
void softmax(float* x, int64_t n);

// Adds a [d] vector (any dtype) to every row of y [T, d].
void add_bias(float* y, int64_t T, int64_t d, const TensorView& bias);

// Converts row `row` of a 2-D weight (any dtype) to float32.
void load_row(const TensorView& W, int64_t row, float* out);

}  // namespace jetmoe::kernels
