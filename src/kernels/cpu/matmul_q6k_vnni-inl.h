// Products with Q6_K weights (core/q6_k.h) on AVX512_VNNI, with the numerics of
// kernels/ref/quantized_ops.h: a decoding product and an int8 GEMM. Both multiply the unsigned
// levels u (0 .. 63, as vpdpbusd needs) and remove the offset 32 per group of 16 values in int32,
// from the activations' level sums per group (q6k_group_offsets, once per call), so each group's
// dot product sum (u - 32) q is exact; it is then scaled in fp32 by d sc_g (exact in fp32: an f16
// times an 8-bit integer) and the block's dx.
//
// Levels: the low nibbles of ql bytes 64 h .. 64 h + 63 are values 128 h .. 128 h + 63 in order
// (chunks 0 and 1 of half h), their high nibbles values 128 h + 64 .. 128 h + 127 (chunks 2, 3);
// the high bit pairs come from qh bytes 32 h .. 32 h + 31, bits 2c, 2c + 1 for chunk c. So 64
// bytes of ql and 32 of qh (in both 256-bit halves) make two zmm of levels in value order, and
// the activations need no reordering.
// Included by isa_avx512bf16.cc after simd_avx512-inl.h, simd_q8_avx2-inl.h and
// matmul_q8vnni-inl.h, with core/q6_k.h; no includes here.

// Levels of values 64 v .. 64 v + 63 (v = 0 .. 3) of a super-block as unsigned bytes in value order.
inline __m512i q6k_levels(const uint8_t* block, int v) {
  const int h = v / 2;
  const __m512i ql = _mm512_loadu_si512(block + 64 * h);
  const __m512i qh =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + kQ6kHighBitsAt + 32 * h)));
  // Bits 2c, 2c + 1 to bits 4, 5 for chunk c = 2 (v % 2) (lower 256 bits) and c + 1 (upper): a
  // left shift by 4 and 2, or a right shift by 0 and 2 (what 16-bit shifts carry across bytes is
  // masked off).
  const __m512i lower_upper = _mm512_setr_epi64(0, 0, 0, 0, 0x0002000200020002, 0x0002000200020002,
                                                0x0002000200020002, 0x0002000200020002);
  const __m512i low = v % 2 == 0 ? ql : _mm512_srli_epi16(ql, 4);
  const __m512i high = v % 2 == 0 ? _mm512_sllv_epi16(qh, _mm512_sub_epi16(_mm512_set1_epi16(4), lower_upper))
                                  : _mm512_srlv_epi16(qh, lower_upper);
  return _mm512_or_si512(_mm512_and_si512(low, _mm512_set1_epi8(0x0f)),
                         _mm512_and_si512(high, _mm512_set1_epi8(0x30)));
}

// offsets[g] = 32 x the sum of activation levels 16 g .. 16 g + 15 of q (the offset of the
// levels times the activations of group g), for n levels (a multiple of 128): vpsadbw sums 8
// bytes (of q + 128) per 64-bit lane.
inline void q6k_group_offsets(const int8_t* q, int64_t n, int32_t* offsets) {
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  for (int64_t i = 0; i < n; i += 128) {
    __m512i eighths[2];
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j)
      eighths[j] = _mm512_sad_epu8(_mm512_xor_si512(_mm512_loadu_si512(q + i + 64 * j), _mm512_set1_epi8(int8_t(0x80))),
                                   _mm512_setzero_si512());
    const __m512i groups = _mm512_add_epi64(_mm512_permutex2var_epi64(eighths[0], even, eighths[1]),
                                            _mm512_permutex2var_epi64(eighths[0], odd, eighths[1]));
    const __m256i sums = _mm256_sub_epi32(_mm512_cvtepi64_epi32(groups), _mm256_set1_epi32(kQ6kGroup * 128));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(offsets + i / kQ6kGroup), _mm256_slli_epi32(sums, 5));
  }
}

