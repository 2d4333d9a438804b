// Fast backward of the product y = x · W^T (ops::matmul_xwT), for training:
//   dx  = dy · W       (input gradient, assigned)
//   dW += dy^T · x     (weight gradient, accumulated)
// Both read W and x as they are stored (row-major, BF16 / F16 weights converted as they are
// packed), so no operand is ever transposed (kernels/cpu/backward_gemm-inl.h and, for bf16
// training, backward_bf16dot-inl.h). Independent
// products — the experts of a MoE layer, each with however many rows the router sent it, and
// the dense products beside them — run in one parallel pass whose blocks the threads take from
// one shared queue, as ops::matmul_xwT_grouped does for the forward.
// Same meaning as the oracles kernels::matmul_backward_input / _weight (kernels/ref/backward_ops.h),
// up to the order of fp32 sums (on bf16-rounded operands in bf16 training, see backward_products).
// Every sum runs in a fixed order (over rows of dy, in order), so results do not depend on the
// number of threads.
#pragma once

#include <cstdint>
#include <span>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/cpu/isa.h"
#include "kernels/ops.h"

namespace jetmoe::ops {

// One product of a backward pass; make it with input_gradient() or weight_gradient().
struct BackwardProduct {
  enum class Kind : uint8_t { Input, Weight };
  Kind kind = Kind::Input;
  // Input:  c [m, n] = a [m, k] · b [k, n]      (dx = dy · W: a = dy, b = W [out, in])
  // Weight: c [m, n] += a [k, m]^T · b [k, n]   (dW += dy^T · x: a = dy [T, out], b = x [T, in])
  const float* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;  // F32, or (Input only) BF16 / F16
  DType b_dtype = DType::F32;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t m = 0, n = 0, k = 0;
};

// dx [T, in] (rows ldx apart) = dy [T, out] (rows ldy apart) · W for a 2-D [out, in] weight in
// F32, BF16 or F16 (throws naming the dtype otherwise).
BackwardProduct input_gradient(const float* dy, int64_t ldy, int64_t T, const TensorView& W, float* dx, int64_t ldx);

// dW [out, in] (dense rows) += dy^T · x for dy [T, out] and x [T, in] (rows ldy / ldx apart).
BackwardProduct weight_gradient(const float* dy, int64_t ldy, const float* x, int64_t ldx, int64_t T, int64_t out,
                                int64_t in, float* dW);

// Runs every product in one parallel pass. Products must not write memory another reads or writes.
// options.activations = BF16 (bf16 training) runs input gradients through BF16 weights and every
// weight gradient on bf16 operands: dy and x are rounded to bf16 (nearest even), products are
// exact and sums fp32, the numerics of bf16 autocast training. With AVX512_BF16 that is twice the
// fp32 rate; other CPUs round the same way and multiply in fp32, so the meaning does not depend
// on the CPU. Input gradients through F32 / F16 weights stay exact fp32.
void backward_products(std::span<const BackwardProduct> products, ThreadPool& pool, const MatmulOptions& options = {});

// One product each, for tests and benchmarks:
// dx[t, i] = sum_o dy[t, o] * W[o, i] for t < T; dy [T, out], W [out, in]; dx [T, in] assigned.
void matmul_backward_input(const float* dy, int64_t T, const TensorView& W, float* dx, ThreadPool& pool,
                           const MatmulOptions& options = {});
// dW[o, i] += sum_t dy[t, o] * x[t, i]; dy [T, out], x [T, in], dW [out, in] (accumulated).
void matmul_backward_weight(const float* dy, const float* x, int64_t T, int64_t out, int64_t in, float* dW,
                            ThreadPool& pool, const MatmulOptions& options = {});

}  // namespace jetmoe::ops
