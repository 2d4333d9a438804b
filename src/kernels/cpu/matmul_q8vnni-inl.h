// Products with Q8_0 / Q4_0 weights on AVX512_VNNI, with the numerics of
// kernels/ref/quantized_ops.h: a decoding product and an int8 GEMM.
//
// ---- gemv: 16 blocks at a time ----
// Decoding reads each weight block once, so what matters is the work per block next to the 18 /
// 34 bytes it brings (at 2 x 4 GHz and ~50 GB/s: about 3 cycles per Q4_0 block per core, 1.6 with
// one thread). Per chunk of 16 blocks of a W row:
//  - 8 vpdpbusd, each on a pair of blocks (zmm lanes 0-7: block b, 8-15: block b + 1, levels in
//    value order like the activations) into 8 int32 partial sums per block;
//  - a reduction tree adds each block's 8 partials: one vector of the 16 block sums (in the lane
//    order kReducedOrder), from which the weight-offset correction is subtracted;
//  - one conversion and one FMA with the 16 (weight scale x activation scale) products, the
//    weight scales picked from the row by vpermt2w (a gather is slower here).
// About 1.6 cycles per block on Zen 5; one block per 256-bit register with scales per block took
// 3.8. The last blocks of a row (fewer than 16) go pair by pair.
// Each chunk also prefetches the weights kGemvPrefetchAhead (matmul-inl.h) ahead: the hardware
// prefetcher alone left 10-15% of the read bandwidth unused on this stream (Zen 5, 1 and 2
// threads; 4 KB ahead helped less, 2 KB not at all, 16 KB no better). Prefetches past the matrix
// are harmless hints.

// Block of each lane of the reduced vector (see reduce_pairs).
constexpr int kReducedOrder[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};

// Unsigned levels of blocks b (and b + 1 when `two`) at `block`; the missing block's lanes zero.
template <DType kType>
inline __m512i pair_levels(const uint8_t* block, bool two) {
  constexpr int64_t kBytes = kQ8BlockBytes<kType>;
  if constexpr (kType == DType::Q8_0) {
    const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    const __m256i second =
        two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + kBytes + 2)) : _mm256_set1_epi8(int8_t(0x80));
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1);
    return _mm512_xor_si512(q, _mm512_set1_epi8(int8_t(0x80)));  // q + 128
  } else {
    // 128-bit lanes [b, b, b + 1, b + 1] shifted by [0, 4, 0, 4]: low nibbles (values 0-15), high
    // nibbles (16-31) of each block.
    const __m128i first = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
    __m512i q = two ? _mm512_broadcast_i32x4(first) : _mm512_maskz_broadcast_i32x4(0x00ff, first);
    if (two)
      q = _mm512_mask_broadcast_i32x4(q, 0xff00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + kBytes + 2)));
    const __m512i shifts =
        _mm512_setr_epi64(0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004, 0x0004000400040004);
    return _mm512_and_si512(_mm512_srlv_epi16(q, shifts), _mm512_set1_epi8(0x0f));
  }
}

