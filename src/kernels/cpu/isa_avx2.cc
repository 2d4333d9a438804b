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
#include <type_traits>
#include <utility>

#include "core/dtype.h"
#include "core/q4_k.h"
#include "core/q5_k.h"
#include "core/q6_k.h"
#include "kernels/attention_backward.h"

// Only code between push and pop may use these instructions; dispatch (ops.cc) calls into it
// only after checking the CPU.
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace jetmoe::kernels::cpu::avx2 {
#include "kernels/cpu/simd_avx2-inl.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/simd_q8_avx2-inl.h"
#include "kernels/cpu/matmul_q8-inl.h"
#include "kernels/cpu/simd_kquant_avx2-inl.h"
#include "kernels/cpu/simd_q6k_avx2-inl.h"
#include "kernels/cpu/matmul_kquant-inl.h"
#include "kernels/cpu/attention-inl.h"
#include "kernels/cpu/decode_attention-inl.h"
#include "kernels/cpu/elementwise-inl.h"
#include "kernels/cpu/backward_gemm-inl.h"
#include "kernels/cpu/attention_backward-inl.h"
#include "kernels/cpu/kernel_table-inl.h"
}  // namespace jetmoe::kernels::cpu::avx2
#pragma GCC pop_options

namespace jetmoe::kernels::cpu {

const KernelTable& avx2_kernels() {
  static const KernelTable table =
      avx2::portable_kernel_table<avx2::Q8Avx2, avx2::KQuantAvx2, avx2::Q6kAvx2>(Isa::Avx2);
  return table;
}

}  // namespace jetmoe::kernels::cpu

#else
namespace jetmoe::kernels::cpu {
const KernelTable& avx2_kernels() { return scalar_kernels(); }
}  // namespace jetmoe::kernels::cpu
#endif
