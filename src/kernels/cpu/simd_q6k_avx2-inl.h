// The Q6_K super-block policy of matmul_kquant-inl.h on AVX2 (also run by the AVX-512 level; the
// AVX512_VNNI level has matmul_q6k_vnni-inl.h).
// Each half of a super-block (128 values) is two 32-byte loads of low nibbles and one of high
// bit pairs; chunk c of 32 values (an activation block) gets its levels u in 0 .. 63 from them.
// vpmaddubsw gives pair sums of u x, from which those of 32 x (the level offset) are subtracted,
// both in int16 without saturation (|pair| <= 2 * 63 * 127 and 2 * 32 * 127); vpmaddwd with the
// two groups' 8-bit scales (lanes 0-7: the first 16 values, 8-15: the next 16) makes 8 exact int32
// partial sums, scaled in fp32 by d dx_k. Included by isa_<level>.cc inside its namespace and
// target pragma, after simd_q8_avx2-inl.h; no includes here.

struct Q6kAvx2 {
  struct Layout {
    static constexpr size_t kBytes = kQ6kBytes;
  };
  struct Sums {
    __m256 acc[2];  // independent FMA chains, lanes = partial sums
  };
  struct Scales {
    float d;
    __m256i groups[8];  // per activation block k: lanes 0-7 sc_2k, lanes 8-15 sc_2k+1 (int16)
  };

  static Sums zero() { return {{_mm256_setzero_ps(), _mm256_setzero_ps()}}; }
  static float finish(const Sums& s) { return Q8Avx2::reduce(_mm256_add_ps(s.acc[0], s.acc[1])); }

  static Scales load_scales(const uint8_t* block) {
    Scales s{Q8Avx2::f16(block + kQ6kDAt), {}};
    const auto* sc = reinterpret_cast<const int8_t*>(block + kQ6kScalesAt);
    for (int k = 0; k < 8; ++k) s.groups[k] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
    return s;
  }

  static void accumulate(const uint8_t* block, const Scales& s, const int8_t* xq, const float* xs, const int32_t*,
                         Sums& sums) {
    const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(s.d), _mm256_loadu_ps(xs));  // lane k: d dx_k
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30), offset = _mm256_set1_epi8(32);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + kQ6kHighBitsAt + 32 * h));
      // Chunk c: the low nibbles of ql0 / ql1 (c = 0, 1) or their high nibbles (2, 3); bits 2c,
      // 2c + 1 of qh moved to bits 4, 5 (what a 16-bit shift carries across bytes is masked off).
      const __m256i levels[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45)),
      };
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        const int k = 4 * h + c;
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + k * kQuantBlock));
        const __m256i pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(levels[c], x), _mm256_maddubs_epi16(offset, x));
        const __m256i dots = _mm256_madd_epi16(pairs, s.groups[k]);
        const __m256 lane_scale = _mm256_permutevar8x32_ps(scale, _mm256_set1_epi32(k));
        sums.acc[c % 2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), lane_scale, sums.acc[c % 2]);
      }
    }
  }
};
