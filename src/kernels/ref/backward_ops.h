// Scalar backward kernels, one per forward op of ops.h, in the same order. They are the oracles
// of any faster backward kernel. Conventions (llm.c): parameter gradients accumulate (+=),
// activation gradients are assigned (=).
//
// The templates are instantiated for float (the engine) and double (the finite-difference tests).
#pragma once

#include <cstdint>

#include "core/parallel.h"
#include "kernels/ref/ops.h"

namespace jetmoe::kernels {

// Backward of y[t, o] = sum_i x[t, i] * W[o, i] (matmul_xwT) for a [out, in] row-major W:
//   dx[t, i] = sum_o dy[t, o] * W[o, i]        (assigned)
template <typename Real>
void matmul_backward_input(const Real* dy, int64_t T, const Real* W, int64_t out, int64_t in, Real* dx,
                           ThreadPool& pool);
//   dW[o, i] += sum_t dy[t, o] * x[t, i]        (accumulated)
template <typename Real>
void matmul_backward_weight(const Real* dy, const Real* x, int64_t T, int64_t out, int64_t in, Real* dW,
                            ThreadPool& pool);

// Backward of y[t] = w * x[t] * rsqrt(mean(x[t]^2) + eps) (rmsnorm). x, dy, dx: [T, d]; w, dw: [d].
// dx is assigned, dw accumulated.
template <typename Real>
void rmsnorm_backward(const Real* x, const Real* w, double eps, int64_t T, int64_t d, const Real* dy, Real* dx,
                      Real* dw);

// Backward of z = silu(u[:, 0:F]) * u[:, F:2F] (silu_glu). u, du: [n, 2F]; dz: [n, F]. du assigned.
template <typename Real>
void silu_glu_backward(const Real* u, const Real* dz, int64_t n, int64_t F, Real* du);

// Backward of p = softmax(x) over n values, given p itself: dx = p * (dp - sum(p * dp)). Assigned.
template <typename Real>
void softmax_backward(const Real* p, const Real* dp, int64_t n, Real* dx);

// Backward of Rope::apply at `pos`, in place on the gradient of one head. RoPE rotates each pair
// (i, i + D/2) by an orthogonal 2x2 matrix, so its transpose is the rotation by -angle:
// apply(-pos) negates every angle exactly, and cos/sin are even/odd, so it uses the same tables.
void rope_backward(const Rope& rope, float* dhead, int64_t pos);

// Backward of add_bias: dbias[i] += sum_t dy[t, i] over the T rows of dy [T, d].
template <typename Real>
void add_bias_backward(const Real* dy, int64_t T, int64_t d, Real* dbias);

// Cross-entropy of one row against `target`: returns -log softmax(logits)[target] (computed in
// double) and writes dlogits = scale * (softmax(logits) - onehot(target)) (assigned).
template <typename Real>
double cross_entropy_backward(const Real* logits, int64_t V, int64_t target, double scale, Real* dlogits);

}  // namespace jetmoe::kernels
