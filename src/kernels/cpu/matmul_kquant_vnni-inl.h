// Products with Q4_K and Q5_K weights (core/q4_k.h, core/q5_k.h) on AVX512_VNNI, with the numerics
// of kernels/ref/quantized_ops.h: a decoding product and an int8 GEMM, each over the layout L
// (Q4kLayout or Q5kLayout). Q5_K's levels are Q4_K's nibbles with a fifth bit ORed in (bit 4,
// from the super-block's 32 high-bit bytes), still unsigned and below 128 as vpdpbusd needs.
//
// ---- gemv: one super-block at a time ----
// Each 64 bytes of levels are two zmm of nibbles: the low nibbles hold sub-blocks 0 and 2 (1 and
// 3 the high ones; 4 to 7 likewise in the next 64 bytes). The activation levels are reordered
// once per call to match (kVectorSubBlocks), so one vpdpbusd gives 8 int32 partial sums for each
// of two sub-blocks; they are converted and scaled by d sc_k dx_k (vpermps picks each half's
// scale). The min terms of the 8 sub-blocks are one masked 8-lane FMA of dmin m_k dx_k with the
// activation block sums, into the same accumulator. Levels and scales are unpacked once per
// super-block for all the rows; each super-block prefetches kGemvPrefetchAhead ahead, as the Q4_0
// gemv does (matmul_q8vnni-inl.h). About 3.4 ns per super-block and row on Zen 5 from L2, Q4_0's
// speed per weight byte (broadcasting each 32-byte group to a zmm took 4.1; a separate min
// accumulator 3.5).
// Included by isa_avx512bf16.cc after simd_avx512-inl.h, simd_q8_avx2-inl.h, matmul_q8vnni-inl.h
// and simd_kquant_avx2-inl.h (q4k_scales_and_mins), with core/q4_k.h and core/q5_k.h; no includes
// here.

// A super-block's d sc_k (lanes 0-7) and dmin m_k (lanes 8-15) as fp32 products, as GGML's
// dequantization rounds them.
inline __m512 q4k_lane_scales(const uint8_t* block) {
  const __m512 sc_m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q4k_scales_and_mins(block)));
  uint32_t halves;  // f16 d, dmin
  std::memcpy(&halves, block, 4);
  const __m128 d_dmin = _mm_cvtph_ps(_mm_cvtsi32_si128(int(halves)));
  const __m512i first_or_second = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm512_mul_ps(sc_m, _mm512_permutexvar_ps(first_or_second, _mm512_zextps128_ps512(d_dmin)));
}

// Sub-blocks of the 64-byte vectors the gemv multiplies: the low and high nibbles of level bytes
// 0-63 (groups 0 and 1) are sub-blocks (0, 2) and (1, 3), of bytes 64-127 (4, 6) and (5, 7).
constexpr int kVectorSubBlocks[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};

// Q5_K: ORs the fifth bits into the 4 level vectors w of kVectorSubBlocks order. Vector i holds
// sub-blocks (a, b): the low 32 bytes need bit a of each high-bit byte, the upper 32 bit b.
inline void add_q5k_fifth_bits(const uint8_t* block, __m512i w[4]) {
  const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + kQ5kHighBitsAt));
  // Lanes 0-31: qh, lanes 32-63: qh >> 2, so that bits 0 / 1 are those of sub-blocks (0, 2) / (1, 3);
  // 4 bits further down, those of (4, 6) / (5, 7). Bits a 16-bit shift carries across bytes are
  // never among those read (simd_kquant_avx2-inl.h).
  __m512i high = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
  const __m512i bit4 = _mm512_set1_epi8(0x10);
#pragma GCC unroll 2
  for (int i = 0; i < 4; i += 2) {
    w[i] = _mm512_or_si512(w[i], _mm512_and_si512(_mm512_slli_epi16(high, 4), bit4));
    w[i + 1] = _mm512_or_si512(w[i + 1], _mm512_and_si512(_mm512_slli_epi16(high, 3), bit4));
    high = _mm512_srli_epi16(high, 4);
  }
}

