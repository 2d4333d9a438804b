// Backward of causal attention for one head (kernels/attention_backward.h), one query row at a
// time, written once over the `Simd` of the including file (isa_<level>.cc). Keys and
// values are first transposed ([head_dim][positions], zero-padded) so that the scores q · k_p
// and dP_p = dout · v_p of a row are vectors over positions; the gradients are then vectors over
// the head dimension: dq accumulates in registers, dK and dV rows are updated in place.
// Included by each isa_<level>.cc after matmul-inl.h (V, N); no includes here.

// Positions per step of the score loop (two vectors: independent accumulator chains).
constexpr int64_t kScoreStep = 2 * N;
// Head-dimension vectors dq keeps in registers at once.
constexpr int kDqVectors = 4;

inline int64_t padded_positions(int64_t positions) { return (positions + kScoreStep - 1) / kScoreStep * kScoreStep; }

// Floats of scratch for one head: transposed keys and values, dK and dV, two rows of scores.
inline int64_t attention_backward_scratch(int64_t positions, int64_t head_dim) {
  const int64_t padded = padded_positions(positions);
  return 4 * head_dim * padded + 2 * padded;
}

// out[i * padded + p] = rows[p * stride + i] for p < positions, zero up to `padded`.
inline void transpose_rows(const float* rows, int64_t stride, int64_t positions, int64_t D, int64_t padded,
                           float* out) {
  for (int64_t i = 0; i < D; ++i) {
    float* dst = out + i * padded;
    for (int64_t p = 0; p < positions; ++p) dst[p] = rows[p * stride + i];
    std::fill(dst + positions, dst + padded, 0.0f);
  }
}

// s[p] = x · Xt[:, p] for p < n rounded up to kScoreStep (Xt rows `padded` apart).
inline void row_dots(const float* x, const float* Xt, int64_t padded, int64_t D, int64_t n, float* s) {
  for (int64_t p0 = 0; p0 < n; p0 += kScoreStep) {
    V a0 = Simd::zero(), a1 = Simd::zero();
    for (int64_t i = 0; i < D; ++i) {
      const V xi = Simd::set1(x[i]);
      a0 = Simd::fma(xi, Simd::load(Xt + i * padded + p0), a0);
      a1 = Simd::fma(xi, Simd::load(Xt + i * padded + p0 + N), a1);
    }
    Simd::store(s + p0, a0);
    Simd::store(s + p0 + N, a1);
  }
}

// s[0:n) <- softmax(scale * s[0:n)).
inline void scaled_softmax(float* s, int64_t n, float scale) {
  const V vscale = Simd::set1(scale);
  V vmax = Simd::set1(-std::numeric_limits<float>::infinity());
  int64_t p = 0;
  for (; p + N <= n; p += N) vmax = Simd::max(vmax, Simd::mul(Simd::load(s + p), vscale));
  float mx = Simd::reduce_max(vmax);
  for (; p < n; ++p) mx = std::max(mx, s[p] * scale);
  const V vmx = Simd::set1(mx);
  V vsum = Simd::zero();
  for (p = 0; p + N <= n; p += N) {
    const V e = Simd::exp(Simd::sub(Simd::mul(Simd::load(s + p), vscale), vmx));
    Simd::store(s + p, e);
    vsum = Simd::add(vsum, e);
  }
  if (p < n) {
    const int rest = int(n - p);
    const V e = Simd::exp(Simd::sub(Simd::mul(Simd::load_n(s + p, rest), vscale), vmx));
    Simd::store_n(s + p, e, rest);
    vsum = Simd::add(vsum, Simd::load_n(s + p, rest));
  }
  const V inv = Simd::set1(1.0f / Simd::reduce_add(vsum));
  for (p = 0; p + N <= n; p += N) Simd::store(s + p, Simd::mul(Simd::load(s + p), inv));
  if (p < n) Simd::store_n(s + p, Simd::mul(Simd::load_n(s + p, int(n - p)), inv), int(n - p));
}