// ---- gemv: one super-block at a time ----
// Per super-block and activation row: 4 vpdpbusd (each 4 groups x 4 partial sums), a reduction
// tree to the 16 group sums (in kQ6kReducedGroup lane order), minus 32 x the activation group
// sums, converted and scaled by (d sc_g) dx per lane into one accumulator. Levels and scales are
// built once per super-block for all rows; the offsets and activation scales per group are laid
// out once per call in the reduced lane order. Each super-block prefetches kGemvPrefetchAhead
// ahead, as the Q4_0 gemv does (matmul_q8vnni-inl.h). On Zen 5 with 1 thread (bench/kernel_lab.sh
// quant) this reads the weights at the read bandwidth for 1 and 2 rows and at 57% of it for 4,
// where the AVX2 policy (simd_q6k_avx2-inl.h) reached 60%, 42% and 25%.

// Lane 4 L + i of a reduced super-block holds group 4 i + L (its 128-bit lane L of level vector i).
constexpr int kQ6kReducedGroup[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// d[i] holds 4 partial sums per group of the 4 groups of level vector i (one per 128-bit lane).
// Returns the 16 group sums in kQ6kReducedGroup order: interleave-and-add twice within 128-bit lanes.
inline __m512i reduce_groups(const __m512i d[4]) {
  const __m512i e0 = _mm512_add_epi32(_mm512_unpacklo_epi32(d[0], d[1]), _mm512_unpackhi_epi32(d[0], d[1]));
  const __m512i e1 = _mm512_add_epi32(_mm512_unpacklo_epi32(d[2], d[3]), _mm512_unpackhi_epi32(d[2], d[3]));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(e0, e1), _mm512_unpackhi_epi64(e0, e1));
}

// A super-block's d sc_g as fp32 (exact), in kQ6kReducedGroup order.
inline __m512 q6k_reduced_scales(const uint8_t* block) {
  const __m128i order = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);  // kQ6kReducedGroup
  const __m128i sc = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + kQ6kScalesAt)), order);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), _mm512_set1_ps(Q8Avx2::f16(block + kQ6kDAt)));
}

// kT activation rows against W rows [o_begin, o_end), one W row at a time.
template <int kT>
void gemv_q6k_rows_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                        int64_t ldy) {
  const int64_t supers = W.cols / kKQuantSuperBlock, groups = W.cols / kQ6kGroup;
  const int64_t row_bytes = supers * int64_t(kQ6kBytes);
  // Per row and super-block, in kQ6kReducedGroup order: each group's offset (q6k_group_offsets)
  // and dx (its block's).
  thread_local std::vector<int32_t> row_offsets, offsets;
  thread_local std::vector<float> group_dx;
  row_offsets.resize(size_t(groups));
  offsets.resize(size_t(kT * groups));
  group_dx.resize(size_t(kT * groups));
  for (int t = 0; t < kT; ++t) {
    q6k_group_offsets(x.q + t * x.cols, x.cols, row_offsets.data());
    for (int64_t sb = 0; sb < supers; ++sb)
      for (int lane = 0; lane < 16; ++lane) {
        const int64_t g = sb * 16 + kQ6kReducedGroup[lane], i = t * groups + sb * 16 + lane;
        offsets[size_t(i)] = row_offsets[size_t(g)];
        group_dx[size_t(i)] = x.scale[t * (x.cols / kQuantBlock) + g / 2];
      }
  }
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + o * row_bytes;
    __m512 acc[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < supers; ++sb) {
      const uint8_t* block = row + sb * int64_t(kQ6kBytes);
      for (int line = 0; line < int(kQ6kBytes); line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(block + kGemvPrefetchAhead + line), _MM_HINT_T0);
      // The fixed-count loops below must unroll (also at -O2) so that w stays in registers.
      __m512i w[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) w[v] = q6k_levels(block, v);
      const __m512 scales = q6k_reduced_scales(block);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        const int8_t* xq = x.q + t * x.cols + sb * kKQuantSuperBlock;
        __m512i d[4];
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v)
          d[v] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[v], _mm512_loadu_si512(xq + 64 * v));
        const int64_t i = t * groups + sb * 16;
        const __m512i dots = _mm512_sub_epi32(reduce_groups(d), _mm512_loadu_si512(offsets.data() + i));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots), _mm512_mul_ps(scales, _mm512_loadu_ps(group_dx.data() + i)),
                                 acc[t]);
      }
    }
    for (int t = 0; t < kT; ++t) y[t * ldy + o] = _mm512_reduce_add_ps(acc[t]);
  }
}

