// ops::cross_entropy_backward: the kernel table's row kernel (AVX-512, cross_entropy-inl.h), or
// the oracle itself on levels without one.
#include "kernels/cross_entropy.h"

#include "core/error.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/ref/backward_ops.h"

namespace jetmoe::ops {

double cross_entropy_backward(const float* logits, int64_t V, int64_t target, double scale, float* dlogits,
                              kernels::cpu::Isa isa) {
  JM_CHECK(V > 0 && target >= 0 && target < V, "cross-entropy target ", target, " of ", V, " logits");
  const kernels::cpu::KernelTable& kt = kernels::cpu::checked_kernel_table(isa);
  if (kt.cross_entropy_row != nullptr) return kt.cross_entropy_row(logits, V, target, scale, dlogits);
  return kernels::cross_entropy_backward(logits, V, target, scale, dlogits);
}

}  // namespace jetmoe::ops
