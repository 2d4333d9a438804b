// The element-wise loops of the optimizer (optimizer.cc) over one contiguous run of a tensor:
// the AdamW update and the gradient's sum of squares, each on AVX-512 where the CPU has it and
// in portable C++ otherwise. Both give the same bits on every path: the update is IEEE mul / add /
// sqrt / div in the order of the scalar formula (never fused into multiply-adds), and the sum of
// squares keeps 16 fixed lanes (element i of a run feeds lane i % 16) combined in a fixed tree.
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"

namespace jetmoe::optimizer_kernels {

// fp32 scalars of one AdamW step (optimizer.cc forms them in double, as torch does).
struct AdamWScalars {
  float b1, b2, one_minus_b1, one_minus_b2;
  float step_size;  // lr / (1 - beta1^t)
  float sqrt_bc2;   // sqrt(1 - beta2^t)
  float eps;
  float keep;  // 1 - lr * weight_decay, or 1 for tensors without decay
};

// Factors applied to every gradient before use, first then second, each product rounded to fp32:
// the bits the caller would get by scaling the gradient buffers in two passes (1 / grad_accum,
// then the clipping factor). x * 1 is x, so the defaults change nothing.
struct GradScales {
  float first = 1.0f;
  float second = 1.0f;
};

// For j < n, with g = (grad[j] * scales.first) * scales.second:
//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
//   p = p*keep - step_size * (m / (sqrt(v)/sqrt_bc2 + eps))
// and, when bf16 is not null, bf16[j] = p rounded to nearest even (f32_to_bf16).
// `isa` picks the path (AVX-512 at Avx512 and above, portable below); tests force each.
void adamw_update(float* p, float* m, float* v, const float* grad, int64_t n, const AdamWScalars& s,
                  const GradScales& scales, uint16_t* bf16, kernels::cpu::Isa isa = kernels::cpu::best_isa());

// sum_j double(x_j)^2 with x_j = (grad[j] * scales.first) * scales.second (fp32 products). Each
// square is exact in double; the order of the additions is fixed (see the file comment).
double sum_of_squares(const float* grad, int64_t n, const GradScales& scales,
                      kernels::cpu::Isa isa = kernels::cpu::best_isa());

}  // namespace jetmoe::optimizer_kernels