// kT activation rows against W rows [o_begin, o_end), one W row at a time.
template <class L, int kT>
void gemv_kquant_rows_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                           int64_t ldy) {
  const int64_t supers = W.cols / kKQuantSuperBlock;
  const int64_t row_bytes = supers * int64_t(L::kBytes);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // The activation levels with each super-block's sub-blocks in kVectorSubBlocks order, so that
  // vector i of the weights meets bytes 64 i .. 64 i + 63 (reordered per call: cols bytes a row
  // against the tile's ~64 KB of weights).
  thread_local std::vector<int8_t> reordered;
  reordered.resize(size_t(kT * x.cols));
  for (int t = 0; t < kT; ++t)
    for (int64_t sb = 0; sb < supers; ++sb)
      for (int i = 0; i < 4; ++i)
        for (int h = 0; h < 2; ++h)
          std::memcpy(reordered.data() + t * x.cols + sb * kKQuantSuperBlock + (2 * i + h) * kQuantBlock,
                      x.q + t * x.cols + sb * kKQuantSuperBlock + kVectorSubBlocks[i][h] * kQuantBlock, kQuantBlock);
  __m512i scale_lanes[4];
  for (int i = 0; i < 4; ++i)
    scale_lanes[i] = _mm512_mask_set1_epi32(_mm512_set1_epi32(kVectorSubBlocks[i][0]), 0xff00, kVectorSubBlocks[i][1]);
  QuantizedRowPointers<kT> xr(x, 0);
  for (int t = 0; t < kT; ++t) xr.q[t] = reordered.data() + t * x.cols;  // the levels in vector order
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + o * row_bytes;
    __m512 acc[kT][2];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < supers; ++sb) {
      const uint8_t* block = row + sb * int64_t(L::kBytes);
      for (int line = 0; line < int(L::kBytes); line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(block + kGemvPrefetchAhead + line), _MM_HINT_T0);
      const __m512 lane_scales = q4k_lane_scales(block);
      // The fixed-count loops below must unroll (also at -O2) so that w stays in registers.
      __m512i w[4];
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        const __m512i packed = _mm512_loadu_si512(block + L::kLevelsAt + 64 * half);
        w[2 * half] = _mm512_and_si512(packed, low4);
        w[2 * half + 1] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
      }
      if constexpr (L::kHighBits) add_q5k_fifth_bits(block, w);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        // Lanes 0-7: d sc_k dx_k; lanes 8-15: dmin m_k dx_k (each sub-block's dx twice).
        const __m256 dx = _mm256_loadu_ps(xr.scale[t] + sb * kQ4kSubBlocks);
        const __m512 scale = _mm512_mul_ps(lane_scales, _mm512_broadcast_f32x8(dx));
        // The min terms, subtracted in lanes 8-15 (all lanes are summed at the end).
        const __m256i sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr.sum[t] + sb * kQ4kSubBlocks));
        acc[t][1] = _mm512_mask3_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_broadcast_i64x4(sums)), scale, acc[t][1], 0xff00);
        const int8_t* xb = xr.q[t] + sb * kKQuantSuperBlock;
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          const __m512i dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[i], _mm512_loadu_si512(xb + 64 * i));
          acc[t][i % 2] =
              _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots), _mm512_permutexvar_ps(scale_lanes[i], scale), acc[t][i % 2]);
        }
      }
    }
    for (int t = 0; t < kT; ++t) y[t * ldy + o] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
  }
}

template <class L>
void gemv_kquant_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                      int64_t ldy) {
  static_assert(kGemvMaxRows == 4, "one case per row count below");
  switch (x.rows) {
    case 1: return gemv_kquant_rows_vnni<L, 1>(x, W, o_begin, o_end, y, ldy);
    case 2: return gemv_kquant_rows_vnni<L, 2>(x, W, o_begin, o_end, y, ldy);
    case 3: return gemv_kquant_rows_vnni<L, 3>(x, W, o_begin, o_end, y, ldy);
    case 4: return gemv_kquant_rows_vnni<L, 4>(x, W, o_begin, o_end, y, ldy);
    default: return;
  }
}

// ---- gemm: the int8 GEMM of matmul_q8vnni-inl.h with per-sub-block mins ----
// A panel of kVnniNr output columns x kKQuantKcBlocks sub-blocks (two super-blocks) is unpacked once
// and reused by every row tile of x: words[(b * 8 + g) * kVnniNr + j] holds the 4 levels
// k = 32 b + 4 g .. + 3 of column j (the Q4_0 panel layout), and per sub-block and column the fp32
// d sc and dmin m. Per sub-block, the int32 dot products are scaled by d sc dx into fp32
// accumulators, from which dmin m (dx s) is subtracted.

