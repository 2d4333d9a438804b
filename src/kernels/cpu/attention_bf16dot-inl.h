// Prefill attention with bf16 products (AttentionBlock::bf16_products) on AVX512_BF16 dot
// products: the same blocks, online softmax and roundings as attention_rows<KV, true>, with both
// products (Q·K^T and P·V) as register tiles of vdpbf16ps, twice the fp32 multiply-add rate.
// Each product broadcasts a bf16 pair of its left rows (queries along the head dim, probabilities
// along the keys) against packed panels of pairs with the right operand's columns across the
// lanes (keys for the scores, head dims for the outputs): the register tiles of the bf16 backward
// products (backward_bf16dot-inl.h), and both results come out row-major.
// Included by isa_avx512bf16.cc after attention-inl.h and backward_bf16dot-inl.h; no includes here.

// C[0:rows, 0:cols] (+)= A · B on the pair tiles of the bf16 backward (pair_tile): row r's pair
// p at A[r * lda + p], B packed as pack_pair_panels packs it (panels of kNr columns).
inline void pair_product(int64_t rows, int64_t pairs, const uint32_t* A, int64_t lda, const uint32_t* panels,
                         int64_t cols, float* C, int64_t ldc, bool accumulate) {
  for (int64_t c = 0; c < cols; c += kNr) {
    const uint32_t* panel = panels + (c / kNr) * pairs * kNr;
    const int n = int(std::min<int64_t>(kNr, cols - c));
    for (int64_t r0 = 0; r0 < rows; r0 += kMr)
      pair_tile_for<false>(std::min<int64_t>(kMr, rows - r0))(pairs, A + r0 * lda, lda, panel, C + r0 * ldc + c, ldc,
                                                              n, accumulate);
  }
}

// x[0:n) rounded to bf16 as (n + 1) / 2 pairs (x[2p], x[2p + 1]), the partner of an odd n's
// last value 0. Vector stores only: the pairs are read back as 32-bit lanes.
inline void round_row_to_pairs(const float* x, int64_t n, uint32_t* out) {
  for (int64_t i = 0; i < n; i += 2 * N) {
    const int64_t left = n - i;
    const V lo = left >= N ? Simd::load(x + i) : Simd::load_n(x + i, int(left));
    const V hi = left >= 2 * N ? Simd::load(x + i + N)
                 : left > N    ? Simd::load_n(x + i + N, int(left - N))
                               : Simd::zero();
    const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    _mm512_mask_storeu_epi32(out + i / 2, Simd::mask(int(std::min<int64_t>(N, (left + 1) / 2))), pairs);
  }
}

// The first n of N cache elements at p, zero past n (n <= 0: none read).
template <class KV>
inline V load_kv_part(const KV* p, int64_t n) {
  return n >= N ? load_kv(p) : n <= 0 ? Simd::zero() : load_kv_n(p, int(n));
}

// The key block as B panels of pair_product: keys (kb0 + c) for c < kb rounded up to kNr (zero
// past kb) across the lanes, the D/2 pairs (key[2p], key[2p + 1]) down the rows (the partner of
// an odd D's last element is 0). 16 keys x 16 pairs at a time, rounded and transposed in registers.
template <class KV>
void pack_key_pairs(const AttentionBlock& b, const KV* keys, int64_t kb0, int64_t kb, uint32_t* panels) {
  const int64_t D = b.head_dim, pairs = (D + 1) / 2;
  for (int64_t c0 = 0; c0 < kb; c0 += N) {
    uint32_t* panel = panels + (c0 / kNr) * pairs * kNr + c0 % kNr;
    for (int64_t p0 = 0; p0 < pairs; p0 += N) {
      V r[N];
      for (int i = 0; i < N; ++i) {
        if (c0 + i >= kb) {
          r[i] = Simd::zero();
          continue;
        }
        const KV* key = keys + (kb0 + c0 + i) * b.kv_stride + 2 * p0;
        const int64_t left = D - 2 * p0;  // values of this key from 2 * p0 on
        r[i] = (V)_mm512_cvtne2ps_pbh(load_kv_part(key + N, left - N), load_kv_part(key, left));
      }
      Simd::transpose(r);  // r[j]: pair p0 + j of the 16 keys
      const int64_t n = std::min<int64_t>(N, pairs - p0);
      for (int j = 0; j < n; ++j) _mm512_storeu_si512(panel + (p0 + j) * kNr, _mm512_castps_si512(r[j]));
    }
  }
}