// y[0:D) += a * x[0:D).
inline void axpy(float a, const float* x, float* y, int64_t D) {
  const V va = Simd::set1(a);
  int64_t i = 0;
  for (; i + N <= D; i += N) Simd::store(y + i, Simd::fma(va, Simd::load(x + i), Simd::load(y + i)));
  if (i < D)
    Simd::store_n(y + i, Simd::fma(va, Simd::load_n(x + i, int(D - i)), Simd::load_n(y + i, int(D - i))), int(D - i));
}

// dq[0:D) = sum_{p < n} ds[p] * key p, kDqVectors vectors of the head dimension at a time.
inline void weighted_key_sum(const float* ds, const float* keys, int64_t kv_stride, int64_t n, int64_t D, float* dq) {
  for (int64_t d0 = 0; d0 < D; d0 += kDqVectors * N) {
    int lanes[kDqVectors];
    for (int v = 0; v < kDqVectors; ++v) lanes[v] = int(std::clamp<int64_t>(D - d0 - v * N, 0, N));
    V acc[kDqVectors];
    for (int v = 0; v < kDqVectors; ++v) acc[v] = Simd::zero();
    for (int64_t p = 0; p < n; ++p) {
      const V w = Simd::set1(ds[p]);
      const float* key = keys + p * kv_stride + d0;
      for (int v = 0; v < kDqVectors; ++v)
        if (lanes[v] == N)
          acc[v] = Simd::fma(w, Simd::load(key + v * N), acc[v]);
        else if (lanes[v] > 0)
          acc[v] = Simd::fma(w, Simd::load_n(key + v * N, lanes[v]), acc[v]);
    }
    for (int v = 0; v < kDqVectors; ++v)
      if (lanes[v] == N)
        Simd::store(dq + d0 + v * N, acc[v]);
      else if (lanes[v] > 0)
        Simd::store_n(dq + d0 + v * N, acc[v], lanes[v]);
  }
}

void attention_backward_head(const ops::AttentionBackwardHead& h, float* scratch) {
  const int64_t D = h.head_dim, T = h.positions, padded = padded_positions(T);
  const float scale = 1.0f / std::sqrt(float(D));
  float* Kt = scratch;
  float* Vt = Kt + D * padded;
  // dK and dV accumulate in dense [T][D] rows: the output's rows are often 4 or 8 KB apart,
  // which maps them onto the same few L1 sets.
  float* dK = Vt + D * padded;
  float* dV = dK + D * padded;
  float* s = dV + D * padded;  // scores, then probabilities
  float* dp = s + padded;      // dP, then dS
  transpose_rows(h.keys, h.kv_stride, T, D, padded, Kt);
  transpose_rows(h.values, h.kv_stride, T, D, padded, Vt);
  std::fill(dK, dK + 2 * D * padded, 0.0f);
  for (int64_t a = 0; a < h.rows; ++a) {
    const int64_t n = a / h.slots + 1;  // causal: positions 0 .. t
    const float* q = h.q + a * h.q_stride;
    const float* g = h.dout + a * h.dout_stride;
    row_dots(q, Kt, padded, D, n, s);
    row_dots(g, Vt, padded, D, n, dp);
    scaled_softmax(s, n, scale);
    float dot = 0.0f;
    for (int64_t p = 0; p < n; ++p) dot += s[p] * dp[p];
    for (int64_t p = 0; p < n; ++p) dp[p] = s[p] * (dp[p] - dot) * scale;  // dS, with the score scale
    weighted_key_sum(dp, h.keys, h.kv_stride, n, D, h.dq + a * h.dq_stride);
    for (int64_t p = 0; p < n; ++p) {
      axpy(dp[p], q, dK + p * D, D);
      axpy(s[p], g, dV + p * D, D);
    }
  }
  for (int64_t p = 0; p < T; ++p) {
    std::copy(dK + p * D, dK + (p + 1) * D, h.dkeys + p * h.dkv_stride);
    std::copy(dV + p * D, dV + (p + 1) * D, h.dvalues + p * h.dkv_stride);
  }
}
