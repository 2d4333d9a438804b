// The kernel templates compiled for any CPU (one-lane vectors): the portable fallback.
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
#include "kernels/cpu/kernel_table.h"

namespace jetmoe::kernels::cpu::scalar {
// The -inl files are written once for every ISA; each isa_<level>.cc includes them into its
// own namespace (so instantiations of different levels never merge) under its target flags.
#include "kernels/cpu/simd_scalar-inl.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/simd_q8_scalar-inl.h"
#include "kernels/cpu/matmul_q8-inl.h"
#include "kernels/cpu/simd_kquant_scalar-inl.h"
#include "kernels/cpu/simd_q6k_scalar-inl.h"
#include "kernels/cpu/matmul_kquant-inl.h"
#include "kernels/cpu/attention-inl.h"
#include "kernels/cpu/decode_attention-inl.h"
#include "kernels/cpu/elementwise-inl.h"
#include "kernels/cpu/backward_gemm-inl.h"
#include "kernels/cpu/attention_backward-inl.h"
#include "kernels/cpu/kernel_table-inl.h"
}  // namespace jetmoe::kernels::cpu::scalar

namespace jetmoe::kernels::cpu {

const KernelTable& scalar_kernels() {
  static const KernelTable table =
      scalar::portable_kernel_table<scalar::Q8Scalar, scalar::KQuantScalar, scalar::Q6kScalar>(Isa::Scalar);
  return table;
}

}  // namespace jetmoe::kernels::cpu
