// The two products of a linear layer's backward, written once over the `Simd` of the including
// file (isa_<level>.cc). Both read their second operand B as it is stored, row-major [K, N] —
// a weight [out, in] for dx = dy · W, activation rows [T, in] for dW += dy^T · x — so nothing is
// transposed: a panel of B (a block of rows x kNr columns) is copied (BF16 / F16 weights converted) into
// contiguous fp32, then the forward gemm's register tile (micro_tile, matmul-inl.h) accumulates
// outer products of one broadcast A element and one panel row.
// The sum of every C element runs over k in increasing order, block after block, whatever the
// tiling or the threads: results do not depend on how the work is shared.
// Included by each isa_<level>.cc after matmul-inl.h (V, N, kMr, kNr); no includes here.

static_assert(kBackwardInputCols % kNr == 0 && kBackwardWeightCols % kNr == 0, "column blocks are whole panels");

// panels[p][kk][j] = B[k0 + kk, col0 + p * kNr + j] as fp32 for kk < kc, j < the block's width
// `cols` (zero beyond it, up to whole panels).
// Row by row, so that each row of B is read as one contiguous run (what the prefetchers follow).
template <DType kType>
void pack_b_block(const void* B, int64_t ldb, int64_t k0, int64_t kc, int64_t col0, int64_t cols, float* panels) {
  const int64_t n_vectors = (cols + kNr - 1) / kNr * Simd::kNv;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t row = (k0 + kk) * ldb + col0;
    for (int64_t v = 0; v < n_vectors; ++v) {
      const int64_t c = v * N;
      const int n = int(std::clamp<int64_t>(cols - c, 0, N));
      const V b = n == N  ? load_as_f32<kType>(B, row + c)
                  : n > 0 ? load_as_f32_n<kType>(B, row + c, n)
                          : Simd::zero();
      Simd::store(panels + (v / Simd::kNv) * kc * kNr + kk * kNr + (v % Simd::kNv) * N, b);
    }
  }
}

template <DType kType>
void input_gradient_typed(const float* A, int64_t lda, int64_t M, int64_t K, const void* B, int64_t ldb, int64_t col0,
                          int64_t cols, float* C, int64_t ldc, float* scratch) {
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + cols, 0.0f);
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += kBackwardInputDepth) {
    const int64_t kc = std::min(kBackwardInputDepth, K - k0);
    pack_b_block<kType>(B, ldb, k0, kc, col0, cols, scratch);
    for (int64_t c = 0; c < cols; c += kNr) {
      const float* panel = scratch + (c / kNr) * kc * kNr;
      const int n = int(std::min<int64_t>(kNr, cols - c));
      for (int64_t m0 = 0; m0 < M; m0 += kMr) {
        const int64_t mr = std::min<int64_t>(kMr, M - m0);
        micro_tile_for<false>(mr)(kc, A + m0 * lda + k0, lda, panel, kNr, C + m0 * ldc + c, ldc, n, k0 > 0);
      }
    }
  }
}

// C[0:M, 0:cols] = A[M, K] · B[K, col0 : col0 + cols], cols <= kBackwardInputCols; B in F32, BF16 or F16.
void backward_input_block(const float* A, int64_t lda, int64_t M, int64_t K, const void* B, DType b_type, int64_t ldb,
                          int64_t col0, int64_t cols, float* C, int64_t ldc, float* scratch) {
  switch (b_type) {
    case DType::BF16:
      return input_gradient_typed<DType::BF16>(A, lda, M, K, B, ldb, col0, cols, C, ldc, scratch);
    case DType::F16:
      return input_gradient_typed<DType::F16>(A, lda, M, K, B, ldb, col0, cols, C, ldc, scratch);
    default:
      return input_gradient_typed<DType::F32>(A, lda, M, K, B, ldb, col0, cols, C, ldc, scratch);
  }
}

// B [K, col0 : col0 + cols] as whole panels [panel][K][kNr] (zero past cols), for
// backward_weight_block: the activations of a weight gradient are packed once per product, not
// once per block of its (many) output rows.
void backward_pack_rows(const float* B, int64_t ldb, int64_t K, int64_t col0, int64_t cols, float* panels) {
  pack_b_block<DType::F32>(B, ldb, 0, K, col0, cols, panels);
}

// C[0:M, 0:cols] += A[K, 0:M]^T · B for B packed by backward_pack_rows (its first panel at
// `panels`), cols <= kBackwardWeightCols. A weight gradient is mostly read-modify-write of C
// (K, the tokens of one expert, is small): a row tile covers the block's whole width, so each C
// row is one contiguous run, and the next row tile's C is prefetched while this one computes.
void backward_weight_block(const float* A, int64_t lda, int64_t M, int64_t K, const float* panels, int64_t cols,
                           float* C, int64_t ldc) {
  for (int64_t k0 = 0; k0 < K; k0 += kBackwardWeightDepth) {
    const int64_t kc = std::min(kBackwardWeightDepth, K - k0);
    for (int64_t m0 = 0; m0 < M; m0 += kMr) {
      const int64_t mr = std::min<int64_t>(kMr, M - m0);
      prefetch_c_rows(C, ldc, m0 + kMr, std::min(M, m0 + 2 * kMr), cols);
      for (int64_t c = 0; c < cols; c += kNr) {
        const float* panel = panels + (c / kNr) * K * kNr + k0 * kNr;
        const int n = int(std::min<int64_t>(kNr, cols - c));
        micro_tile_for<false, true>(mr)(kc, A + k0 * lda + m0, lda, panel, kNr, C + m0 * ldc + c, ldc, n, true);
      }
    }
  }
}