// d[p] holds the partial sums of blocks 2p (lanes 0-7) and 2p + 1 (lanes 8-15), 4 per 128-bit
// lane. Returns the 16 block sums, lane i holding block kReducedOrder[i]: interleave-and-add
// twice within 128-bit lanes (8 partials per block -> 4 -> 2), then a 128-bit lane swap adds the
// last two.
inline __m512i reduce_pairs(const __m512i d[8]) {
  __m512i e[4], f[2], g[2];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)  // per 128-bit lane: [A0+A2, B0+B2, A1+A3, B1+B3] of d[2i], d[2i+1]
    e[i] =
        _mm512_add_epi32(_mm512_unpacklo_epi32(d[2 * i], d[2 * i + 1]), _mm512_unpackhi_epi32(d[2 * i], d[2 * i + 1]));
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)  // per 128-bit lane: the lane sums of d[4i], .., d[4i+3]
    f[i] =
        _mm512_add_epi32(_mm512_unpacklo_epi64(e[2 * i], e[2 * i + 1]), _mm512_unpackhi_epi64(e[2 * i], e[2 * i + 1]));
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)  // lanes 0+1: first blocks of the pairs, lanes 2+3: second blocks
    g[i] = _mm512_add_epi32(f[i], _mm512_shuffle_i32x4(f[i], f[i], _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_shuffle_i32x4(g[0], g[1], _MM_SHUFFLE(2, 0, 2, 0));
}

// vpermt2w picks 16-bit words from a 128-byte window: for each window of blocks [w0, w0 + n)
// whose scales lie in it, the word index of each lane's scale and the lanes it fills.
template <int64_t kBytes>
struct ScaleWindows {
  static constexpr int kPerWindow = int((128 - 2) / kBytes) + 1;
  static constexpr int kCount = (16 + kPerWindow - 1) / kPerWindow;
  alignas(64) uint16_t index[kCount][32] = {};
  uint32_t lanes[kCount] = {};
  constexpr ScaleWindows() {
    for (int lane = 0; lane < 16; ++lane) {
      const int block = kReducedOrder[lane], window = block / kPerWindow;
      index[window][lane] = uint16_t((block - window * kPerWindow) * kBytes / 2);
      lanes[window] |= 1u << lane;
    }
  }
};

// The f16 weight scales of the 16 blocks at `chunk` as fp32, in kReducedOrder.
template <DType kType>
inline __m512 chunk_weight_scales(const uint8_t* chunk) {
  constexpr int64_t kBytes = kQ8BlockBytes<kType>;
  static constexpr ScaleWindows<kBytes> kWindows;
  __m512i words = _mm512_setzero_si512();
#pragma GCC unroll 4
  for (int w = 0; w < kWindows.kCount; ++w) {
    const uint8_t* window = chunk + w * kWindows.kPerWindow * kBytes;
    const __m512i picked = _mm512_permutex2var_epi16(_mm512_loadu_si512(window), _mm512_load_si512(kWindows.index[w]),
                                                     _mm512_loadu_si512(window + 64));
    words = _mm512_mask_mov_epi16(words, kWindows.lanes[w], picked);
  }
  return _mm512_cvtph_ps(_mm512_castsi512_si256(words));
}

// kT activation rows t0 .. against W rows [o_begin, o_end), one W row at a time.
template <DType kType, int kT>
void gemv_rows_vnni(const QuantizedRows& x, int64_t t0, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                    int64_t ldy) {
  constexpr int64_t kBytes = kQ8BlockBytes<kType>;
  constexpr int kShift = kType == DType::Q8_0 ? 7 : 3;  // the weights' offset: 128 or 8
  const int64_t blocks = W.cols / kQuantBlock, chunks = blocks / 16;
  const __m512i reduced_order = _mm512_loadu_si512(kReducedOrder);
  const __m512i pair_lanes = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const QuantizedRowPointers<kT> xr(x, t0);
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + o * blocks * kBytes;
    __m512 acc[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks * 16; c += 16) {
      const uint8_t* chunk = row + c * kBytes;
      for (int64_t line = 0; line < 16 * kBytes; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(chunk + kGemvPrefetchAhead + line), _MM_HINT_T0);
      // The fixed-count loops below must unroll (also at -O2) so that w and d stay in registers.
      __m512i w[8];
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) w[p] = pair_levels<kType>(chunk + 2 * p * kBytes, true);
      const __m512 dw = chunk_weight_scales<kType>(chunk);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        __m512i d[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; ++p)
          d[p] =
              _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[p], _mm512_loadu_si512(xr.q[t] + (c + 2 * p) * kQuantBlock));
        const __m512i correction =
            _mm512_permutexvar_epi32(reduced_order, _mm512_slli_epi32(_mm512_loadu_si512(xr.sum[t] + c), kShift));
        const __m512 s = _mm512_mul_ps(dw, _mm512_permutexvar_ps(reduced_order, _mm512_loadu_ps(xr.scale[t] + c)));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(reduce_pairs(d), correction)), s, acc[t]);
      }
    }
    for (int64_t b = chunks * 16; b < blocks; b += 2) {  // the rest, a pair at a time
      const bool two = b + 1 < blocks;
      const uint8_t* block = row + b * kBytes;
      const __m512i w = pair_levels<kType>(block, two);
      uint16_t h0, h1 = 0;
      std::memcpy(&h0, block, 2);
      if (two) std::memcpy(&h1, block + kBytes, 2);
      const __m512 dw = _mm512_cvtph_ps(_mm256_mask_set1_epi16(_mm256_set1_epi16(int16_t(h0)), 0xff00, int16_t(h1)));
      const __mmask16 valid = two ? 0xffff : 0x00ff;
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        const __m512i xv = _mm512_maskz_loadu_epi32(valid, xr.q[t] + b * kQuantBlock);
        const __m512i sums = _mm512_maskz_loadu_epi32(two ? 0x3 : 0x1, xr.sum[t] + b);
        const __m512 scales = _mm512_maskz_loadu_ps(two ? 0x3 : 0x1, xr.scale[t] + b);
        // Per lane: offset / 8 of the block's activation sum.
        const __m512i correction = _mm512_slli_epi32(_mm512_permutexvar_epi32(pair_lanes, sums), kShift - 3);
        const __m512i dots = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xv), correction);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots), _mm512_mul_ps(dw, _mm512_permutexvar_ps(pair_lanes, scales)),
                                 acc[t]);
      }
    }
    for (int t = 0; t < kT; ++t) y[(t0 + t) * ldy + o] = _mm512_reduce_add_ps(acc[t]);
  }
}

