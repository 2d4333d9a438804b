// The kernel templates compiled for AVX2 + FMA + F16C.
#include "kernels/cpu/kernel_table.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "core/dtype.h"

// Only code between push and pop may use these instructions; dispatch (ops.cc) calls into it
// only after checking the CPU.
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace jetmoe::kernels::cpu::avx2 {
#include "kernels/cpu/simd_avx2-inl.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/simd_q8_avx2-inl.h"
#include "kernels/cpu/matmul_q8-inl.h"
#include "kernels/cpu/attention-inl.h"
#include "kernels/cpu/elementwise-inl.h"
}  // namespace jetmoe::kernels::cpu::avx2
#pragma GCC pop_options

namespace jetmoe::kernels::cpu {

const KernelTable& avx2_kernels() {
  using namespace avx2;
  static const KernelTable table = {
      .isa = Isa::Avx2,
      .gemm_scratch_floats = kGemmScratchFloats,
      .gemv = gemv,
      .gemm = gemm,
      .gemm_bf16dot = nullptr,
      .round_to_bf16 = round_to_bf16,
      .quantize_row_q8 = quantize_row_q8<Q8Avx2>,
      .gemv_q8 = gemv_q8<Q8Avx2>,
      .gemm_q8 = gemm_q8_dots<Q8Avx2>,
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

#else
namespace jetmoe::kernels::cpu {
const KernelTable& avx2_kernels() { return scalar_kernels(); }
}  // namespace jetmoe::kernels::cpu
#endif
