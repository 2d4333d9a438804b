#include "train/optimizer_kernels.h"

#include <cmath>

#include "core/dtype.h"
#include "kernels/cpu/isa.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation, which its own
// -Wuninitialized then reports at every inlined use; the vectors are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace jetmoe::optimizer_kernels {
namespace {

constexpr int kLanes = 16;  // of the sum of squares

// The lanes of a sum of squares, added pairwise: lane l += lane l + w for w = 8, 4, 2, 1.
double combine_lanes(double* acc) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// ---- portable ----

void adamw_update_portable(float* __restrict p, float* __restrict m, float* __restrict v, const float* __restrict grad,
                           int64_t n, const AdamWScalars& s, const GradScales& scales, uint16_t* __restrict bf16) {
  for (int64_t j = 0; j < n; ++j) {
    const float g = (grad[j] * scales.first) * scales.second;
    m[j] = s.b1 * m[j] + s.one_minus_b1 * g;
    v[j] = s.b2 * v[j] + s.one_minus_b2 * g * g;
    const float denom = std::sqrt(v[j]) / s.sqrt_bc2 + s.eps;
    p[j] = p[j] * s.keep - s.step_size * (m[j] / denom);
  }
  if (bf16)
    for (int64_t j = 0; j < n; ++j) bf16[j] = f32_to_bf16(p[j]);
}

double sum_of_squares_portable(const float* grad, int64_t n, const GradScales& scales) {
  double acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double x = (grad[j + l] * scales.first) * scales.second;
      acc[l] += x * x;
    }
  for (int l = 0; j < n; ++j, ++l) {
    const double x = (grad[j] * scales.first) * scales.second;
    acc[l] += x * x;
  }
  return combine_lanes(acc);
}

// ---- AVX-512 ----

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

// f32_to_bf16 on 16 lanes: NaN keeps its top half with the quiet bit set; others round to
// nearest even.
__m256i round_to_bf16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i magnitude = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7f800000));
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
  __m512i top = _mm512_srli_epi32(rounded, 16);
  top = _mm512_mask_or_epi32(top, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(top);
}

// GCC implements _mm512_add_ps / _mm512_mul_ps as plain vector arithmetic, which it may contract
// into fused multiply-adds; the explicit-rounding forms are single instructions it never fuses,
// so every operation rounds exactly as the scalar formula's does.
constexpr int kRound = _MM_FROUND_CUR_DIRECTION;
__m512 add(__m512 a, __m512 b) { return _mm512_add_round_ps(a, b, kRound); }
__m512 sub(__m512 a, __m512 b) { return _mm512_sub_round_ps(a, b, kRound); }
__m512 mul(__m512 a, __m512 b) { return _mm512_mul_round_ps(a, b, kRound); }
__m512 div(__m512 a, __m512 b) { return _mm512_div_round_ps(a, b, kRound); }

// The update of 16 lanes; m, v, p are read from and written to the given pointers through
// load / store (masked ones only for a tail: masked memory accesses are several times slower).
template <class Load, class Store>
void adamw_lanes(float* p, float* m, float* v, const float* grad, const AdamWScalars& s, const GradScales& scales,
                 uint16_t* bf16, const Load& load, const Store& store, __mmask16 k) {
  const __m512 g = mul(mul(load(grad), _mm512_set1_ps(scales.first)), _mm512_set1_ps(scales.second));
  const __m512 mj = add(mul(_mm512_set1_ps(s.b1), load(m)), mul(_mm512_set1_ps(s.one_minus_b1), g));
  const __m512 vj = add(mul(_mm512_set1_ps(s.b2), load(v)), mul(mul(_mm512_set1_ps(s.one_minus_b2), g), g));
  const __m512 denom = add(div(_mm512_sqrt_round_ps(vj, kRound), _mm512_set1_ps(s.sqrt_bc2)), _mm512_set1_ps(s.eps));
  const __m512 pj = sub(mul(load(p), _mm512_set1_ps(s.keep)), mul(_mm512_set1_ps(s.step_size), div(mj, denom)));
  store(m, mj);
  store(v, vj);
  store(p, pj);
  if (bf16) _mm256_mask_storeu_epi16(bf16, k, round_to_bf16(pj));
}

void adamw_update_avx512(float* p, float* m, float* v, const float* grad, int64_t n, const AdamWScalars& s,
                         const GradScales& scales, uint16_t* bf16) {
  const auto load = [](const float* x) { return _mm512_loadu_ps(x); };
  const auto store = [](float* x, __m512 value) { _mm512_storeu_ps(x, value); };
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    adamw_lanes(p + j, m + j, v + j, grad + j, s, scales, bf16 ? bf16 + j : nullptr, load, store, __mmask16(0xffff));
  if (j < n) {
    const __mmask16 k = __mmask16((1u << (n - j)) - 1u);
    const auto load_tail = [k](const float* x) { return _mm512_maskz_loadu_ps(k, x); };
    const auto store_tail = [k](float* x, __m512 value) { _mm512_mask_storeu_ps(x, k, value); };
    adamw_lanes(p + j, m + j, v + j, grad + j, s, scales, bf16 ? bf16 + j : nullptr, load_tail, store_tail, k);
  }
}

double sum_of_squares_avx512(const float* grad, int64_t n, const GradScales& scales) {
  const __m512 first = _mm512_set1_ps(scales.first), second = _mm512_set1_ps(scales.second);
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();  // lanes 0-7 and 8-15
  const auto accumulate = [&](__m512 loaded) {
    const __m512 x = mul(mul(loaded, first), second);
    const __m512d x_lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    const __m512d x_hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    lo = _mm512_fmadd_pd(x_lo, x_lo, lo);  // the square is exact in double: fused or not, same sum
    hi = _mm512_fmadd_pd(x_hi, x_hi, hi);
  };
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) accumulate(_mm512_loadu_ps(grad + j));
  // A tail's masked-off lanes load 0 and add 0 * 0: no change to their sums.
  if (j < n) accumulate(_mm512_maskz_loadu_ps(__mmask16((1u << (n - j)) - 1u), grad + j));
  double acc[kLanes];
  _mm512_storeu_pd(acc, lo);
  _mm512_storeu_pd(acc + 8, hi);
  return combine_lanes(acc);
}

#pragma GCC pop_options
#endif

bool use_avx512(kernels::cpu::Isa isa) {
  return isa >= kernels::cpu::Isa::Avx512 && kernels::cpu::hardware_isa() >= kernels::cpu::Isa::Avx512;
}

}  // namespace

void adamw_update(float* p, float* m, float* v, const float* grad, int64_t n, const AdamWScalars& s,
                  const GradScales& scales, uint16_t* bf16, kernels::cpu::Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  if (use_avx512(isa)) return adamw_update_avx512(p, m, v, grad, n, s, scales, bf16);
#endif
  adamw_update_portable(p, m, v, grad, n, s, scales, bf16);
}

double sum_of_squares(const float* grad, int64_t n, const GradScales& scales, kernels::cpu::Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  if (use_avx512(isa)) return sum_of_squares_avx512(grad, n, scales);
#endif
  return sum_of_squares_portable(grad, n, scales);
}

}  // namespace jetmoe::optimizer_kernels
