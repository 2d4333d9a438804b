// Products y = x · W^T with k-quant weights (core/q4_k.h, q5_k.h, q6_k.h) on 8-bit activation
// rows (QuantizedRows, blocks of 32 aligned with the k-quant sub-blocks), with the numerics of
// kernels/ref/quantized_ops.h:
// per sub-block k of a super-block with scales d, dmin and 6-bit sc_k, m_k, against the
// activation block with scale dx_k, levels q and level sum s_k,
//   d sc_k dx_k (sum_j w_j q_j) - dmin m_k dx_k s_k      (w_j the levels, 0 .. 15 or 0 .. 31)
// so the min term needs only the block sum QuantizedRows already carries (Q6_K has no mins: two
// groups of 16 with signed scales per activation block, see quantized_ops.h).
//  - gemv_kquant: few rows (decoding). Streams W rows once, super-block by super-block, the weights
//    staying 4.5 to 6.6 bits per value up to the registers.
//  - gemm_kquant_dots: many rows, as the same dot products, four activation rows per pass over a
//    tile of W rows.
// Written once over the super-block policy K of the including level (simd_kquant_*-inl.h for
// Q4_K / Q5_K, whose K::Layout is Q4kLayout or Q5kLayout; simd_q6k_*-inl.h for Q6_K):
//   K::Sums (a row's running sums), K::zero(), K::finish(sums) -> y,
//   K::Scales, K::load_scales(super_block) (its d sc_k and dmin m_k, shared by the rows),
//   K::accumulate(super_block, scales, xq, xs, xsum, sums) (256 levels, 8 scales, 8 sums).
// The AVX512_VNNI level replaces both for Q4_K / Q5_K with matmul_kquant_vnni-inl.h, for Q6_K
// with matmul_q6k_vnni-inl.h. Included by isa_<level>.cc inside its namespace and target pragma
// (after core/q4_k.h, q5_k.h and q6_k.h); no includes here.

// Activation rows t0 .. t0 + kT - 1 against W rows [o_begin, o_end), one W row at a time; each
// super-block's scales are decoded once for the kT rows.
template <class K, int kT>
void kquant_dot_rows(const QuantizedRows& x, int64_t t0, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                  int64_t ldy) {
  const int64_t supers = W.cols / kKQuantSuperBlock;
  const int64_t row_bytes = supers * int64_t(K::Layout::kBytes);
  const QuantizedRowPointers<kT> xr(x, t0);
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + o * row_bytes;
    typename K::Sums sums[kT];
    for (auto& s : sums) s = K::zero();
    for (int64_t sb = 0; sb < supers; ++sb) {
      const uint8_t* block = row + sb * int64_t(K::Layout::kBytes);
      const typename K::Scales scales = K::load_scales(block);
      for (int t = 0; t < kT; ++t)
        K::accumulate(block, scales, xr.q[t] + sb * kKQuantSuperBlock, xr.scale[t] + sb * kQ4kSubBlocks,
                      xr.sum[t] + sb * kQ4kSubBlocks, sums[t]);
    }
    for (int t = 0; t < kT; ++t) y[(t0 + t) * ldy + o] = K::finish(sums[t]);
  }
}

template <class K>
void kquant_dot_rows_any(const QuantizedRows& x, int64_t t0, int64_t rows, const WeightMatrix& W, int64_t o_begin,
                      int64_t o_end, float* y, int64_t ldy) {
  static_assert(kGemvMaxRows == 4, "one case per row count below");
  switch (rows) {
    case 1: return kquant_dot_rows<K, 1>(x, t0, W, o_begin, o_end, y, ldy);
    case 2: return kquant_dot_rows<K, 2>(x, t0, W, o_begin, o_end, y, ldy);
    case 3: return kquant_dot_rows<K, 3>(x, t0, W, o_begin, o_end, y, ldy);
    case 4: return kquant_dot_rows<K, 4>(x, t0, W, o_begin, o_end, y, ldy);
    default: return;
  }
}

template <class K>
void gemv_kquant(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y, int64_t ldy) {
  kquant_dot_rows_any<K>(x, 0, x.rows, W, o_begin, o_end, y, ldy);
}

template <class K>
void gemm_kquant_dots(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy, float*) {
  for (int64_t t0 = 0; t0 < x.rows; t0 += kGemvMaxRows)
    kquant_dot_rows_any<K>(x, t0, std::min<int64_t>(kGemvMaxRows, x.rows - t0), W, o_begin, o_end, y, ldy);
}