template <class KV>
void attention_rows_bf16dot(const AttentionBlock& b, float* scratch) {
  constexpr int64_t KB = kAttentionKeyBlock;
  static_assert(KB % kNr == 0, "a key block is whole panels");
  const int64_t R = b.rows, D = b.head_dim, d_pad = (D + 63) / 64 * 64;
  const int64_t d_pairs = (D + 1) / 2;
  constexpr DType kv_dtype = std::is_same_v<KV, float> ? DType::F32 : DType::F16;
  // The layout of attention_rows, with the transposed keys and widened values replaced by their
  // pair panels and the rounded queries and probabilities held as bf16 pairs.
  float* S = scratch;                                             // [R, KB] scores, then probabilities
  float* O = S + kAttentionMaxRows * KB;                          // [R, d_pad] unnormalised outputs
  float* m = O + kAttentionMaxRows * d_pad;                       // [R] running max
  float* l = m + kAttentionMaxRows;                               // [R] running sum
  uint32_t* Kp = reinterpret_cast<uint32_t*>(l + kAttentionMaxRows);  // key pairs: d_pairs x KB
  uint32_t* Vp = Kp + d_pad * KB;                                 // value pairs: KB / 2 x D rounded up to kNr
  uint32_t* Q2 = Vp + d_pad * KB;                                 // [R, d_pad / 2] query pairs
  uint32_t* P2 = Q2 + kAttentionMaxRows * d_pad / 2;              // [R, KB / 2] probability pairs
  const KV* keys = static_cast<const KV*>(b.keys);
  const KV* values = static_cast<const KV*>(b.values);
  std::fill(O, O + R * d_pad, 0.0f);
  std::fill(m, m + R, -std::numeric_limits<float>::infinity());
  std::fill(l, l + R, 0.0f);
  std::fill(Kp, Kp + d_pairs * KB, 0u);  // lanes of keys past a short block's end are read, never stored
  for (int64_t r = 0; r < R; ++r)
    round_row_to_pairs(b.q + r * b.q_stride, D, Q2 + r * d_pad / 2);

  const int64_t n_max = *std::max_element(b.n_keys, b.n_keys + R);
  for (int64_t kb0 = 0; kb0 < n_max; kb0 += KB) {
    const int64_t kb = std::min(KB, n_max - kb0);
    pack_key_pairs(b, keys, kb0, kb, Kp);
    pair_product(R, d_pairs, Q2, d_pad / 2, Kp, kb, S, KB, /*accumulate=*/false);
    for (int64_t r = 0; r < R; ++r) {
      online_softmax_row(S + r * KB, kb, std::clamp<int64_t>(b.n_keys[r] - kb0, 0, kb), b.scale, m[r], l[r],
                         O + r * d_pad, D);
      round_row_to_pairs(S + r * KB, kb, P2 + r * KB / 2);
    }
    pack_pair_panels<kv_dtype>(values + kb0 * b.kv_stride, b.kv_stride, 0, kb, 0, D, Vp);
    pair_product(R, (kb + 1) / 2, P2, KB / 2, Vp, D, O, d_pad, /*accumulate=*/true);
  }
  write_attention_outputs(b, O, d_pad, l);
}

// The kernel table's attention on this level: bf16 products on dot products, the rest as on
// AVX-512.
void attention_bf16dot(const AttentionBlock& b, float* scratch) {
  if (!b.bf16_products) attention(b, scratch);
  else if (b.kv_type == DType::F16) attention_rows_bf16dot<uint16_t>(b, scratch);
  else attention_rows_bf16dot<float>(b, scratch);
}