void gemv_q6k_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy) {
  static_assert(kGemvMaxRows == 4, "one case per row count below");
  switch (x.rows) {
    case 1: return gemv_q6k_rows_vnni<1>(x, W, o_begin, o_end, y, ldy);
    case 2: return gemv_q6k_rows_vnni<2>(x, W, o_begin, o_end, y, ldy);
    case 3: return gemv_q6k_rows_vnni<3>(x, W, o_begin, o_end, y, ldy);
    case 4: return gemv_q6k_rows_vnni<4>(x, W, o_begin, o_end, y, ldy);
    default: return;
  }
}

// ---- gemm: the int8 GEMM of matmul_q8vnni-inl.h, two groups to a block ----
// A panel of kVnniNr output columns x kQ6kKcGroups groups (two super-blocks, as the other
// k-quants') is unpacked once and reused by every row tile of x: words[(G * 4 + g) * kVnniNr + j]
// holds the levels of values 16 G + 4 g .. + 3 of column j (the Q8_0 panel layout, a group being
// half a block), then per group and column the fp32 d sc_G. Per group, the int32 dot products
// start at -32 x the activation group sum (add_block_dots over 4 words); per block of 32, the two
// groups are scaled by their d sc_G and added, then multiplied by the block's dx into the
// accumulators: 3 fp32 operations per row, 16 columns and block. Scaling each group by
// (d sc_G) dx instead (micro_tile_q8 over groups of 4 words, 6 rows) takes 4, and was 8-10%
// slower from 64 rows up (Zen 5, 1 thread: 540 against 590 GOP/s for 512 rows).

constexpr int64_t kQ6kKcGroups = 2 * kKQuantSuperBlock / kQ6kGroup;
constexpr int kQ6kGroupWords = kQ6kGroup / 4;
// Rows per register tile: per row, 2 int32 dot products, 2 block partial sums and 2 accumulators
// of 16 columns, so 4 rows (24 registers) rather than kVnniMr = 6 (36). Six rows with their
// accumulators in a stack buffer ran at 515 GOP/s where 4 rows ran at 565; 5 rows as fast as 4.
constexpr int kQ6kMr = 4;
// One panel: the level words, then kQ6kKcGroups * kVnniNr scales.
constexpr int64_t kQ6kPanelFloats = kQ6kKcGroups * kQ6kGroupWords * kVnniNr + kQ6kKcGroups * kVnniNr;

