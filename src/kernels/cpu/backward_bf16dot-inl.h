// The backward products of bf16 training on AVX512_BF16 dot products (vdpbf16ps): twice the
// multiply-add rate of the fp32 backward (backward_gemm-inl.h), which they mirror block for block.
// A dot product sums over pairs of the reduced dimension, so every operand is rounded to bf16
// (nearest even) and stored as pairs along it: a 32-bit lane holds (row 2p, row 2p + 1) of one
// column, low half first.
//   dx = dy · W     sums over W's rows:  dy rows are already pairs once rounded; W is packed
//                                         a block at a time, two rows interleaved.
//   dW += dy^T · x  sums over tokens:    dy and x are both packed with two token rows interleaved.
// The register tile is the fp32 one's (kMr rows x kNr columns): one broadcast pair of A per row,
// one panel row of B pairs per kNv vectors. Sums run over pairs in increasing order, block after
// block, so results do not depend on the tiling or the threads.
// Included by isa_avx512bf16.cc after simd_avx512-inl.h and matmul-inl.h; no includes here.

// n (1 .. N) values of a row from element `at`, rounded to bf16, in the low halves of N 32-bit
// lanes (zero past n).
template <DType kType>
inline __m512i bf16_in_low_halves(const void* data, int64_t at, int n) {
  if constexpr (kType == DType::BF16) {
    return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(Simd::mask(n), static_cast<const uint16_t*>(data) + at));
  } else if constexpr (kType == DType::F16) {  // attention over a float16 cache
    const V v = Simd::load_f16_n(static_cast<const uint16_t*>(data) + at, n);
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
  } else {
    const V v = n == N ? Simd::load(static_cast<const float*>(data) + at)
                       : Simd::load_n(static_cast<const float*>(data) + at, n);
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
  }
}

