// Fast backward of the fp32 product y = x · W^T (ops::matmul_xwT), for training. Both gradients
// are products themselves, so they run on the same blocked, threaded SIMD gemm as the forward
// after transposing their operands (O(T·(in+out)) or O(in·out) copies against an O(T·in·out)
// product). Same meaning as the oracles kernels::matmul_backward_input / _weight
// (kernels/ref/backward_ops.h), up to the order of fp32 sums.
#pragma once

#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "kernels/cpu/isa.h"

namespace jetmoe::ops {

// at[c, r] = a[r, c] for a row-major [rows, cols] matrix; tiles shared among the pool threads.
void transpose(const float* a, int64_t rows, int64_t cols, float* at, ThreadPool& pool);

// W^T [in, out] of an fp32 [out, in] weight, made once when several products need it (the head's
// weight against every sequence of a batch).
class TransposedWeight {
 public:
  TransposedWeight(const float* W, int64_t out, int64_t in, ThreadPool& pool);
  const float* data() const { return values_.data(); }
  int64_t out() const { return out_; }
  int64_t in() const { return in_; }

 private:
  int64_t out_, in_;
  std::vector<float> values_;
};

// dx[t, i] = sum_o dy[t, o] * W[o, i] for t < T; dy [T, out], W [out, in] fp32; dx [T, in] assigned.
void matmul_backward_input(const float* dy, int64_t T, const float* W, int64_t out, int64_t in, float* dx,
                           ThreadPool& pool, kernels::cpu::Isa isa = kernels::cpu::best_isa());
// The same with W already transposed (Wt.out() = out, Wt.in() = in).
void matmul_backward_input(const float* dy, int64_t T, const TransposedWeight& Wt, float* dx, ThreadPool& pool,
                           kernels::cpu::Isa isa = kernels::cpu::best_isa());

// dW[o, i] += sum_t dy[t, o] * x[t, i]; dy [T, out], x [T, in], dW [out, in] (accumulated).
void matmul_backward_weight(const float* dy, const float* x, int64_t T, int64_t out, int64_t in, float* dW,
                            ThreadPool& pool, kernels::cpu::Isa isa = kernels::cpu::best_isa());

}  // namespace jetmoe::ops