// Unpacks W rows o0 .. o0 + rows - 1 (rows <= kVnniNr; zero columns after), super-blocks
// sb0 .. sb0 + nsb - 1. Per 16 columns, the raw bytes are transposed first (qh of both halves, then
// ql of each half): word g of a transposed ql half gives the low nibbles of word g of values
// 0 .. 63 of the half and the high nibbles of values 64 .. 127, word g % 8 of its qh their high
// bits. Three transposes per super-block instead of four (of the levels, built column by column),
// and the level arithmetic on 16 columns at once: the GEMM 5% faster for 128 and 512 rows.
inline void pack_panel_q6k(const WeightMatrix& W, int64_t o0, int64_t rows, int64_t sb0, int64_t nsb, uint32_t* words,
                           float* scales) {
  const int64_t row_bytes = W.cols / kKQuantSuperBlock * int64_t(kQ6kBytes);
  const auto* base = static_cast<const uint8_t*>(W.data) + o0 * row_bytes + sb0 * int64_t(kQ6kBytes);
  constexpr int kSuperGroups = kKQuantSuperBlock / kQ6kGroup;
  const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
  for (int j0 = 0; j0 < kVnniNr; j0 += 16) {
    const int64_t columns = rows - j0;  // of these 16 (zero or less: none)
    // 64 bytes at `at` of each of the 16 columns' super-block, transposed: r[k] = their dwords k.
    const auto transposed = [&](const uint8_t* column0, int64_t at, __m512 r[16]) {
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = i < columns ? _mm512_loadu_ps(column0 + i * row_bytes + at) : _mm512_setzero_ps();
      Simd::transpose(r);
    };
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* column0 = base + j0 * row_bytes + sb * int64_t(kQ6kBytes);
      __m512 qh[16];
      transposed(column0, kQ6kHighBitsAt, qh);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        __m512 ql[16];
        transposed(column0, 64 * h, ql);
        uint32_t* out = words + (sb * kSuperGroups + 8 * h) * kQ6kGroupWords * kVnniNr + j0;
#pragma GCC unroll 16
        for (int g = 0; g < 16; ++g) {
          // Chunks c and c + 2 of the half (c = g / 8) take bits 2c, 2c + 1 and 2c + 4, 2c + 5 of
          // qh to bits 4, 5 (what the shifts carry across bytes is masked off).
          const int c = g / 8;
          const __m512i low = _mm512_castps_si512(ql[g]), high = _mm512_castps_si512(qh[8 * h + g % 8]);
          const __m512i first = _mm512_or_si512(_mm512_and_si512(low, low4),
                                                _mm512_and_si512(_mm512_slli_epi32(high, 4 - 2 * c), bits45));
          const __m512i second = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(low, 4), low4),
                                                 _mm512_and_si512(_mm512_srli_epi32(high, 2 * c), bits45));
          _mm512_storeu_si512(out + g * kVnniNr, first);
          _mm512_storeu_si512(out + (16 + g) * kVnniNr, second);
        }
      }
      // Each column's 16 d sc_g, transposed into 16 rows of scales over the columns.
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        const uint8_t* block = column0 + i * row_bytes;
        r[i] = i < columns ? _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                               reinterpret_cast<const __m128i*>(block + kQ6kScalesAt)))),
                                           _mm512_set1_ps(Q8Avx2::f16(block + kQ6kDAt)))
                           : _mm512_setzero_ps();
      }
      Simd::transpose(r);
      for (int g = 0; g < kSuperGroups; ++g) _mm512_storeu_ps(scales + (sb * kSuperGroups + g) * kVnniNr + j0, r[g]);
    }
  }
}

// C[0:MR, 0:n] (+)= the product of MR quantized activation rows (levels A, lda bytes apart; block
// scales dx lds_block apart, group offsets 32 x level sum lds_group apart) with nb packed blocks.
template <int MR>
void micro_tile_q6k(int64_t nb, const int8_t* A, int64_t lda, const float* a_scale, int64_t lds_block,
                    const int32_t* a_offset, int64_t lds_group, const uint32_t* words, const float* w_scale, float* C,
                    int64_t ldc, int n, bool accumulate) {
  const int lanes[2] = {std::clamp(n, 0, 16), std::clamp(n - 16, 0, 16)};
  // Every fixed-count loop unrolls (also at -O2): the accumulators must stay in registers.
  __m512 acc[MR][2];
  load_tile<MR>(acc, C, ldc, lanes, accumulate);
  for (int64_t b = 0; b < nb; ++b) {
    __m512 block[MR][2];  // sum over the block's two groups of d sc_G x (group dot product)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const int64_t g = 2 * b + h;
      __m512i dots[MR][2];
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) dots[r][0] = dots[r][1] = _mm512_set1_epi32(-a_offset[r * lds_group + g]);
      add_block_dots<MR, kQ6kGroupWords>(words + g * kQ6kGroupWords * kVnniNr, A + g * kQ6kGroup, lda, dots);
      const __m512 d0 = Simd::load(w_scale + g * kVnniNr), d1 = Simd::load(w_scale + g * kVnniNr + 16);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512 dot0 = _mm512_cvtepi32_ps(dots[r][0]), dot1 = _mm512_cvtepi32_ps(dots[r][1]);
        block[r][0] = h == 0 ? Simd::mul(dot0, d0) : Simd::fma(dot0, d0, block[r][0]);
        block[r][1] = h == 0 ? Simd::mul(dot1, d1) : Simd::fma(dot1, d1, block[r][1]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 s = Simd::set1(a_scale[r * lds_block + b]);
      acc[r][0] = Simd::fma(block[r][0], s, acc[r][0]);
      acc[r][1] = Simd::fma(block[r][1], s, acc[r][1]);
    }
  }
  store_tile<MR>(acc, C, ldc, lanes);
}

