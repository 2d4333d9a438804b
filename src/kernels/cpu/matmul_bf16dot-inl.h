// Products with bf16 activations and BF16 weights on AVX512_BF16 dot products (vdpbf16ps: 16
// fp32 lanes, each += a[2i] b[2i] + a[2i+1] b[2i+1], products exact, fp32 accumulation): twice
// the multiply-add rate of fp32 FMA, for prefill. Needs an even number of columns.
// The activations are packed, not the weights: an MoE expert sees about T*k/E tokens (128 of a
// 512-token prompt), too few to amortise copying its weights into panels, which costs as much as
// streaming them from DRAM once more. So x is packed once per product into panels of
// kTokenPanel tokens, bf16 pairs k-major (panel[p * kTokenPanel + t] = (x[t, 2p], x[t, 2p + 1])
// as one 32-bit lane), and a micro-tile broadcasts the pairs of kMr weight rows read in place,
// with the panel's tokens across the vector lanes.
// Included by isa_avx512bf16.cc after simd_avx512-inl.h and matmul-inl.h; no includes here.

constexpr int64_t kTokenPanel = 2 * N;  // two vectors of tokens

// Rounds rows [0, rows) of x (fp32, ldx floats apart, 2 * pairs values each; rows <= kTokenPanel)
// to bf16, nearest even like f32_to_bf16, and packs them into one panel of pairs x kTokenPanel
// lanes; lanes of missing rows are zero.
void pack_token_panel(const float* x, int64_t ldx, int64_t rows, int64_t pairs, float* panel) {
  for (int j0 = 0; j0 < kTokenPanel; j0 += N) {
    for (int64_t pp = 0; pp < pairs; pp += N) {
      const int n = int(std::min<int64_t>(N, pairs - pp));  // pairs in this block: 2n floats per row
      V r[N];
      for (int i = 0; i < N; ++i) {
        if (j0 + i >= rows) {
          r[i] = Simd::zero();
          continue;
        }
        const float* src = x + (j0 + i) * ldx + 2 * pp;
        const V lo = n == N ? Simd::load(src) : Simd::load_n(src, std::min(2 * n, N));
        const V hi = n == N ? Simd::load(src + N) : Simd::load_n(src + N, std::max(2 * n - N, 0));
        r[i] = (V)_mm512_cvtne2ps_pbh(hi, lo);  // lane j: the bf16 pair (src[2j], src[2j + 1])
      }
      Simd::transpose(r);
      for (int i = 0; i < n; ++i) Simd::store(panel + (pp + i) * kTokenPanel + j0, r[i]);
    }
  }
}

// y[t, r] = sum_p panel[p, t] · W[r, pair p] for t < n_tokens <= NV * N and the MR weight rows
// at w (ldw elements apart), summed in pair order. Token vector v lies in panel v / 2 (panels
// panel_stride floats apart), half v % 2. NV = 1 serves a prompt of at most N tokens, NV = 3 a
// last panel with the half panel after it (an expert's token count is anything).
template <int MR, int NV>
void micro_tile_tokens(int64_t pairs, const float* panel, int64_t panel_stride, const uint16_t* w, int64_t ldw,
                       float* y, int64_t ldy, int n_tokens) {
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Simd::zero();
  for (int64_t p = 0; p < pairs; ++p) {
    __m512bh a[NV];
    for (int v = 0; v < NV; ++v)
      a[v] = (__m512bh)Simd::load(panel + (v / 2) * panel_stride + p * kTokenPanel + (v % 2) * N);
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, w + r * ldw + 2 * p, 4);
      const __m512bh b = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], b, a[v]);
    }
  }
  // Tokens run across the lanes; y wants them down the rows.
  alignas(64) float out[MR][NV * N];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) Simd::store(out[r] + v * N, acc[r][v]);
  for (int t = 0; t < n_tokens; ++t)
    for (int r = 0; r < MR; ++r) y[t * ldy + r] = out[r][t];
}