constexpr int64_t kKQuantKcBlocks = 2 * kQ4kSubBlocks;
// One panel: the level words, then kKQuantKcBlocks * kVnniNr scales and as many mins.
constexpr int64_t kKQuantPanelFloats = kKQuantKcBlocks * 8 * kVnniNr + 2 * kKQuantKcBlocks * kVnniNr;

// Unpacks W rows o0 .. o0 + rows - 1 (rows <= kVnniNr; zero columns after), sub-blocks b0 .. b0 + nb - 1
// (whole super-blocks).
template <class L>
void pack_panel_kquant(const WeightMatrix& W, int64_t o0, int64_t rows, int64_t b0, int64_t nb, uint32_t* words,
                       float* scales, float* mins) {
  const int64_t row_bytes = W.cols / kKQuantSuperBlock * int64_t(L::kBytes);
  const auto* base = static_cast<const uint8_t*>(W.data) + o0 * row_bytes + b0 / kQ4kSubBlocks * int64_t(L::kBytes);
  const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
  for (int j0 = 0; j0 < kVnniNr; j0 += 16) {
    for (int64_t bb = 0; bb < nb; bb += 2) {  // sub-blocks bb, bb + 1: one group of level bytes
      const uint8_t* super_block = base + bb / kQ4kSubBlocks * int64_t(L::kBytes);
      const uint8_t* group = super_block + L::kLevelsAt + (bb % kQ4kSubBlocks) / 2 * 32;
      // Q5_K: the high-bit bytes shifted so that bits 0 and 1 are those of sub-blocks bb and bb + 1.
      [[maybe_unused]] const __m128i high_shift = _mm_cvtsi32_si128(int(bb % kQ4kSubBlocks));
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        if (j0 + i >= rows) {
          r[i] = _mm512_setzero_ps();
          continue;
        }
        const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(group + (j0 + i) * row_bytes));
        __m256i low = _mm256_and_si256(packed, low4), high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
        if constexpr (L::kHighBits) {
          const __m256i qh = _mm256_srl_epi16(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(super_block + L::kHighBitsAt + (j0 + i) * row_bytes)),
              high_shift);
          low = _mm256_or_si256(low, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
          high = _mm256_or_si256(high, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
        }
        r[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1));
      }
      Simd::transpose(r);  // r[g] = word g of the two sub-blocks for the 16 columns
      for (int g = 0; g < 16; ++g) _mm512_storeu_ps(words + (bb * 8 + g) * kVnniNr + j0, r[g]);
    }
  }
  // Per super-block and 16 columns: each column's 8 scales and 8 mins (q4k_lane_scales), transposed
  // into 8 rows of scales and 8 of mins over the columns.
  for (int64_t sb = 0; sb < nb / kQ4kSubBlocks; ++sb) {
    for (int j0 = 0; j0 < kVnniNr; j0 += 16) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = j0 + i < rows ? q4k_lane_scales(base + (j0 + i) * row_bytes + sb * int64_t(L::kBytes))
                             : _mm512_setzero_ps();
      Simd::transpose(r);
      for (int k = 0; k < kQ4kSubBlocks; ++k) {
        _mm512_storeu_ps(scales + (sb * kQ4kSubBlocks + k) * kVnniNr + j0, r[k]);
        _mm512_storeu_ps(mins + (sb * kQ4kSubBlocks + k) * kVnniNr + j0, r[kQ4kSubBlocks + k]);
      }
    }
  }
}

