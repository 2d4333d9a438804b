// Per-ISA kernels of the backward products (backward_gemm-inl.h): one block of columns of
// dx = dy · W or of dW += dy^T · x. Threading and the cutting into blocks live in
// backward_products.cc.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/isa.h"

namespace jetmoe::kernels::cpu {

// Input gradients (dx = dy · W) pack W a block at a time, kBackwardInputDepth rows across
// kBackwardInputCols columns, into kBackwardGemmScratchFloats of per-thread scratch (128 KB;
// measured best of 32x1024 .. 256x128 for 64 rows against MoE-sized weights). Weight gradients
// (dW += dy^T · x) cover kBackwardWeightCols columns per call (best of 128 .. 512 for 32 to 128
// rows of x), kBackwardWeightDepth rows of x at a time.
constexpr int64_t kBackwardInputDepth = 256;
constexpr int64_t kBackwardInputCols = 128;
constexpr int64_t kBackwardWeightDepth = 256;
constexpr int64_t kBackwardWeightCols = 256;
constexpr int64_t kBackwardGemmScratchFloats = kBackwardInputDepth * kBackwardInputCols;

struct BackwardGemmKernels {
  Isa isa;
  int64_t panel_cols;  // columns of one packed panel
  // C[0:M, 0:cols] = A[M, K] · B[K, col0 : col0 + cols] (assigned), cols <= kBackwardInputCols;
  // A rows lda apart, B (F32, BF16 or F16) rows ldb apart, C rows ldc apart. B is packed into
  // `scratch` (kBackwardGemmScratchFloats) a panel at a time.
  void (*input_block)(const float* A, int64_t lda, int64_t M, int64_t K, const void* B, DType b_type, int64_t ldb,
                      int64_t col0, int64_t cols, float* C, int64_t ldc, float* scratch);
  // panels[p][k][j] = B[k, col0 + p * panel_cols + j] for every k < K, whole panels over `cols`
  // (zero past them): the layout weight_block reads.
  void (*pack_rows)(const float* B, int64_t ldb, int64_t K, int64_t col0, int64_t cols, float* panels);
  // C[0:M, 0:cols] += A[K, 0:M]^T · B (accumulated) for B packed by pack_rows, its first panel at
  // `panels`; cols <= kBackwardWeightCols; A rows (one k each) lda apart.
  void (*weight_block)(const float* A, int64_t lda, int64_t M, int64_t K, const float* panels, int64_t cols, float* C,
                       int64_t ldc);
};

// The kernels of `isa` (the caller checks that this machine runs it).
const BackwardGemmKernels& backward_gemm_kernels(Isa isa);

}  // namespace jetmoe::kernels::cpu
