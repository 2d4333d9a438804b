// Backward of causal attention for one head (kernels/attention_backward.h), kQueryBlock query
// rows at a time, written once over the `Simd` of the including file (isa_<level>.cc). Keys and
// values are first transposed ([head_dim][positions], zero-padded) so that the scores q · k_p
// and dP_p = dout · v_p of a row are vectors over positions, each key and value vector loaded
// once for the block's rows (a row at a time, the loads had bounded the kernel at half its
// multiply-add rate); the gradients are then vectors over the head dimension: the block's dq
// rows accumulate in registers, and each dK and dV row is loaded and stored once per block, its
// rows' terms added in row order (the sums of the row-at-a-time loop, in the same order).
// Included by each isa_<level>.cc after matmul-inl.h (V, N); no includes here.

// Positions per step of the score loop (two vectors: independent accumulator chains).
constexpr int64_t kScoreStep = 2 * N;
// Query rows per block: each key, value, dK and dV vector is loaded once for all of them. 8 rows
// where there are 32 vector registers (AVX-512, kMr 12): 1.35x the kernel's rate of 4-row blocks
// there, which 12 rows did not better (bench/kernel_lab.sh train).
constexpr int kQueryBlock = Simd::kMr >= 8 ? 8 : 4;
// Head-dimension vectors a block of R rows keeps in registers per row (dq, and q / dout for dK
// / dV): 16 for the block, whatever its rows.
template <int R>
constexpr int kDqVectors = R > 4 ? 2 : 4;

inline int64_t padded_positions(int64_t positions) { return (positions + kScoreStep - 1) / kScoreStep * kScoreStep; }

