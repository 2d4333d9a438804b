// Causal attention of one block of query rows against one KV head, for one ISA (needs
// matmul-inl.h first). Keys are visited kAttentionKeyBlock at a time with an online softmax
// (running max m and sum l per row, earlier partial outputs rescaled when the max grows), so a
// row never materialises more than one key block of scores: memory is O(rows x block), not
// O(T x T). Scores are Q·K^T as a register-tiled product against a transposed key block (or, for
// the one or two rows of decoding, dot products straight from the cache); the output
// accumulates P·V with the value rows read in place. Float16 caches are widened as they are
// read: keys while they are packed or dotted, a value block into float32 scratch before P·V.
// With bf16 products (AttentionBlock::bf16_products) the queries, keys, probabilities and values
// are rounded to bf16 where they are packed; attention_bf16dot-inl.h runs the same on bf16 dot
// products.
// Included by isa_<level>.cc inside its namespace and target pragma; no includes here.

// Cache elements as float32 vectors: F32 rows in place, F16 rows (uint16_t bits) widened.
inline V load_kv(const float* p) { return Simd::load(p); }
inline V load_kv(const uint16_t* p) { return Simd::load_f16(p); }
inline V load_kv_n(const float* p, int n) { return Simd::load_n(p, n); }
inline V load_kv_n(const uint16_t* p, int n) { return Simd::load_f16_n(p, n); }
// v rounded to bf16 when kRound (bf16 products), else v itself.
template <bool kRound>
inline V round_bf16_if(V v) {
  if constexpr (kRound) return Simd::round_bf16(v);
  else return v;
}

// S[c] for c < kb: dot(q_row, key c) for `rows` rows, straight from the cache.
template <class KV>
void scores_by_dots(const AttentionBlock& b, const KV* keys, int64_t kb0, int64_t kb, float* S, int64_t lds) {
  const int64_t D = b.head_dim;
  for (int64_t c = 0; c < kb; ++c) {
    const KV* key = keys + (kb0 + c) * b.kv_stride;
    for (int64_t r = 0; r < b.rows; ++r) {
      const float* q = b.q + r * b.q_stride;
      V acc = Simd::zero();
      int64_t d = 0;
      for (; d + N <= D; d += N) acc = Simd::fma(Simd::load(q + d), load_kv(key + d), acc);
      if (d < D) acc = Simd::fma(Simd::load_n(q + d, int(D - d)), load_kv_n(key + d, int(D - d)), acc);
      S[r * lds + c] = Simd::reduce_add(acc);
    }
  }
}

// Kt[d * kAttentionKeyBlock + c] = key (kb0 + c)[d], zero for kb <= c < kb rounded up to N;
// rounded to bf16 when kRound.
template <class KV, bool kRound>
void pack_keys_transposed(const AttentionBlock& b, const KV* keys, int64_t kb0, int64_t kb, float* Kt) {
  const int64_t D = b.head_dim;
  for (int64_t c0 = 0; c0 < kb; c0 += N) {
    for (int64_t d0 = 0; d0 < D; d0 += N) {
      const int n = int(std::min<int64_t>(N, D - d0));
      V r[N];
      for (int i = 0; i < N; ++i) {
        const KV* key = keys + (kb0 + c0 + i) * b.kv_stride + d0;
        r[i] = round_bf16_if<kRound>(c0 + i >= kb ? Simd::zero() : n == N ? load_kv(key) : load_kv_n(key, n));
      }
      Simd::transpose(r);
      for (int i = 0; i < n; ++i) Simd::store(Kt + (d0 + i) * kAttentionKeyBlock + c0, r[i]);
    }
  }
}