template <DType kType>
void gemv_q8_vnni_typed(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                        int64_t ldy) {
  static_assert(kGemvMaxRows == 4, "one case per row count below");
  switch (x.rows) {
    case 1:
      return gemv_rows_vnni<kType, 1>(x, 0, W, o_begin, o_end, y, ldy);
    case 2:
      return gemv_rows_vnni<kType, 2>(x, 0, W, o_begin, o_end, y, ldy);
    case 3:
      return gemv_rows_vnni<kType, 3>(x, 0, W, o_begin, o_end, y, ldy);
    case 4:
      return gemv_rows_vnni<kType, 4>(x, 0, W, o_begin, o_end, y, ldy);
    default:
      return;
  }
}

void gemv_q8_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                  int64_t ldy) {
  if (W.dtype == DType::Q8_0)
    gemv_q8_vnni_typed<DType::Q8_0>(x, W, o_begin, o_end, y, ldy);
  else
    gemv_q8_vnni_typed<DType::Q4_0>(x, W, o_begin, o_end, y, ldy);
}

// ---- gemm: an int8 GEMM (vpdpbusd, 64 byte products per instruction: twice the multiply-add
// rate of bf16 dot products) for prefill.
//
// A panel of kVnniNr = 32 output columns x kQ8KcBlocks blocks of W is packed once and reused by
// every row tile of x: panel words[(b * 8 + g) * 32 + j] holds the 4 unsigned levels
// k = 32 b + 4 g .. + 3 of column j (Q4_0 nibbles as stored; Q8_0 levels + 128), so one 512-bit
// load gives 16 columns x 4 k for vpdpbusd against 4 activation bytes broadcast. Per block, int32
// accumulators start at -offset x (activation block sum), which removes the weights' offset,
// and are then scaled by (weight scale x activation scale) into fp32 accumulators.
// Included by isa_avx512bf16.cc after simd_avx512-inl.h, simd_q8_avx2-inl.h and matmul_q8-inl.h;
// no includes here.

// The register tile of both int8 GEMMs (this one and the k-quants', matmul_kquant_vnni-inl.h).
constexpr int kVnniNr = 32;
constexpr int kVnniMr = 6;  // 12 int32 + 12 fp32 accumulators + 2 weight vectors + 1 broadcast
constexpr int64_t kQ8KcBlocks = 16;
// One panel: kQ8KcBlocks * 8 * kVnniNr words of levels, then kQ8KcBlocks * kVnniNr fp32 scales.
constexpr int64_t kQ8PanelFloats = kQ8KcBlocks * 8 * kVnniNr + kQ8KcBlocks * kVnniNr;

// The 32 levels of a weight block as unsigned bytes in value order.
template <DType kType>
inline __m256i unsigned_levels(const uint8_t* block) {
  if constexpr (kType == DType::Q8_0)
    return _mm256_xor_si256(Q8Avx2::load_q8_0(block + 2), _mm256_set1_epi8(int8_t(0x80)));
  else
    return Q8Avx2::load_q4_0(block + 2);
}