// Floats of scratch for one head: transposed keys and values, dK and dV, two rows of scores per
// query row of a block.
inline int64_t attention_backward_scratch(int64_t positions, int64_t head_dim) {
  const int64_t padded = padded_positions(positions);
  return 4 * head_dim * padded + 2 * kQueryBlock * padded;
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

// s_r[p] = x_r · Xt[:, p] for the R rows of a block, p < n rounded up to kScoreStep (Xt rows
// and s rows `padded` apart): each Xt vector is loaded once for all R rows. Every sum runs over
// the head dimension in order, as the row-at-a-time loop's did.
template <int R>
void block_dots(const float* const x[R], const float* Xt, int64_t padded, int64_t D, int64_t n, float* s) {
  for (int64_t p0 = 0; p0 < n; p0 += kScoreStep) {
    V acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = Simd::zero();
    for (int64_t i = 0; i < D; ++i) {
      const V b0 = Simd::load(Xt + i * padded + p0), b1 = Simd::load(Xt + i * padded + p0 + N);
      for (int r = 0; r < R; ++r) {
        const V xi = Simd::set1(x[r][i]);
        acc[r][0] = Simd::fma(xi, b0, acc[r][0]);
        acc[r][1] = Simd::fma(xi, b1, acc[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      Simd::store(s + r * padded + p0, acc[r][0]);
      Simd::store(s + r * padded + p0 + N, acc[r][1]);
    }
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

// A vector of `lanes` (0 .. N) floats at p: loaded (zero past them), or stored.
inline V load_lanes(const float* p, int lanes) {
  return lanes == N ? Simd::load(p) : lanes > 0 ? Simd::load_n(p, lanes) : Simd::zero();
}
inline void store_lanes(float* p, V v, int lanes) {
  if (lanes == N) Simd::store(p, v);
  else if (lanes > 0) Simd::store_n(p, v, lanes);
}

// dq_r[0:D) = sum_{p < n} ds_r[p] * key p for the R rows of a block (ds rows `ld` apart, zero
// past each row's own positions), kDqVectors<R> vectors of the head dimension at a time: each key
// vector is loaded once for all R rows.
template <int R>
void weighted_key_sums(const float* ds, int64_t ld, const float* keys, int64_t kv_stride, int64_t n, int64_t D,
                       float* const dq[R]) {
  for (int64_t d0 = 0; d0 < D; d0 += kDqVectors<R> * N) {
    int lanes[kDqVectors<R>];
    for (int v = 0; v < kDqVectors<R>; ++v) lanes[v] = int(std::clamp<int64_t>(D - d0 - v * N, 0, N));
    V acc[R][kDqVectors<R>];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kDqVectors<R>; ++v) acc[r][v] = Simd::zero();
    for (int64_t p = 0; p < n; ++p) {
      const float* key = keys + p * kv_stride + d0;
      V k[kDqVectors<R>];
      for (int v = 0; v < kDqVectors<R>; ++v)
        k[v] = load_lanes(key + v * N, lanes[v]);
      for (int r = 0; r < R; ++r) {
        const V w = Simd::set1(ds[r * ld + p]);
        for (int v = 0; v < kDqVectors<R>; ++v) acc[r][v] = Simd::fma(w, k[v], acc[r][v]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kDqVectors<R>; ++v) store_lanes(dq[r] + d0 + v * N, acc[r][v], lanes[v]);
  }
}

// out[p][0:D) += sum_r coef_r[p] * x_r[0:D) for p < n (out rows D apart, coef rows `ld` apart),
// rows r in order: the block's x chunk stays in registers while each out row is loaded and
// stored once for all R rows.
template <int R>
void add_outer_products(const float* coef, int64_t ld, const float* const x[R], int64_t n, int64_t D, float* out) {
  for (int64_t d0 = 0; d0 < D; d0 += kDqVectors<R> * N) {
    int lanes[kDqVectors<R>];
    for (int v = 0; v < kDqVectors<R>; ++v) lanes[v] = int(std::clamp<int64_t>(D - d0 - v * N, 0, N));
    V xr[R][kDqVectors<R>];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kDqVectors<R>; ++v)
        xr[r][v] = load_lanes(x[r] + d0 + v * N, lanes[v]);
    for (int64_t p = 0; p < n; ++p) {
      float* row = out + p * D + d0;
      V acc[kDqVectors<R>];
      for (int v = 0; v < kDqVectors<R>; ++v)
        acc[v] = load_lanes(row + v * N, lanes[v]);
      for (int r = 0; r < R; ++r) {
        const V c = Simd::set1(coef[r * ld + p]);
        for (int v = 0; v < kDqVectors<R>; ++v) acc[v] = Simd::fma(c, xr[r][v], acc[v]);
      }
      for (int v = 0; v < kDqVectors<R>; ++v) store_lanes(row + v * N, acc[v], lanes[v]);
    }
  }
}

// Rows a0 .. a0 + R - 1 of a head: their probabilities and dS rows (R rows of `padded` in s and
// ds), then dq of each row and their shares of dK and dV. A row's coefficients are zero past its
// own positions, so the block runs over the last row's positions.
template <int R>
void backward_query_block(const ops::AttentionBackwardHead& h, int64_t a0, const float* Kt, const float* Vt,
                          int64_t padded, float scale, float* s, float* ds, float* dK, float* dV) {
  const int64_t D = h.head_dim, n_max = (a0 + R - 1) / h.slots + 1;
  const float* q[R];
  const float* g[R];
  float* dq[R];
  for (int r = 0; r < R; ++r) {
    const int64_t a = a0 + r;
    q[r] = h.q + a * h.q_stride;
    g[r] = h.dout + a * h.dout_stride;
    dq[r] = h.dq + a * h.dq_stride;
  }
  block_dots<R>(q, Kt, padded, D, n_max, s);   // scores
  block_dots<R>(g, Vt, padded, D, n_max, ds);  // dP
  for (int r = 0; r < R; ++r) {
    const int64_t n = (a0 + r) / h.slots + 1;  // causal: positions 0 .. t
    float* sr = s + r * padded;
    float* dr = ds + r * padded;
    scaled_softmax(sr, n, scale);
    float dot = 0.0f;
    for (int64_t p = 0; p < n; ++p) dot += sr[p] * dr[p];
    for (int64_t p = 0; p < n; ++p) dr[p] = sr[p] * (dr[p] - dot) * scale;  // dS, with the score scale
    std::fill(sr + n, sr + n_max, 0.0f);
    std::fill(dr + n, dr + n_max, 0.0f);
  }
  weighted_key_sums<R>(ds, padded, h.keys, h.kv_stride, n_max, D, dq);
  add_outer_products<R>(ds, padded, q, n_max, D, dK);
  add_outer_products<R>(s, padded, g, n_max, D, dV);
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
  float* s = dV + D * padded;             // a block's scores, then probabilities
  float* ds = s + kQueryBlock * padded;   // its dP, then dS
  transpose_rows(h.keys, h.kv_stride, T, D, padded, Kt);
  transpose_rows(h.values, h.kv_stride, T, D, padded, Vt);
  std::fill(dK, dK + 2 * D * padded, 0.0f);
  int64_t a0 = 0;
  for (; a0 + kQueryBlock <= h.rows; a0 += kQueryBlock)
    backward_query_block<kQueryBlock>(h, a0, Kt, Vt, padded, scale, s, ds, dK, dV);
  if (kQueryBlock > 4 && a0 + 4 <= h.rows) {
    backward_query_block<4>(h, a0, Kt, Vt, padded, scale, s, ds, dK, dV);
    a0 += 4;
  }
  switch (h.rows - a0) {  // the last rows
    case 3: backward_query_block<3>(h, a0, Kt, Vt, padded, scale, s, ds, dK, dV); break;
    case 2: backward_query_block<2>(h, a0, Kt, Vt, padded, scale, s, ds, dK, dV); break;
    case 1: backward_query_block<1>(h, a0, Kt, Vt, padded, scale, s, ds, dK, dV); break;
    default: break;
  }
  for (int64_t p = 0; p < T; ++p) {
    std::copy(dK + p * D, dK + (p + 1) * D, h.dkeys + p * h.dkv_stride);
    std::copy(dV + p * D, dV + (p + 1) * D, h.dvalues + p * h.dkv_stride);
  }
}
