// Decoding attention over a range of cache positions, every KV head of a position at once
// (DecodeAttentionBlock, kernel_table.h), for one ISA. Per step of kDecodeStep positions:
//  - scores: for each position and query row, N heads' dot products accumulate side by side and
//    one transpose adds them into a vector of N head scores (one horizontal sum per score would
//    make each wait out its own chain of dependent adds);
//  - an online softmax per row and head, N heads per vector: the step's max, the earlier
//    outputs rescaled when it grows, the exponentials and their sum;
//  - P·V: each value row, read once in order, adds into every row's unnormalised output.
// Included by isa_<level>.cc after attention-inl.h, inside its namespace and target pragma; no
// includes here.

// scale x dot(q head j, key head j) for heads g0 .. g0 + N - 1 (lanes past `heads` are zero).
template <class KV>
V head_scores(const float* q, const KV* key, int64_t g0, int64_t heads, int64_t D, float scale) {
  const int count = int(std::min<int64_t>(N, heads - g0));
  const int64_t whole = D / N * N;
  V acc[N];
  for (int i = 0; i < N; ++i) {
    V a = Simd::zero();
    if (i < count) {
      const float* qh = q + (g0 + i) * D;
      const KV* kh = key + (g0 + i) * D;
      for (int64_t d = 0; d < whole; d += N) a = Simd::fma(Simd::load(qh + d), load_kv(kh + d), a);
      if (whole < D)
        a = Simd::fma(Simd::load_n(qh + whole, int(D - whole)), load_kv_n(kh + whole, int(D - whole)), a);
    }
    acc[i] = a;
  }
  Simd::transpose(acc);
  V sum = acc[0];
  for (int i = 1; i < N; ++i) sum = Simd::add(sum, acc[i]);
  return Simd::mul(sum, Simd::set1(scale));
}

// o[0:D) *= factor.
inline void scale_output(float* o, int64_t D, float factor) {
  const V f = Simd::set1(factor);
  int64_t d = 0;
  for (; d + N <= D; d += N) Simd::store(o + d, Simd::mul(Simd::load(o + d), f));
  if (d < D) Simd::store_n(o + d, Simd::mul(Simd::load_n(o + d, int(D - d)), f), int(D - d));
}

template <class KV>
void decode_attention_rows(const DecodeAttentionBlock& b, float* scratch) {
  const int64_t R = b.rows, H = b.heads, D = b.head_dim, HD = H * D, Hp = decode_heads_padded(H);
  const auto [m, l, o] = decode_state(b.state, R, H);
  float* S = scratch;  // [R, kDecodeStep, Hp] scores, then exponentials
  const KV* keys = static_cast<const KV*>(b.keys);
  const KV* values = static_cast<const KV*>(b.values);
  const V minus_inf = Simd::set1(-std::numeric_limits<float>::infinity());
  for (int64_t p0 = b.key_begin; p0 < b.key_end; p0 += kDecodeStep) {
    const int64_t P = std::min(kDecodeStep, b.key_end - p0);
    for (int64_t c = 0; c < P; ++c) {
      const KV* key = keys + (p0 + c) * HD;
      for (int64_t r = 0; r < R; ++r) {
        float* s = S + (r * kDecodeStep + c) * Hp;
        const bool visible = p0 + c < b.n_keys[r];
        for (int64_t g0 = 0; g0 < H; g0 += N)
          Simd::store(s + g0, visible ? head_scores(b.q + r * HD, key, g0, H, D, b.scale) : minus_inf);
      }
    }
    for (int64_t r = 0; r < R; ++r)
      for (int64_t g0 = 0; g0 < H; g0 += N) {
        float* s = S + r * kDecodeStep * Hp + g0;
        const V m_old = Simd::load(m + r * Hp + g0);
        V m_new = m_old;
        for (int64_t c = 0; c < P; ++c) m_new = Simd::max(m_new, Simd::load(s + c * Hp));
        // Finite from the first step on (every row sees key_begin); exp(-inf) = 0 before that.
        const V correction = Simd::exp(Simd::sub(m_old, m_new));
        V sum = Simd::zero();
        for (int64_t c = 0; c < P; ++c) {
          const V e = Simd::exp(Simd::sub(Simd::load(s + c * Hp), m_new));
          Simd::store(s + c * Hp, e);
          sum = Simd::add(sum, e);
        }
        Simd::store(l + r * Hp + g0, Simd::fma(Simd::load(l + r * Hp + g0), correction, sum));
        Simd::store(m + r * Hp + g0, m_new);
        float factors[N];
        Simd::store(factors, correction);
        for (int64_t i = 0; i < N && g0 + i < H; ++i)
          if (factors[i] != 1.0f) scale_output(o + r * HD + (g0 + i) * D, D, factors[i]);
      }
    for (int64_t c = 0; c < P; ++c) {
      const KV* value = values + (p0 + c) * HD;
      for (int64_t j = 0; j < H; ++j) {
        const KV* v = value + j * D;
        for (int64_t r = 0; r < R; ++r) {
          const V p = Simd::set1(S[(r * kDecodeStep + c) * Hp + j]);
          float* out = o + r * HD + j * D;
          int64_t d = 0;
          for (; d + N <= D; d += N) Simd::store(out + d, Simd::fma(p, load_kv(v + d), Simd::load(out + d)));
          if (d < D) {
            const int n = int(D - d);
            Simd::store_n(out + d, Simd::fma(p, load_kv_n(v + d, n), Simd::load_n(out + d, n)), n);
          }
        }
      }
    }
  }
}

void decode_attention(const DecodeAttentionBlock& b, float* scratch) {
  if (b.kv_type == DType::F16) decode_attention_rows<uint16_t>(b, scratch);
  else decode_attention_rows<float>(b, scratch);
}
