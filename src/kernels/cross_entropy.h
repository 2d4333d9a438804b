// Cross-entropy of one row of logits and its gradient, for training: the oracle
// kernels::cross_entropy_backward (kernels/ref/backward_ops.h) on vectors. The loss keeps its
// double precision — exp in double on AVX-512 (a degree-13 polynomial after an exact reduction by
// ln 2: within 2 ulps of the library's exp, so the loss moves by ~1e-16 of itself) — while the
// gradient is rounded to fp32 as before. Below AVX-512 the oracle itself runs.
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"

namespace jetmoe::ops {

// Returns -log softmax(logits)[target] over V logits (computed in double) and writes
// dlogits = scale * (softmax(logits) - onehot(target)) (assigned). target must be in [0, V).
double cross_entropy_backward(const float* logits, int64_t V, int64_t target, double scale, float* dlogits,
                              kernels::cpu::Isa isa = kernels::cpu::best_isa());

}  // namespace jetmoe::ops
