// The kernel templates compiled for any CPU (one-lane vectors): the portable fallback.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "core/dtype.h"
#include "kernels/cpu/kernel_table.h"

namespace jetmoe::kernels::cpu::scalar {
// The -inl files are written once for every ISA; each isa_<level>.cc includes them into its
// own namespace (so instantiations of different levels never merge) under its target flags.
#include "kernels/cpu/simd_scalar-inl.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/simd_q8_scalar-inl.h"
#include "kernels/cpu/matmul_q8-inl.h"
#include "kernels/cpu/attention-inl.h"
#include "kernels/cpu/elementwise-inl.h"
}  // namespace jetmoe::kernels::cpu::scalar

namespace jetmoe::kernels::cpu {

const KernelTable& scalar_kernels() {
  using namespace scalar;
  static const KernelTable table = {
      .isa = Isa::Scalar,
      .gemm_scratch_floats = kGemmScratchFloats,
      .gemv = gemv,
      .gemm = gemm,
      .gemm_bf16dot = nullptr,
      .round_to_bf16 = round_to_bf16,
      .quantize_row_q8 = quantize_row_q8<Q8Scalar>,
      .gemv_q8 = gemv_q8<Q8Scalar>,
      .gemm_q8 = gemm_q8_dots<Q8Scalar>,
      .rmsnorm = rmsnorm,
      .silu_glu = silu_glu,
      .softmax = softmax,
      .add = add,
      .rope = rope,
      .attention = attention,
      .fma_flops = fma_flops,
      .bf16_dot_flops = nullptr,
      .read_sum = read_sum,
  };
  return table;
}

}  // namespace jetmoe::kernels::cpu
