// 8-bit block primitives for the quantized products (matmul_q8-inl.h) on AVX2: one block of 32
// levels in a 256-bit register, products by vpmaddubsw (unsigned x signed bytes, pairs summed to
// int16) and vpmaddwd (pairs to int32), so the 8 int32 lanes hold exact partial sums of the block.
// Also used by the AVX-512 levels (AVX512VL runs it unchanged). Included by isa_<level>.cc inside
// its namespace and target pragma; no includes here.

struct Q8Avx2 {
  using Block = __m256i;
  using Acc = __m256;  // 8 partial sums of a block, scaled

  static Acc zero() { return _mm256_setzero_ps(); }
  static Acc add(Acc a, Acc b) { return _mm256_add_ps(a, b); }
  static Acc fma(Acc p, float s, Acc acc) { return _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc); }
  static float reduce(Acc v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
  }

  static Block load_x(const int8_t* x) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)); }
  static Block load_q8_0(const uint8_t* qs) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)); }
  // The 32 nibbles in value order (low nibbles are values 0 .. 15, high nibbles 16 .. 31), 0 .. 15.
  static Block load_q4_0(const uint8_t* qs) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i low4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), low4), _mm_and_si128(packed, low4));
  }

  static __m256i pairs_to_i32(__m256i sums16) { return _mm256_madd_epi16(sums16, _mm256_set1_epi16(1)); }
  // Q8_0 levels are signed: multiply |w| (unsigned) by x with w's sign, so each pair of products
  // is at most 2 * 128 * 127 and vpmaddubsw never saturates.
  static Acc dot_q8_0(Block w, Block x, int32_t) {
    const __m256i sums16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(pairs_to_i32(sums16));
  }
  // Q4_0 nibbles u are unsigned (pairs at most 2 * 15 * 127): sum (u - 8) x = sum u x - 8 sum x,
  // the correction spread as -x_sum over the 8 lanes.
  static Acc dot_q4_0(Block u, Block x, int32_t x_sum) {
    const __m256i sums = pairs_to_i32(_mm256_maddubs_epi16(u, x));
    return _mm256_cvtepi32_ps(_mm256_add_epi32(sums, _mm256_set1_epi32(-x_sum)));
  }

  // One block of activations as kernels::quantize_row_q8 quantizes it (x * (1 / d) rounded by
  // vcvtps2dq in the default rounding mode, half to even), plus the sum of its levels.
  static void quantize_block(const float* x, int8_t* q, float* scale, int32_t* sum) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 8 * i);
      amax = _mm256_max_ps(amax, _mm256_and_ps(v[i], abs_mask));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.0f >= std::numeric_limits<float>::min() ? _mm_cvtss_f32(m) / 127.0f : 0.0f;
    const __m256 inv = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    __m256i l[4];
    for (int i = 0; i < 4; ++i) l[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));
    // Saturating packs interleave 128-bit lanes; the permute restores value order.
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(l[0], l[1]), _mm256_packs_epi32(l[2], l[3]));
    const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(l[0], l[1]), _mm256_add_epi32(l[2], l[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    *scale = d;
    *sum = _mm_cvtsi128_si32(s4);
  }
};