// C[0:MR, 0:n] (+)= the product of MR quantized activation rows (levels A, lda bytes apart; block
// scales dx and dx * (level sum), lds apart) with nb unpacked sub-blocks.
template <int MR>
void micro_tile_kquant(int64_t nb, const int8_t* A, int64_t lda, const float* a_scale, const float* a_scaled_sum,
                    int64_t lds, const uint32_t* words, const float* w_scale, const float* w_min, float* C, int64_t ldc,
                    int n, bool accumulate) {
  const int lanes[2] = {std::clamp(n, 0, 16), std::clamp(n - 16, 0, 16)};
  // Every fixed-count loop unrolls (also at -O2): the accumulators must stay in registers.
  __m512 acc[MR][2];
  load_tile<MR>(acc, C, ldc, lanes, accumulate);
  for (int64_t bb = 0; bb < nb; ++bb) {
    __m512i dots[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) dots[r][0] = dots[r][1] = _mm512_setzero_si512();
    add_block_dots<MR>(words + bb * 8 * kVnniNr, A + bb * kQuantBlock, lda, dots);
    const __m512 d0 = Simd::load(w_scale + bb * kVnniNr), d1 = Simd::load(w_scale + bb * kVnniNr + 16);
    const __m512 m0 = Simd::load(w_min + bb * kVnniNr), m1 = Simd::load(w_min + bb * kVnniNr + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 s = Simd::set1(a_scale[r * lds + bb]), s_sum = Simd::set1(a_scaled_sum[r * lds + bb]);
      acc[r][0] = _mm512_fnmadd_ps(m0, s_sum, Simd::fma(_mm512_cvtepi32_ps(dots[r][0]), Simd::mul(d0, s), acc[r][0]));
      acc[r][1] = _mm512_fnmadd_ps(m1, s_sum, Simd::fma(_mm512_cvtepi32_ps(dots[r][1]), Simd::mul(d1, s), acc[r][1]));
    }
  }
  store_tile<MR>(acc, C, ldc, lanes);
}

using MicroTileKQuantFn = void (*)(int64_t, const int8_t*, int64_t, const float*, const float*, int64_t,
                                const uint32_t*, const float*, const float*, float*, int64_t, int, bool);

template <int... R>
constexpr std::array<MicroTileKQuantFn, sizeof...(R)> micro_tiles_kquant(std::integer_sequence<int, R...>) {
  return {&micro_tile_kquant<R + 1>...};
}

template <class L>
void gemm_kquant_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                      int64_t ldy, float* scratch) {
  static constexpr auto tiles = micro_tiles_kquant(std::make_integer_sequence<int, kVnniMr>());
  const int64_t blocks = W.cols / kQuantBlock, row_bytes = W.cols / kKQuantSuperBlock * int64_t(L::kBytes);
  if (blocks == 0) {
    for (int64_t t = 0; t < x.rows; ++t) std::fill(y + t * ldy + o_begin, y + t * ldy + o_end, 0.0f);
    return;
  }
  auto* words = reinterpret_cast<uint32_t*>(scratch);
  float* w_scale = scratch + kKQuantKcBlocks * 8 * kVnniNr;
  float* w_min = w_scale + kKQuantKcBlocks * kVnniNr;
  // dx * (level sum) of every activation block, the factor of the min terms, once per call.
  thread_local std::vector<float> scaled_sums;
  scaled_sums.resize(size_t(x.rows * blocks));
  for (int64_t i = 0; i < x.rows * blocks; ++i) scaled_sums[size_t(i)] = x.scale[i] * float(x.sum[i]);
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kVnniNr) {
    const int n = int(std::min<int64_t>(kVnniNr, o_end - o0));
    for (int64_t b0 = 0; b0 < blocks; b0 += kKQuantKcBlocks) {
      const int64_t nb = std::min(kKQuantKcBlocks, blocks - b0);  // whole super-blocks, as rows are
      // The next panel, prefetched (prefetch_panel): Q4_K +30% for 16 rows, +8% for 64, +3% for 128;
      // Q5_K +10-17%, +7%, +4% (kernel_lab quant, 1 thread).
      const bool row_end = b0 + kKQuantKcBlocks >= blocks;  // the next panel starts the next columns
      const int64_t next_o0 = row_end ? o0 + kVnniNr : o0, next_b0 = row_end ? 0 : b0 + kKQuantKcBlocks;
      prefetch_panel(W, row_bytes, next_o0, std::min<int64_t>(kVnniNr, o_end - next_o0),
                     next_b0 / kQ4kSubBlocks * int64_t(L::kBytes),
                     std::min(kKQuantKcBlocks, blocks - next_b0) / kQ4kSubBlocks * int64_t(L::kBytes));
      pack_panel_kquant<L>(W, o0, n, b0, nb, words, w_scale, w_min);
      for (int64_t t0 = 0; t0 < x.rows; t0 += kVnniMr) {
        const int64_t mr = std::min<int64_t>(kVnniMr, x.rows - t0);
        tiles[size_t(mr - 1)](nb, x.q + t0 * x.cols + b0 * kQuantBlock, x.cols, x.scale + t0 * blocks + b0,
                              scaled_sums.data() + t0 * blocks + b0, blocks, words, w_scale, w_min, y + t0 * ldy + o0,
                              ldy, n, b0 > 0);
      }
    }
  }
}