// Turns one row of raw scores s[0:kb) into probabilities against the running max / sum of the
// row, rescaling its partial output o[0:D). `valid` keys are unmasked (the rest become 0).
inline void online_softmax_row(float* s, int64_t kb, int64_t valid, float scale, float& m, float& l, float* o,
                               int64_t D) {
  if (valid <= 0) {
    std::fill(s, s + kb, 0.0f);
    return;
  }
  const V vscale = Simd::set1(scale);
  V vmax = Simd::set1(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + N <= valid; i += N) {
    const V x = Simd::mul(Simd::load(s + i), vscale);
    Simd::store(s + i, x);
    vmax = Simd::max(vmax, x);
  }
  float mx = Simd::reduce_max(vmax);
  for (; i < valid; ++i) mx = std::max(mx, s[i] *= scale);
  const float m_new = std::max(m, mx);
  const float corr = m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m - m_new);
  const V vm = Simd::set1(m_new);
  V vsum = Simd::zero();
  i = 0;
  for (; i + N <= valid; i += N) {
    const V p = Simd::exp(Simd::sub(Simd::load(s + i), vm));
    Simd::store(s + i, p);
    vsum = Simd::add(vsum, p);
  }
  if (i < valid) {
    const int n = int(valid - i);
    const V p = Simd::exp(Simd::sub(Simd::load_n(s + i, n), vm));
    Simd::store_n(s + i, p, n);
    vsum = Simd::add(vsum, Simd::load_n(s + i, n));
  }
  std::fill(s + valid, s + kb, 0.0f);
  l = l * corr + Simd::reduce_add(vsum);
  if (corr != 1.0f) {
    const V vc = Simd::set1(corr);
    int64_t d = 0;
    for (; d + N <= D; d += N) Simd::store(o + d, Simd::mul(Simd::load(o + d), vc));
    for (; d < D; ++d) o[d] *= corr;
  }
  m = m_new;
}

// out[0:n) = x[0:n) rounded to bf16 (out may be x).
inline void round_bf16_row(const float* x, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + N <= n; i += N) Simd::store(out + i, Simd::round_bf16(Simd::load(x + i)));
  if (i < n) Simd::store_n(out + i, Simd::round_bf16(Simd::load_n(x + i, int(n - i))), int(n - i));
}

// value rows [kb0, kb0 + kb) as float32 rows D apart: widened, and rounded to bf16 when kRound.
template <class KV, bool kRound>
void widen_values(const AttentionBlock& b, const KV* values, int64_t kb0, int64_t kb, float* out) {
  const int64_t D = b.head_dim;
  for (int64_t c = 0; c < kb; ++c) {
    const KV* v = values + (kb0 + c) * b.kv_stride;
    float* o = out + c * D;
    int64_t d = 0;
    for (; d + N <= D; d += N) Simd::store(o + d, round_bf16_if<kRound>(load_kv(v + d)));
    if (d < D) Simd::store_n(o + d, round_bf16_if<kRound>(load_kv_n(v + d, int(D - d))), int(D - d));
  }
}

// Normalised outputs: row r of O (d_pad apart) divided by its sum l[r].
inline void write_attention_outputs(const AttentionBlock& b, const float* O, int64_t d_pad, const float* l) {
  const int64_t D = b.head_dim;
  for (int64_t r = 0; r < b.rows; ++r) {
    const V inv = Simd::set1(1.0f / l[r]);
    const float* o = O + r * d_pad;
    float* out = b.out + r * b.out_stride;
    int64_t d = 0;
    for (; d + N <= D; d += N) Simd::store(out + d, Simd::mul(Simd::load(o + d), inv));
    if (d < D) Simd::store_n(out + d, Simd::mul(Simd::load_n(o + d, int(D - d)), inv), int(D - d));
  }
}

