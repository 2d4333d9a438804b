// Products with bf16 activations and BF16 weights on AVX512_BF16 dot products (vdpbf16ps: 16
// fp32 lanes, each += a[2i] b[2i] + a[2i+1] b[2i+1], products exact, fp32 accumulation): twice
// the multiply-add rate of fp32 FMA, for prefill. W panels are packed as bf16 pairs, k-major:
// panel[p * kNr + j] = (W[o0 + j, 2p], W[o0 + j, 2p + 1]) as one 32-bit lane, so the packing is
// the fp32 transpose applied to 32-bit pairs. Needs an even number of columns.
// Included by isa_avx512bf16.cc after simd_avx512-inl.h and matmul-inl.h; no includes here.

constexpr int64_t kKcPairs = 256;  // 256 pairs x 32 columns x 4 bytes = 32 KB per panel

inline void pack_panel_pairs(const WeightMatrix& W, int64_t o0, int64_t rows, int64_t p0, int64_t pc,
                             float* panel) {
  const int64_t row_pairs = W.cols / 2;
  const float* pairs = static_cast<const float*>(W.data);  // 32-bit lanes; bits only move
  for (int j0 = 0; j0 < kNr; j0 += N) {
    for (int64_t pp = 0; pp < pc; pp += N) {
      const int n = int(std::min<int64_t>(N, pc - pp));
      V r[N];
      for (int i = 0; i < N; ++i) {
        const float* src = pairs + (o0 + j0 + i) * row_pairs + p0 + pp;
        r[i] = j0 + i >= rows ? Simd::zero() : n == N ? Simd::load(src) : Simd::load_n(src, n);
      }
      Simd::transpose(r);
      for (int i = 0; i < n; ++i) Simd::store(panel + (pp + i) * kNr + j0, r[i]);
    }
  }
}

// C[0:MR, 0:n] (+)= A[0:MR, 0:2*pairs] · panel, A in bf16 rows lda elements apart.
template <int MR>
void micro_tile_bf16(int64_t pairs, const uint16_t* A, int64_t lda, const float* panel, float* C, int64_t ldc, int n,
                     bool accumulate) {
  constexpr int NV = Simd::kNv;
  int lanes[NV];
  for (int v = 0; v < NV; ++v) lanes[v] = std::clamp(n - v * N, 0, N);
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? Simd::load_n(C + r * ldc + v * N, lanes[v]) : Simd::zero();
  for (int64_t p = 0; p < pairs; ++p) {
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)Simd::load(panel + p * kNr + v * N);
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, A + r * lda + 2 * p, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) Simd::store_n(C + r * ldc + v * N, acc[r][v], lanes[v]);
}

using MicroTileBf16Fn = void (*)(int64_t, const uint16_t*, int64_t, const float*, float*, int64_t, int, bool);

template <int... R>
constexpr std::array<MicroTileBf16Fn, sizeof...(R)> micro_tiles_bf16(std::integer_sequence<int, R...>) {
  return {&micro_tile_bf16<R + 1>...};
}

void gemm_bf16dot(const uint16_t* x, int64_t ldx, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end,
                  float* y, int64_t ldy, float* panel) {
  static constexpr auto tiles = micro_tiles_bf16(std::make_integer_sequence<int, kMr>());
  const int64_t total_pairs = W.cols / 2;
  if (total_pairs == 0) {
    for (int64_t t = 0; t < T; ++t) std::fill(y + t * ldy + o_begin, y + t * ldy + o_end, 0.0f);
    return;
  }
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kNr) {
    const int n = int(std::min<int64_t>(kNr, o_end - o0));
    for (int64_t p0 = 0; p0 < total_pairs; p0 += kKcPairs) {
      const int64_t pc = std::min(kKcPairs, total_pairs - p0);
      pack_panel_pairs(W, o0, n, p0, pc, panel);
      for (int64_t t0 = 0; t0 < T; t0 += kMr) {
        const int64_t mr = std::min<int64_t>(kMr, T - t0);
        tiles[size_t(mr - 1)](pc, x + t0 * ldx + 2 * p0, ldx, panel, y + t0 * ldy + o0, ldy, n, p0 > 0);
      }
    }
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
