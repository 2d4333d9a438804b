// Products y = x · W^T with Q8_0 / Q4_0 weights on 8-bit activations (the numerics of
// kernels/ref/quantized_ops.h), written once over the block primitives Q of the including level
// (simd_q8_*-inl.h):
//  - quantize_row_q8: activations to 8-bit blocks, once per product;
//  - gemv_q8: few rows (decoding). Streams W rows once, block by block: integer dot products of
//    the weight levels with the activation levels, scaled by (weight scale x activation scale)
//    into fp32 accumulators. The weights stay 4.5 / 8.5 bits per value all the way to the
//    registers, so decoding reads 1.9 / 3.6 times fewer bytes than BF16.
//  - gemm_q8_dots: many rows, as the same dot products, four activation rows per pass over a tile
//    of W rows.
// The AVX512_VNNI level replaces gemv_q8 and gemm_q8_dots with matmul_q8vnni-inl.h (16 blocks
// per step; a packed int8 GEMM) and keeps quantize_row_q8.
// Included by isa_<level>.cc inside its namespace and target pragma; no includes here.

template <DType kType>
constexpr int64_t kQ8BlockBytes = kType == DType::Q8_0 ? 34 : 18;

template <class Q, DType kType>
inline typename Q::Block load_weight_block(const uint8_t* block) {
  if constexpr (kType == DType::Q8_0)
    return Q::load_q8_0(block + 2);
  else
    return Q::load_q4_0(block + 2);
}

template <class Q, DType kType>
inline typename Q::Acc dot_block(typename Q::Block w, typename Q::Block x, int32_t x_sum) {
  if constexpr (kType == DType::Q8_0)
    return Q::dot_q8_0(w, x, x_sum);
  else
    return Q::dot_q4_0(w, x, x_sum);
}

template <class Q>
void quantize_row_q8(const float* x, int64_t n, int8_t* q, float* scale, int32_t* sum) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b)
    Q::quantize_block(x + b * kQuantBlock, q + b * kQuantBlock, scale + b, sum + b);
}

// Activation rows t0 .. t0 + kT - 1 against W rows [o_begin, o_end): one W row at a time (a
// single sequential stream, what the prefetcher follows best), each weight block loaded once for
// the kT rows, two blocks per step into separate accumulators (an FMA chain per block would wait
// on its latency).
template <class Q, DType kType, int kT>
void dot_rows(const QuantizedRows& x, int64_t t0, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
              int64_t ldy) {
  using Acc = typename Q::Acc;
  const int64_t blocks = W.cols / kQuantBlock;
  const int64_t row_bytes = blocks * kQ8BlockBytes<kType>;
  const QuantizedRowPointers<kT> xr(x, t0);
  const auto step = [&](const uint8_t* row, int64_t b, Acc* acc) {
    const uint8_t* block = row + b * kQ8BlockBytes<kType>;
    const float dw = Q::f16(block);
    const typename Q::Block w = load_weight_block<Q, kType>(block);
    for (int t = 0; t < kT; ++t) {
      const Acc p = dot_block<Q, kType>(w, Q::load_x(xr.q[t] + b * kQuantBlock), xr.sum[t][b]);
      acc[2 * t] = Q::fma(p, dw * xr.scale[t][b], acc[2 * t]);
    }
  };
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + o * row_bytes;
    Acc acc[2 * kT];
    for (Acc& a : acc) a = Q::zero();
    int64_t b = 0;
    for (; b + 2 <= blocks; b += 2) {
      step(row, b, acc);
      step(row, b + 1, acc + 1);
    }
    if (b < blocks) step(row, b, acc);
    for (int t = 0; t < kT; ++t) y[(t0 + t) * ldy + o] = Q::reduce(Q::add(acc[2 * t], acc[2 * t + 1]));
  }
}

template <class Q, DType kType>
void dot_rows_any(const QuantizedRows& x, int64_t t0, int64_t rows, const WeightMatrix& W, int64_t o_begin,
                  int64_t o_end, float* y, int64_t ldy) {
  static_assert(kGemvMaxRows == 4, "one case per row count below");
  switch (rows) {
    case 1:
      return dot_rows<Q, kType, 1>(x, t0, W, o_begin, o_end, y, ldy);
    case 2:
      return dot_rows<Q, kType, 2>(x, t0, W, o_begin, o_end, y, ldy);
    case 3:
      return dot_rows<Q, kType, 3>(x, t0, W, o_begin, o_end, y, ldy);
    case 4:
      return dot_rows<Q, kType, 4>(x, t0, W, o_begin, o_end, y, ldy);
    default:
      return;
  }
}

template <class Q>
void gemv_q8(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y, int64_t ldy) {
  if (W.dtype == DType::Q8_0)
    dot_rows_any<Q, DType::Q8_0>(x, 0, x.rows, W, o_begin, o_end, y, ldy);
  else
    dot_rows_any<Q, DType::Q4_0>(x, 0, x.rows, W, o_begin, o_end, y, ldy);
}

template <class Q>
void gemm_q8_dots(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y, int64_t ldy,
                  float*) {
  for (int64_t t0 = 0; t0 < x.rows; t0 += kGemvMaxRows) {
    const int64_t rows = std::min<int64_t>(kGemvMaxRows, x.rows - t0);
    if (W.dtype == DType::Q8_0)
      dot_rows_any<Q, DType::Q8_0>(x, t0, rows, W, o_begin, o_end, y, ldy);
    else
      dot_rows_any<Q, DType::Q4_0>(x, t0, rows, W, o_begin, o_end, y, ldy);
  }
}