// Packs W rows o0 .. o0 + rows - 1 (rows <= kVnniNr; zero columns after), blocks b0 .. b0 + nb - 1.
template <DType kType>
void pack_panel_q8(const WeightMatrix& W, int64_t o0, int64_t rows, int64_t b0, int64_t nb, uint32_t* words,
                   float* scales) {
  const int64_t row_bytes = W.cols / kQuantBlock * kQ8BlockBytes<kType>;
  const auto* base = static_cast<const uint8_t*>(W.data) + o0 * row_bytes + b0 * kQ8BlockBytes<kType>;
  for (int j0 = 0; j0 < kVnniNr; j0 += 16) {
    for (int64_t bb = 0; bb < nb; bb += 2) {  // two blocks = 16 words per column, a 16 x 16 transpose
      const bool pair = bb + 1 < nb;
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        if (j0 + i >= rows) {
          r[i] = _mm512_setzero_ps();
          continue;
        }
        const uint8_t* block = base + (j0 + i) * row_bytes + bb * kQ8BlockBytes<kType>;
        const __m256i first = unsigned_levels<kType>(block);
        const __m256i second = pair ? unsigned_levels<kType>(block + kQ8BlockBytes<kType>) : _mm256_setzero_si256();
        r[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1));
      }
      Simd::transpose(r);  // r[g] = word g of the two blocks for the 16 columns
      for (int g = 0; g < (pair ? 16 : 8); ++g) _mm512_storeu_ps(words + (bb * 8 + g) * kVnniNr + j0, r[g]);
    }
  }
  for (int64_t bb = 0; bb < nb; ++bb)
    for (int j = 0; j < kVnniNr; ++j)
      scales[bb * kVnniNr + j] = j < rows ? Q8Avx2::f16(base + j * row_bytes + bb * kQ8BlockBytes<kType>) : 0.0f;
}

// Prefetches `bytes` bytes at `offset` of W rows o0 .. o0 + rows - 1 (`row_bytes` apart): the next
// panel a GEMM packs, pieces of a few lines a row apart, which the hardware prefetchers leave to the
// packing's loads (where a profile of a 16-row Q6_K GEMM showed it stalling). One panel ahead, this
// took that GEMM from 200 to 260 GOP/s for 16 rows, +10% for 64, +5% for 128 (Zen 5, 1 thread; two
// panels ahead no better).
inline void prefetch_panel(const WeightMatrix& W, int64_t row_bytes, int64_t o0, int64_t rows, int64_t offset,
                           int64_t bytes) {
  const auto* first = static_cast<const uint8_t*>(W.data) + o0 * row_bytes + offset;
  for (int64_t j = 0; j < rows; ++j)
    for (int64_t line = 0; line < bytes + 63; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(first + j * row_bytes + line), _MM_HINT_T0);
}

// dots[r][v] += the byte products of one sub-block of 4 kWords levels (a block of 32: 8 words; a
// Q6_K group of 16: 4): activation row r (at A, rows lda apart) against columns 16 v .. 16 v + 15
// of the sub-block's kWords panel words per column, 4 k per vpdpbusd. Shared by the Q8_0 / Q4_0,
// the Q4_K / Q5_K and the Q6_K micro-tiles.
template <int MR, int kWords = 8>
__attribute__((always_inline)) inline void add_block_dots(const uint32_t* block_words, const int8_t* A, int64_t lda,
                                                          __m512i (&dots)[MR][2]) {
#pragma GCC unroll 8
  for (int g = 0; g < kWords; ++g) {
    const uint32_t* w = block_words + g * kVnniNr;
    const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t quad;
      std::memcpy(&quad, A + r * lda + 4 * g, 4);
      const __m512i a = _mm512_set1_epi32(quad);
      dots[r][0] = _mm512_dpbusd_epi32(dots[r][0], w0, a);
      dots[r][1] = _mm512_dpbusd_epi32(dots[r][1], w1, a);
    }
  }
}

// A micro tile's fp32 accumulators, MR rows of 32 columns (two vectors, lanes[v] of each in C):
// loaded from C when the tile continues a sum over K, else zero; stored back the same way. Shared
// by the Q8_0 / Q4_0, k-quant and Q6_K micro tiles.
template <int MR>
__attribute__((always_inline)) inline void load_tile(__m512 (&acc)[MR][2], const float* C, int64_t ldc,
                                                     const int (&lanes)[2], bool accumulate) {
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) acc[r][v] = accumulate ? Simd::load_n(C + r * ldc + v * 16, lanes[v]) : Simd::zero();
}

template <int MR>
__attribute__((always_inline)) inline void store_tile(const __m512 (&acc)[MR][2], float* C, int64_t ldc,
                                                      const int (&lanes)[2]) {
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) Simd::store_n(C + r * ldc + v * 16, acc[r][v], lanes[v]);
}

