// The kernel templates compiled for AVX-512 (F, BW, VL, DQ) with FMA and F16C.
#include "kernels/cpu/kernel_table.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation, which its own
// -Wuninitialized then reports at every inlined use; the vectors are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/q4_k.h"
#include "core/q5_k.h"
#include "core/q6_k.h"
#include "kernels/attention_backward.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
namespace jetmoe::kernels::cpu::avx512 {
#include "kernels/cpu/simd_avx512-inl.h"
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
#include "kernels/cpu/cross_entropy-inl.h"
#include "kernels/cpu/kernel_table-inl.h"
}  // namespace jetmoe::kernels::cpu::avx512
#pragma GCC pop_options

namespace jetmoe::kernels::cpu {

const KernelTable& avx512_kernels() {
  static const KernelTable table = [] {
    KernelTable t =
        avx512::portable_kernel_table<avx512::Q8Avx2, avx512::KQuantAvx2, avx512::Q6kAvx2>(Isa::Avx512);
    t.cross_entropy_row = avx512::cross_entropy_row;
    return t;
  }();
  return table;
}

}  // namespace jetmoe::kernels::cpu

#else
namespace jetmoe::kernels::cpu {
const KernelTable& avx512_kernels() { return scalar_kernels(); }
}  // namespace jetmoe::kernels::cpu
#endif
