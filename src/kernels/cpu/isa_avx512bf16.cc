// AVX-512 plus AVX512_BF16 and AVX512_VNNI: the AVX-512 table with bf16 dot-product GEMM,
// attention, rounding and probe, and the int8 products for quantized weights.
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

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vnni,fma,f16c")
namespace jetmoe::kernels::cpu::avx512bf16 {
#include "kernels/cpu/simd_avx512-inl.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/matmul_bf16dot-inl.h"
#include "kernels/cpu/backward_bf16dot-inl.h"
#include "kernels/cpu/attention-inl.h"
#include "kernels/cpu/attention_bf16dot-inl.h"
#include "kernels/cpu/simd_q8_avx2-inl.h"
#include "kernels/cpu/matmul_q8-inl.h"
#include "kernels/cpu/matmul_q8vnni-inl.h"
#include "kernels/cpu/simd_kquant_avx2-inl.h"
#include "kernels/cpu/matmul_kquant_vnni-inl.h"
#include "kernels/cpu/matmul_q6k_vnni-inl.h"
}  // namespace jetmoe::kernels::cpu::avx512bf16
#pragma GCC pop_options

namespace jetmoe::kernels::cpu {

const KernelTable& avx512bf16_kernels() {
  static const KernelTable table = [] {
    KernelTable t = avx512_kernels();
    t.isa = Isa::Avx512Bf16;
    t.gemm_scratch_floats = std::max({t.gemm_scratch_floats, avx512bf16::kQ8PanelFloats,
                                      avx512bf16::kKQuantPanelFloats, avx512bf16::kQ6kPanelFloats});
    static_assert(avx512bf16::kTokenPanel == kBf16TokenPanel);
    t.pack_bf16_tokens = avx512bf16::pack_token_panel;
    t.gemm_bf16dot = avx512bf16::gemm_bf16dot;
    t.round_to_bf16 = avx512bf16::round_to_bf16_vec;
    t.bf16_dot_flops = avx512bf16::bf16_dot_flops;
    t.attention = avx512bf16::attention_bf16dot;
    t.backward_panel_cols = avx512bf16::kNr;  // the same panels as the fp32 products
    t.backward_input_block_bf16 = avx512bf16::backward_input_block_bf16;
    t.backward_pack_pair_rows = avx512bf16::backward_pack_pair_rows;
    t.backward_pack_pair_columns = avx512bf16::backward_pack_pair_columns;
    t.backward_weight_block_bf16 = avx512bf16::backward_weight_block_bf16;
    t.gemv_q8 = avx512bf16::gemv_q8_vnni;
    t.gemm_q8 = avx512bf16::gemm_q8_vnni;
    t.gemv_q4k = avx512bf16::gemv_kquant_vnni<Q4kLayout>;
    t.gemm_q4k = avx512bf16::gemm_kquant_vnni<Q4kLayout>;
    t.gemv_q5k = avx512bf16::gemv_kquant_vnni<Q5kLayout>;
    t.gemm_q5k = avx512bf16::gemm_kquant_vnni<Q5kLayout>;
    t.gemv_q6k = avx512bf16::gemv_q6k_vnni;
    t.gemm_q6k = avx512bf16::gemm_q6k_vnni;
    return t;
  }();
  return table;
}

}  // namespace jetmoe::kernels::cpu

#else
namespace jetmoe::kernels::cpu {
const KernelTable& avx512bf16_kernels() { return scalar_kernels(); }
}  // namespace jetmoe::kernels::cpu
#endif
