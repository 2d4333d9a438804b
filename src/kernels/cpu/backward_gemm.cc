// backward_gemm-inl.h compiled for every ISA level, each in its own namespace under its target
// flags (as isa_<level>.cc do for the forward kernels), and the table that picks among them.
#include "kernels/cpu/backward_gemm.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation, which its own
// -Wuninitialized then reports at every inlined use; the vectors are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace jetmoe::kernels::cpu::backward_scalar {
// clang-format off: the vectors first, then the templates written over them
#include "kernels/cpu/simd_scalar-inl.h"
#include "kernels/cpu/backward_gemm-inl.h"
// clang-format on
}  // namespace jetmoe::kernels::cpu::backward_scalar

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace jetmoe::kernels::cpu::backward_avx2 {
// clang-format off: the vectors first, then the templates written over them
#include "kernels/cpu/simd_avx2-inl.h"
#include "kernels/cpu/backward_gemm-inl.h"
// clang-format on
}  // namespace jetmoe::kernels::cpu::backward_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
namespace jetmoe::kernels::cpu::backward_avx512 {
// clang-format off: the vectors first, then the templates written over them
#include "kernels/cpu/simd_avx512-inl.h"
#include "kernels/cpu/backward_gemm-inl.h"
// clang-format on
}  // namespace jetmoe::kernels::cpu::backward_avx512
#pragma GCC pop_options
#endif

namespace jetmoe::kernels::cpu {

const BackwardGemmKernels& backward_gemm_kernels(Isa isa) {
  static const BackwardGemmKernels scalar{Isa::Scalar, backward_scalar::kNr, backward_scalar::backward_input_block,
                                          backward_scalar::backward_pack_rows, backward_scalar::backward_weight_block};
#if defined(__x86_64__) || defined(__i386__)
  static const BackwardGemmKernels avx2{Isa::Avx2, backward_avx2::kNr, backward_avx2::backward_input_block,
                                        backward_avx2::backward_pack_rows, backward_avx2::backward_weight_block};
  static const BackwardGemmKernels avx512{Isa::Avx512, backward_avx512::kNr, backward_avx512::backward_input_block,
                                          backward_avx512::backward_pack_rows, backward_avx512::backward_weight_block};
  switch (isa) {
    case Isa::Scalar:
      return scalar;
    case Isa::Avx2:
      return avx2;
    case Isa::Avx512:
    case Isa::Avx512Bf16:
      return avx512;  // no bf16 dot products here: the backward is exact fp32
  }
#endif
  return scalar;
}

}  // namespace jetmoe::kernels::cpu