// kRound: bf16 products, on fp32 multiply-adds of the rounded values.
template <class KV, bool kRound>
void attention_rows(const AttentionBlock& b, float* scratch) {
  constexpr int64_t KB = kAttentionKeyBlock;
  static_assert(KB % kNr == 0, "score tiles read whole kNr-column slices of a key block");
  const int64_t R = b.rows, D = b.head_dim;
  const int64_t d_pad = (D + 63) / 64 * 64;
  float* S = scratch;                       // [R, KB] scores, then probabilities
  float* O = S + kAttentionMaxRows * KB;    // [R, d_pad] unnormalised outputs
  float* m = O + kAttentionMaxRows * d_pad; // [R] running max
  float* l = m + kAttentionMaxRows;         // [R] running sum
  float* Kt = l + kAttentionMaxRows;        // [D, KB] transposed key block
  float* V_wide = Kt + d_pad * KB;          // [KB, D] value block in float32 (F16 caches, kRound)
  float* Q_round = V_wide + d_pad * KB;     // [R, d_pad] queries rounded to bf16 (kRound)
  const KV* keys = static_cast<const KV*>(b.keys);
  const KV* values = static_cast<const KV*>(b.values);
  std::fill(O, O + R * d_pad, 0.0f);
  std::fill(m, m + R, -std::numeric_limits<float>::infinity());
  std::fill(l, l + R, 0.0f);
  std::fill(Kt, Kt + D * KB, 0.0f);  // columns past a short block's end are read, never used
  const float* q = b.q;
  int64_t q_stride = b.q_stride;
  if constexpr (kRound) {
    for (int64_t r = 0; r < R; ++r) round_bf16_row(b.q + r * b.q_stride, D, Q_round + r * d_pad);
    q = Q_round, q_stride = d_pad;
  }

  // Too few rows to pay for transposing the keys (rounded keys are always packed).
  const bool by_dots = !kRound && R <= 2;
  const int64_t n_max = *std::max_element(b.n_keys, b.n_keys + R);
  for (int64_t kb0 = 0; kb0 < n_max; kb0 += KB) {
    const int64_t kb = std::min(KB, n_max - kb0);
    if (by_dots) {
      scores_by_dots(b, keys, kb0, kb, S, KB);
    } else {
      pack_keys_transposed<KV, kRound>(b, keys, kb0, kb, Kt);
      for (int64_t c0 = 0; c0 < kb; c0 += kNr)
        tile_rows<false>(R, D, q, q_stride, Kt + c0, KB, S + c0, KB, int(std::min<int64_t>(kNr, kb - c0)),
                         /*accumulate=*/false);
    }
    for (int64_t r = 0; r < R; ++r) {
      online_softmax_row(S + r * KB, kb, std::clamp<int64_t>(b.n_keys[r] - kb0, 0, kb), b.scale, m[r], l[r],
                         O + r * d_pad, D);
      if constexpr (kRound) round_bf16_row(S + r * KB, kb, S + r * KB);
    }
    const float* V_block;
    int64_t ldv;
    if constexpr (std::is_same_v<KV, float> && !kRound) {
      V_block = values + kb0 * b.kv_stride, ldv = b.kv_stride;
    } else {
      widen_values<KV, kRound>(b, values, kb0, kb, V_wide);
      V_block = V_wide, ldv = D;
    }
    for (int64_t d0 = 0; d0 < D; d0 += kNr) {
      const int n = int(std::min<int64_t>(kNr, D - d0));
      if (n == kNr) tile_rows<false>(R, kb, S, KB, V_block + d0, ldv, O + d0, d_pad, n, true);
      else tile_rows<true>(R, kb, S, KB, V_block + d0, ldv, O + d0, d_pad, n, true);
    }
  }
  write_attention_outputs(b, O, d_pad, l);
}

void attention(const AttentionBlock& b, float* scratch) {
  if (b.kv_type == DType::F16) {
    if (b.bf16_products) attention_rows<uint16_t, true>(b, scratch);
    else attention_rows<uint16_t, false>(b, scratch);
  } else {
    if (b.bf16_products) attention_rows<float, true>(b, scratch);
    else attention_rows<float, false>(b, scratch);
  }
}
