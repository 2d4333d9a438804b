// The k-quant super-block policy of matmul_kquant-inl.h on AVX2 (also run by the AVX-512 level),
// for the layout L (Q4kLayout or Q5kLayout): each group of 32 bytes of levels gives two sub-blocks
// (low and high nibbles) in 256-bit registers, Q5_K's fifth bits ORed in from its 32 high-bit bytes;
// vpmaddubsw / vpmaddwd make 8 exact int32 partial sums per sub-block, scaled in fp32 by
// d sc_k dx_k; the min term of all 8 sub-blocks is one 8-lane FMA. Included by isa_<level>.cc
// inside its namespace and target pragma, after simd_q8_avx2-inl.h; no includes here.

// The 8 scales sc_k (bytes 0-7) and 8 mins m_k (bytes 8-15) of a super-block, unpacked from its 12
// bytes of scales (core/q4_k.h) by 32-bit words w0, w1, w2:
//   sc_0..3 = w0 & 0x3f..,  sc_4..7 = (w2 & 0x0f..) | ((w0 >> 2) & 0x30..)  (top bits of bytes 0-3)
//   m_0..3  = w1 & 0x3f..,  m_4..7  = ((w2 >> 4) & 0x0f..) | ((w1 >> 2) & 0x30..)
inline __m128i q4k_scales_and_mins(const uint8_t* block) {
  const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + kQ4kScalesAt));  // w0 w1 w2 (w3: levels)
  __m128i low = _mm_shuffle_epi32(w, _MM_SHUFFLE(2, 1, 2, 0));                                 // w0 w2 w1 w2
  low = _mm_srlv_epi32(low, _mm_setr_epi32(0, 0, 0, 4));
  low = _mm_and_si128(low, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i high = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(w, _MM_SHUFFLE(1, 1, 0, 0)), 2),  // w0 w0 w1 w1
                                     _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(low, high);
}

template <class L>
struct KQuantAvx2 {
  using Layout = L;
  struct Sums {
    __m256 main[4];  // independent FMA chains, lanes = partial sums
    __m256 min;      // lane k: sum of dmin m_k dx_k s_k
  };
  struct Scales {
    __m256 d_sc;     // lane k: d sc_k
    __m256 dmin_m;   // lane k: dmin m_k
  };

  static Sums zero() {
    Sums s;
    for (__m256& v : s.main) v = _mm256_setzero_ps();
    s.min = _mm256_setzero_ps();
    return s;
  }
  static float finish(const Sums& s) {
    const __m256 main = _mm256_add_ps(_mm256_add_ps(s.main[0], s.main[1]), _mm256_add_ps(s.main[2], s.main[3]));
    return Q8Avx2::reduce(main) - Q8Avx2::reduce(s.min);
  }

  static Scales load_scales(const uint8_t* block) {
    const __m128i sc_m = q4k_scales_and_mins(block);
    const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sc_m));
    const __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sc_m, 8)));
    return {_mm256_mul_ps(_mm256_set1_ps(Q8Avx2::f16(block)), sc),
            _mm256_mul_ps(_mm256_set1_ps(Q8Avx2::f16(block + 2)), m)};
  }

  static void accumulate(const uint8_t* block, const Scales& s, const int8_t* xq, const float* xs, const int32_t* xsum,
                         Sums& sums) {
    const __m256 dx = _mm256_loadu_ps(xs);
    const __m256 scale = _mm256_mul_ps(s.d_sc, dx);  // lane k: d sc_k dx_k
    const __m256 sum = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xsum)));
    sums.min = _mm256_fmadd_ps(sum, _mm256_mul_ps(s.dmin_m, dx), sums.min);
    const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const uint8_t* qs = block + L::kLevelsAt;
    // Q5_K: at group g, bits 0 and 1 of byte j of `high` are the fifth bits of value j of
    // sub-blocks 2g and 2g + 1; 16-bit shifts move them to bit 4. (Bits a shift carries across
    // the two bytes of a 16-bit lane end at bits 0-3 of the upper byte or above bit 1 of the
    // lower one, neither of which is read.)
    [[maybe_unused]] __m256i high;
    if constexpr (L::kHighBits) high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + L::kHighBitsAt));
    const __m256i bit4 = _mm256_set1_epi8(0x10);
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * g));
      __m256i levels[2] = {_mm256_and_si256(packed, low4), _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4)};
      if constexpr (L::kHighBits) {
        levels[0] = _mm256_or_si256(levels[0], _mm256_and_si256(_mm256_slli_epi16(high, 4), bit4));
        levels[1] = _mm256_or_si256(levels[1], _mm256_and_si256(_mm256_slli_epi16(high, 3), bit4));
        high = _mm256_srli_epi16(high, 2);
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const int k = 2 * g + h;
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + k * kQuantBlock));
        // Levels are unsigned: pairs at most 2 * 31 * 127, no vpmaddubsw saturation.
        const __m256i dots = _mm256_madd_epi16(_mm256_maddubs_epi16(levels[h], xv), ones);
        const __m256 lane_scale = _mm256_permutevar8x32_ps(scale, _mm256_set1_epi32(k));
        sums.main[(g % 2) * 2 + h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), lane_scale, sums.main[(g % 2) * 2 + h]);
      }
    }
  }
};