// Columns [at, at + n) of a row and, if `second`, of the row after it (ld apart) as bf16 pairs:
// lane j = (row[at + j], next row[at + j]), zero past n or for a missing second row.
template <DType kType>
inline __m512i row_pairs(const void* src, int64_t at, int64_t ld, bool second, int n) {
  const __m512i lo = bf16_in_low_halves<kType>(src, at, n);
  const __m512i hi = second ? bf16_in_low_halves<kType>(src, at + ld, n) : _mm512_setzero_si512();
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

// out[p * ldo + c] = (src[k0 + 2p, col0 + c], src[k0 + 2p + 1, col0 + c]) as bf16 for p <
// ceil(kc / 2) and c < round_up(cols, N): columns past `cols` and the row past an odd kc are zero.
template <DType kType>
void pack_pairs(const void* src, int64_t ld, int64_t k0, int64_t kc, int64_t col0, int64_t cols, uint32_t* out,
                int64_t ldo) {
  for (int64_t p = 0; 2 * p < kc; ++p) {
    const int64_t row = (k0 + 2 * p) * ld + col0;
    const bool has_second = 2 * p + 1 < kc;
    for (int64_t c = 0; c < cols; c += N) {
      const int n = int(std::min<int64_t>(N, cols - c));
      _mm512_storeu_si512(out + p * ldo + c, row_pairs<kType>(src, row + c, ld, has_second, n));
    }
  }
}

// The pairs of pack_pairs as whole B panels of kNr columns, panel after panel ([panel][pair][kNr],
// zero past cols): the layout pair_tile reads. Pair by pair across the whole block, so that each
// row is read as one contiguous run, with the rows a few pairs ahead prefetched (a weight's rows
// are far apart).
template <DType kType>
void pack_pair_panels(const void* src, int64_t ld, int64_t k0, int64_t kc, int64_t col0, int64_t cols, uint32_t* out) {
  constexpr int64_t kAheadPairs = 4;
  const int64_t pairs = (kc + 1) / 2, width = (cols + kNr - 1) / kNr * kNr;
  constexpr int64_t kBytes = kType == DType::F32 ? 4 : 2;
  for (int64_t p = 0; p < pairs; ++p) {
    for (int64_t r = 2 * (p + kAheadPairs); r < std::min(kc, 2 * (p + kAheadPairs) + 2); ++r)
      for (int64_t byte = 0; byte < cols * kBytes; byte += 64)
        __builtin_prefetch(static_cast<const char*>(src) + ((k0 + r) * ld + col0) * kBytes + byte);
    const int64_t row = (k0 + 2 * p) * ld + col0;
    const bool has_second = 2 * p + 1 < kc;
    for (int64_t c = 0; c < width; c += N) {
      const int n = int(std::clamp<int64_t>(cols - c, 0, N));
      const __m512i pair = n > 0 ? row_pairs<kType>(src, row + c, ld, has_second, n) : _mm512_setzero_si512();
      _mm512_storeu_si512(out + (c / kNr) * pairs * kNr + p * kNr + c % kNr, pair);
    }
  }
}

// C[0:MR, 0:n] (+)= sum over `pairs` of A pairs times a B panel's pairs. Row r's pair p is
// A[r * lda + p], or A[p * lda + r] when kTransposedA; B is a packed panel (rows kNr apart).
template <int MR, bool kTransposedA>
void pair_tile(int64_t pairs, const uint32_t* A, int64_t lda, const uint32_t* B, float* C, int64_t ldc, int n,
               bool accumulate) {
  constexpr int NV = Simd::kNv;
  int lanes[NV];
  for (int v = 0; v < NV; ++v) lanes[v] = std::clamp(n - v * N, 0, N);
  V acc[MR][NV];
  load_c_tile<MR>(acc, C, ldc, lanes, accumulate);
  for (int64_t p = 0; p < pairs; ++p) {
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(B + p * kNr + v * N);
    for (int r = 0; r < MR; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(int(kTransposedA ? A[p * lda + r] : A[r * lda + p]));
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  store_c_tile<MR>(acc, C, ldc, lanes);
}

using PairTileFn = void (*)(int64_t, const uint32_t*, int64_t, const uint32_t*, float*, int64_t, int, bool);

template <bool kTransposedA, int... R>
constexpr std::array<PairTileFn, sizeof...(R)> pair_tiles(std::integer_sequence<int, R...>) {
  return {&pair_tile<R + 1, kTransposedA>...};
}

// The tile for `rows` (1 .. kMr) rows.
template <bool kTransposedA>
PairTileFn pair_tile_for(int64_t rows) {
  static constexpr auto tiles = pair_tiles<kTransposedA>(std::make_integer_sequence<int, kMr>());
  return tiles[size_t(rows - 1)];
}

// Rows of W per packed block of an input gradient: 256 pairs x kBackwardInputCols columns of
// 32-bit pairs fill the same 128 KB of scratch as the fp32 block's 256 rows.
constexpr int64_t kInputPairDepth = kBackwardGemmScratchFloats / kBackwardInputCols;
static_assert(kInputPairDepth * kBackwardInputCols <= kBackwardGemmScratchFloats);

// C[0:M, 0:cols] = A · W[:, col0 : col0 + cols] (assigned) for A: M rows of ceil(K / 2) pairs,
// lda pairs apart, and W [K, ldw] in BF16.
void backward_input_block_bf16(const uint32_t* A, int64_t lda, int64_t M, int64_t K, const uint16_t* W, int64_t ldw,
                               int64_t col0, int64_t cols, float* C, int64_t ldc, float* scratch) {
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + cols, 0.0f);
    return;
  }
  uint32_t* panels = reinterpret_cast<uint32_t*>(scratch);
  for (int64_t p0 = 0; 2 * p0 < K; p0 += kInputPairDepth) {
    const int64_t kc = std::min(2 * kInputPairDepth, K - 2 * p0), pairs = (kc + 1) / 2;
    pack_pair_panels<DType::BF16>(W, ldw, 2 * p0, kc, col0, cols, panels);
    for (int64_t c = 0; c < cols; c += kNr) {
      const uint32_t* panel = panels + (c / kNr) * pairs * kNr;
      const int n = int(std::min<int64_t>(kNr, cols - c));
      for (int64_t m0 = 0; m0 < M; m0 += kMr) {
        const int64_t mr = std::min<int64_t>(kMr, M - m0);
        pair_tile_for<false>(mr)(pairs, A + m0 * lda + p0, lda, panel, C + m0 * ldc + c, ldc, n, p0 > 0);
      }
    }
  }
}

// x [K, col0 : col0 + cols] (fp32, K token rows ldx apart) as bf16 pair panels for
// backward_weight_block_bf16, packed once per product.
void backward_pack_pair_rows(const float* x, int64_t ldx, int64_t K, int64_t col0, int64_t cols, uint32_t* panels) {
  pack_pair_panels<DType::F32>(x, ldx, 0, K, col0, cols, panels);
}

// dy [K, col0 : col0 + cols] (fp32, K token rows ldy apart) as pairs of token rows, pair p of
// column c at out[p * ldo + c]: the transposed A of backward_weight_block_bf16.
void backward_pack_pair_columns(const float* dy, int64_t ldy, int64_t K, int64_t col0, int64_t cols, uint32_t* out,
                                int64_t ldo) {
  pack_pairs<DType::F32>(dy, ldy, 0, K, col0, cols, out, ldo);
}

// C[0:M, 0:cols] += A^T · B over K tokens: row m's pair p at A[p * lda + m]
// (backward_pack_pair_columns), B packed by backward_pack_pair_rows (its first panel at
// `panels`), cols <= kBackwardWeightCols. Like backward_weight_block: mostly read-modify-write of
// C, so a row tile spans the block's width and the next tile's C rows are prefetched.
void backward_weight_block_bf16(const uint32_t* A, int64_t lda, int64_t M, int64_t K, const uint32_t* panels,
                                int64_t cols, float* C, int64_t ldc) {
  const int64_t pairs = (K + 1) / 2;
  for (int64_t p0 = 0; p0 < pairs; p0 += kBackwardWeightDepth / 2) {
    const int64_t pc = std::min(kBackwardWeightDepth / 2, pairs - p0);
    for (int64_t m0 = 0; m0 < M; m0 += kMr) {
      const int64_t mr = std::min<int64_t>(kMr, M - m0);
      prefetch_c_rows(C, ldc, m0 + kMr, std::min(M, m0 + 2 * kMr), cols);
      for (int64_t c = 0; c < cols; c += kNr) {
        const uint32_t* panel = panels + (c / kNr) * pairs * kNr + p0 * kNr;
        const int n = int(std::min<int64_t>(kNr, cols - c));
        pair_tile_for<true>(mr)(pc, A + p0 * lda + m0, lda, panel, C + m0 * ldc + c, ldc, n, true);
      }
    }
  }
}