using MicroTileQ6kFn = void (*)(int64_t, const int8_t*, int64_t, const float*, int64_t, const int32_t*, int64_t,
                                const uint32_t*, const float*, float*, int64_t, int, bool);

template <int... R>
constexpr std::array<MicroTileQ6kFn, sizeof...(R)> micro_tiles_q6k(std::integer_sequence<int, R...>) {
  return {&micro_tile_q6k<R + 1>...};
}

void gemm_q6k_vnni(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy, float* scratch) {
  static constexpr auto tiles = micro_tiles_q6k(std::make_integer_sequence<int, kQ6kMr>());
  const int64_t supers = W.cols / kKQuantSuperBlock, groups = W.cols / kQ6kGroup, blocks = W.cols / kQuantBlock;
  if (supers == 0) {
    for (int64_t t = 0; t < x.rows; ++t) std::fill(y + t * ldy + o_begin, y + t * ldy + o_end, 0.0f);
    return;
  }
  // 32 x every activation group's level sum, once per call.
  thread_local std::vector<int32_t> offsets;
  offsets.resize(size_t(x.rows * groups));
  for (int64_t t = 0; t < x.rows; ++t) q6k_group_offsets(x.q + t * x.cols, x.cols, offsets.data() + t * groups);
  auto* words = reinterpret_cast<uint32_t*>(scratch);
  float* w_scale = scratch + kQ6kKcGroups * kQ6kGroupWords * kVnniNr;
  constexpr int64_t kKcSupers = kQ6kKcGroups * kQ6kGroup / kKQuantSuperBlock;
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kVnniNr) {
    const int n = int(std::min<int64_t>(kVnniNr, o_end - o0));
    for (int64_t sb0 = 0; sb0 < supers; sb0 += kKcSupers) {
      const int64_t nsb = std::min(kKcSupers, supers - sb0);
      const bool row_end = sb0 + kKcSupers >= supers;  // the next panel starts the next columns
      const int64_t next_o0 = row_end ? o0 + kVnniNr : o0, next_sb0 = row_end ? 0 : sb0 + kKcSupers;
      prefetch_panel(W, supers * int64_t(kQ6kBytes), next_o0, std::min<int64_t>(kVnniNr, o_end - next_o0),
                     next_sb0 * int64_t(kQ6kBytes), std::min(kKcSupers, supers - next_sb0) * int64_t(kQ6kBytes));
      pack_panel_q6k(W, o0, n, sb0, nsb, words, w_scale);
      const int64_t b0 = sb0 * kKQuantSuperBlock / kQuantBlock, g0 = sb0 * kKQuantSuperBlock / kQ6kGroup;
      for (int64_t t0 = 0; t0 < x.rows; t0 += kQ6kMr) {
        const int64_t mr = std::min<int64_t>(kQ6kMr, x.rows - t0);
        tiles[size_t(mr - 1)](nsb * kKQuantSuperBlock / kQuantBlock, x.q + t0 * x.cols + b0 * kQuantBlock, x.cols,
                              x.scale + t0 * blocks + b0, blocks, offsets.data() + t0 * groups + g0, groups, words,
                              w_scale, y + t0 * ldy + o0, ldy, n, sb0 > 0);
      }
    }
  }
}