using MicroTileTokensFn = void (*)(int64_t, const float*, int64_t, const uint16_t*, int64_t, float*, int64_t, int);

template <int NV, int... R>
constexpr std::array<MicroTileTokensFn, sizeof...(R)> micro_tiles_tokens(std::integer_sequence<int, R...>) {
  return {&micro_tile_tokens<R + 1, NV>...};
}

// Weight rows of the 3-vector tile: 24 accumulators, 3 token vectors and a broadcast fit the 32
// registers.
constexpr int kMr3 = 8;

// x_panels: the T rows packed by pack_token_panel, panel q (tokens kTokenPanel q ...) at
// x_panels + q * (W.cols / 2) * kTokenPanel. Each token panel stays in L2 while the tile's
// weight rows stream past it. (Passing each block of weight rows over a group of panels, so
// DRAM sees the weights once per group, measured no better.)
void gemm_bf16dot(const float* x_panels, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                  int64_t ldy) {
  static constexpr auto one_vector = micro_tiles_tokens<1>(std::make_integer_sequence<int, kMr>());
  static constexpr auto two_vectors = micro_tiles_tokens<2>(std::make_integer_sequence<int, kMr>());
  static constexpr auto three_vectors = micro_tiles_tokens<3>(std::make_integer_sequence<int, kMr3>());
  const int64_t pairs = W.cols / 2;
  if (pairs == 0) {
    for (int64_t t = 0; t < T; ++t) std::fill(y + t * ldy + o_begin, y + t * ldy + o_end, 0.0f);
    return;
  }
  const int64_t panel_stride = pairs * kTokenPanel;
  const uint16_t* w = static_cast<const uint16_t*>(W.data);
  for (int64_t t0 = 0; t0 < T;) {
    // A last half panel (at most N tokens) rides with the panel before it in a 3-vector tile:
    // alone, it streamed all of W for N tokens on a tile of half the rate (an expert of 100
    // tokens ran at 71% of the bf16 peak, one of 128 at 86%: bench/kernel_lab.sh gemm).
    const int64_t left = T - t0;
    const int vectors = left > kTokenPanel + N ? 2 : int((left + N - 1) / N);
    const int n_tokens = int(std::min<int64_t>(left, vectors * N));
    const float* panel = x_panels + (t0 / kTokenPanel) * panel_stride;
    const int64_t row_step = vectors == 3 ? kMr3 : kMr;
    for (int64_t o0 = o_begin; o0 < o_end; o0 += row_step) {
      const size_t rows = size_t(std::min<int64_t>(row_step, o_end - o0));
      const MicroTileTokensFn tile =
          vectors == 3 ? three_vectors[rows - 1] : vectors == 2 ? two_vectors[rows - 1] : one_vector[rows - 1];
      tile(pairs, panel, panel_stride, w + o0 * W.cols, W.cols, y + t0 * ldy + o0, ldy, n_tokens);
    }
    t0 += n_tokens;
  }
}

// Round to nearest even, like f32_to_bf16 (NaNs stay NaN).
void round_to_bf16_vec(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh h = _mm512_cvtne2ps_pbh(Simd::load(src + i + 16), Simd::load(src + i));
    _mm512_storeu_si512(dst + i, (__m512i)h);
  }
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

double bf16_dot_flops(int64_t iters) {
  constexpr int kChains = Simd::kMr * Simd::kNv;
  V acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = Simd::set1(float(j));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), c = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 32  // all chains in registers: the compiler must not interchange the loops
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, c);
  V sum = Simd::zero();
  for (int j = 0; j < kChains; ++j) sum = Simd::add(sum, acc[j]);
  volatile float sink = Simd::reduce_add(sum);
  (void)sink;
  return 2.0 * 2 * N * kChains * double(iters);  // 32 multiply-adds per instruction
}