// C[0:MR, 0:n] (+)= the product of MR quantized activation rows (levels A, lda bytes apart; scales
// and sums lds apart) with nb packed blocks; `shift` = log2 of the weights' offset.
template <int MR>
void micro_tile_q8(int64_t nb, const int8_t* A, int64_t lda, const float* a_scale, const int32_t* a_sum, int64_t lds,
                   const uint32_t* words, const float* w_scale, int shift, float* C, int64_t ldc, int n,
                   bool accumulate) {
  const int lanes[2] = {std::clamp(n, 0, 16), std::clamp(n - 16, 0, 16)};
  // Every fixed-count loop unrolls (also at -O2): the accumulators must stay in registers.
  __m512 acc[MR][2];
  load_tile<MR>(acc, C, ldc, lanes, accumulate);
  for (int64_t bb = 0; bb < nb; ++bb) {
    __m512i dots[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) dots[r][0] = dots[r][1] = _mm512_set1_epi32(-a_sum[r * lds + bb] * (1 << shift));
    add_block_dots<MR>(words + bb * 8 * kVnniNr, A + bb * kQuantBlock, lda, dots);
    const __m512 d0 = Simd::load(w_scale + bb * kVnniNr), d1 = Simd::load(w_scale + bb * kVnniNr + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 s = Simd::set1(a_scale[r * lds + bb]);
      acc[r][0] = Simd::fma(_mm512_cvtepi32_ps(dots[r][0]), Simd::mul(d0, s), acc[r][0]);
      acc[r][1] = Simd::fma(_mm512_cvtepi32_ps(dots[r][1]), Simd::mul(d1, s), acc[r][1]);
    }
  }
  store_tile<MR>(acc, C, ldc, lanes);
}

using MicroTileQ8Fn = void (*)(int64_t, const int8_t*, int64_t, const float*, const int32_t*, int64_t, const uint32_t*,
                               const float*, int, float*, int64_t, int, bool);

template <int... R>
constexpr std::array<MicroTileQ8Fn, sizeof...(R)> micro_tiles_q8(std::integer_sequence<int, R...>) {
  return {&micro_tile_q8<R + 1>...};
}

template <DType kType>
void gemm_q8_vnni_typed(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                        int64_t ldy, float* scratch) {
  static constexpr auto tiles = micro_tiles_q8(std::make_integer_sequence<int, kVnniMr>());
  constexpr int shift = kType == DType::Q8_0 ? 7 : 3;  // offsets 128 and 8
  constexpr int64_t kBlockBytes = kQ8BlockBytes<kType>;
  const int64_t blocks = W.cols / kQuantBlock;
  if (blocks == 0) {
    for (int64_t t = 0; t < x.rows; ++t) std::fill(y + t * ldy + o_begin, y + t * ldy + o_end, 0.0f);
    return;
  }
  auto* words = reinterpret_cast<uint32_t*>(scratch);
  float* w_scale = scratch + kQ8KcBlocks * 8 * kVnniNr;
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kVnniNr) {
    const int n = int(std::min<int64_t>(kVnniNr, o_end - o0));
    for (int64_t b0 = 0; b0 < blocks; b0 += kQ8KcBlocks) {
      const int64_t nb = std::min(kQ8KcBlocks, blocks - b0);
      // Q4_0: +10-15% for 16 rows, +3-7% for 64 (kernel_lab quant, 1 thread). Q8_0's panels, twice
      // the bytes, gained nothing (within noise, a few % less at 64 rows).
      if constexpr (kType == DType::Q4_0) {
        const bool row_end = b0 + kQ8KcBlocks >= blocks;  // the next panel starts the next columns
        const int64_t next_o0 = row_end ? o0 + kVnniNr : o0, next_b0 = row_end ? 0 : b0 + kQ8KcBlocks;
        prefetch_panel(W, blocks * kBlockBytes, next_o0, std::min<int64_t>(kVnniNr, o_end - next_o0),
                       next_b0 * kBlockBytes, std::min(kQ8KcBlocks, blocks - next_b0) * kBlockBytes);
      }
      pack_panel_q8<kType>(W, o0, n, b0, nb, words, w_scale);
      for (int64_t t0 = 0; t0 < x.rows; t0 += kVnniMr) {
        const int64_t mr = std::min<int64_t>(kVnniMr, x.rows - t0);
        tiles[size_t(mr - 1)](nb, x.q + t0 * x.cols + b0 * kQuantBlock, x.cols, x.scale + t0 * blocks + b0,
                              x.sum + t0 * blocks + b0, blocks, words, w_scale, shift, y + t0 * ldy + o0, ldy, n,
                              b0 > 0);
      }
    }
  }
}

void gemm_q8_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y, int64_t ldy,
                  float* scratch) {
  if (W.dtype == DType::Q8_0)
    gemm_q8_vnni_typed<DType::Q8_0>(x, W, o_begin, o_end, y, ldy, scratch);
  else
    gemm_q8_vnni_typed<DType::Q4_0>(x, W, o_begin, o_end, y, ldy, scratch);
}
