// The per-instruction-set kernels behind ops.h: one table per Isa, filled by isa_<level>.cc from
// the same templates (*-inl.h) compiled for that level. Everything here works on one tile or one
// row; threading and work splitting live in ops.cc, which is compiled for the baseline ISA.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/isa.h"

namespace jetmoe::ops {
struct AttentionBackwardHead;  // kernels/attention_backward.h
}

namespace jetmoe::kernels::cpu {

// A row-major [rows, cols] weight matrix in its stored dtype: y = x · W^T reads rows of W.
struct WeightMatrix {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;  // out
  int64_t cols = 0;  // in
};

// Activation rows quantized to 8-bit blocks for products with Q8_0 / Q4_0 / Q4_K weights (the
// numerics of kernels/ref/quantized_ops.h): value j of row t is scale[t * blocks + j / 32] * q[t * cols + j].
struct QuantizedRows {
  const int8_t* q = nullptr;      // [rows, cols]
  const float* scale = nullptr;   // [rows, cols / 32]
  const int32_t* sum = nullptr;   // [rows, cols / 32]: sum of each block's q (for weights stored with an offset)
  int64_t rows = 0;
  int64_t cols = 0;               // a multiple of kQuantBlock
};

// Where rows t0 .. t0 + kT - 1 of a QuantizedRows start: what a decoding kernel walks for every
// W row.
template <int kT>
struct QuantizedRowPointers {
  const int8_t* q[kT];
  const float* scale[kT];
  const int32_t* sum[kT];
  QuantizedRowPointers(const QuantizedRows& x, int64_t t0) {
    const int64_t blocks = x.cols / kQuantBlock;
    for (int t = 0; t < kT; ++t) {
      q[t] = x.q + (t0 + t) * x.cols;
      scale[t] = x.scale + (t0 + t) * blocks;
      sum[t] = x.sum + (t0 + t) * blocks;
    }
  }
};

// One block of causal attention for one KV head: `rows` query rows attend keys 0 .. n_keys[r]-1.
struct AttentionBlock {
  const float* q = nullptr;      // row r at q + r * q_stride, head_dim floats
  int64_t q_stride = 0;
  const void* keys = nullptr;    // position p at keys + p * kv_stride elements (post-RoPE)
  const void* values = nullptr;  // position p at values + p * kv_stride elements
  DType kv_type = DType::F32;    // of keys and values: F32 or F16
  int64_t kv_stride = 0;
  float* out = nullptr;          // row r at out + r * out_stride (assigned)
  int64_t out_stride = 0;
  int64_t rows = 0;              // at most kAttentionMaxRows
  const int64_t* n_keys = nullptr;
  int64_t head_dim = 0;
  float scale = 1.0f;
  // Products on bf16 operands (ops::Activations::BF16): queries, keys, the unnormalised
  // probabilities exp(s - running max) and values are rounded to bf16 (nearest even), their
  // products are exact and summed in fp32; AVX512_BF16 runs them as bf16 dot products, other
  // levels multiply the rounded values in fp32.
  bool bf16_products = false;
};

// Decoding attention over positions [key_begin, key_end) of the cache, every KV head at once: a
// position's K and V rows (H x D floats each) are read whole, in order, so the reads are one
// sequential stream per call (a head at a time they would stride through the cache, a row apart,
// past the page boundaries where hardware prefetchers stop). `rows` query rows of H heads each
// (row r, head j at q + r * H * D + j * D) attend key p when p < n_keys[r]; every row must have
// a key in the range. The softmax goes on from `state` and is left there (decode_state_floats):
// per row and head, the largest score m and the sum l of the exponentials against it, then the
// unnormalised outputs o [rows, H * D]; output = o / l. Start from m = -inf, l = 0, o = 0.
struct DecodeAttentionBlock {
  const float* q = nullptr;
  const void* keys = nullptr;    // position p at keys + p * H * D elements (post-RoPE)
  const void* values = nullptr;  // position p at values + p * H * D elements
  DType kv_type = DType::F32;    // of keys and values: F32 or F16
  int64_t rows = 0, heads = 0, head_dim = 0;
  int64_t key_begin = 0, key_end = 0;
  const int64_t* n_keys = nullptr;
  float scale = 1.0f;
  float* state = nullptr;
};
// Positions per step of a decode call: their scores [rows, step, heads rounded up to 16] are
// scratch.
constexpr int64_t kDecodeStep = 32;
inline int64_t decode_heads_padded(int64_t heads) { return (heads + 15) / 16 * 16; }
inline int64_t decode_scratch_floats(int64_t rows, int64_t heads) {
  return rows * kDecodeStep * decode_heads_padded(heads);
}
// m [rows, heads padded], l [rows, heads padded], o [rows, heads * head_dim].
inline int64_t decode_state_floats(int64_t rows, int64_t heads, int64_t head_dim) {
  return rows * (2 * decode_heads_padded(heads) + heads * head_dim);
}
// The parts of a decode state at `state`: row r, head j at m[r * heads padded + j], the same in
// l, and o + r * heads * head_dim + j * head_dim.
struct DecodeState {
  float* m;
  float* l;
  float* o;
};
inline DecodeState decode_state(float* state, int64_t rows, int64_t heads) {
  const int64_t padded = rows * decode_heads_padded(heads);
  return {state, state + padded, state + 2 * padded};
}

// Query rows per attention block and keys per inner block; scratch sizes follow from them.
// 96 x 128 against 32 x 64 before (bench/kernel_lab.sh attention, 512 tokens, top-2, 2 threads):
// head dim 64 at 48% -> 55% of the fp32 peak, 128 at 56% -> 61%: a packed key block serves 3x
// the rows, and the 12-row register tiles divide 96 rows evenly (32 left a tile of 8).
constexpr int64_t kAttentionMaxRows = 96;
constexpr int64_t kAttentionKeyBlock = 128;
// Scores, outputs, running max and sum of the rows; the transposed key block; the value block
// widened to float32 (F16 caches, bf16 products); the rounded queries and probabilities of bf16
// products.
inline int64_t attention_scratch_floats(int64_t head_dim) {
  const int64_t d_pad = (head_dim + 63) / 64 * 64;
  return kAttentionMaxRows * (kAttentionKeyBlock + d_pad + 2) + 2 * d_pad * kAttentionKeyBlock +
         kAttentionMaxRows * (d_pad + kAttentionKeyBlock);
}

// Tokens per packed panel of bf16 activations (gemm_bf16dot).
constexpr int64_t kBf16TokenPanel = 32;

// Products with at most this many activation rows stream W once as dot products (decoding);
// larger ones pack W into panels for a register-blocked product (prefill).
constexpr int64_t kGemvMaxRows = 4;

// Backward products (backward_gemm-inl.h). Input gradients (dx = dy · W) pack W a block at a
// time, kBackwardInputDepth rows across kBackwardInputCols columns, into
// kBackwardGemmScratchFloats of per-thread scratch (128 KB; measured best of 32x1024 .. 256x128
// for 64 rows against MoE-sized weights). Weight gradients (dW += dy^T · x) cover
// kBackwardWeightCols columns per call (best of 128 .. 512 for 32 to 128 rows of x),
// kBackwardWeightDepth rows of x at a time: each pass reads and writes its block of dW, which
// in a model's step comes from DRAM, so 512 rows (a 512-token expert in one pass, the packed x
// 512 KB of L2) made bf16 training steps 2-3% faster than 256.
constexpr int64_t kBackwardInputDepth = 256;
constexpr int64_t kBackwardInputCols = 128;
constexpr int64_t kBackwardWeightDepth = 512;
constexpr int64_t kBackwardWeightCols = 256;
constexpr int64_t kBackwardGemmScratchFloats = kBackwardInputDepth * kBackwardInputCols;

struct KernelTable {
  Isa isa;
  // Floats of scratch one thread needs for gemm / gemm_q8.
  int64_t gemm_scratch_floats;

  // y[t, o] = sum_i x[t, i] * W[o, i] for t < T, o in [o_begin, o_end). gemv needs T <= kGemvMaxRows.
  void (*gemv)(const float* x, int64_t ldx, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end,
               float* y, int64_t ldy);
  void (*gemm)(const float* x, int64_t ldx, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end,
               float* y, int64_t ldy, float* scratch);
  // The same with x rounded to bf16 and W in BF16 with an even number of columns, on
  // AVX512_BF16 dot products; null (both) where the level lacks them. pack_bf16_tokens rounds up
  // to kBf16TokenPanel fp32 rows (ldx apart, 2 * pairs values each) to bf16 like round_to_bf16
  // and packs them into one panel of pairs * kBf16TokenPanel floats; gemm_bf16dot reads the T
  // rows as consecutive such panels.
  void (*pack_bf16_tokens)(const float* x, int64_t ldx, int64_t rows, int64_t pairs, float* panel);
  void (*gemm_bf16dot)(const float* x_panels, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end,
                       float* y, int64_t ldy);
  void (*round_to_bf16)(const float* src, uint16_t* dst, int64_t n);
  // n floats to f16, bit for bit f32_to_f16 (NaN aside: any quiet NaN): KV cache rows.
  void (*round_to_f16)(const float* src, uint16_t* dst, int64_t n);

  // Products with Q8_0 / Q4_0 weights on 8-bit activations: quantize_row_q8 fills one row of a
  // QuantizedRows (n a multiple of kQuantBlock), bit for bit like kernels::quantize_row_q8; then
  // y[t, o] for o in [o_begin, o_end) as kernels::matmul_xwT_q8 computes it. gemv_q8 needs
  // x.rows <= kGemvMaxRows; gemm_q8 takes any number of rows and gemm_scratch_floats of scratch.
  void (*quantize_row_q8)(const float* x, int64_t n, int8_t* q, float* scale, int32_t* sum);
  void (*gemv_q8)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                  int64_t ldy);
  void (*gemm_q8)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                  int64_t ldy, float* scratch);
  // The same for Q4_K, Q5_K and Q6_K weights (matmul_kquant-inl.h), on the same QuantizedRows.
  void (*gemv_q4k)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy);
  void (*gemm_q4k)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy, float* scratch);
  void (*gemv_q5k)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy);
  void (*gemm_q5k)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy, float* scratch);
  void (*gemv_q6k)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy);
  void (*gemm_q6k)(const QuantizedRows& x, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
                   int64_t ldy, float* scratch);

  // One row each.
  void (*rmsnorm)(const float* x, const float* weight, float eps, int64_t d, float* y);
  void (*silu_glu)(const float* gate, const float* up, int64_t F, float* z);
  // Its gradient: dgate and dup of one row from dz (the oracle kernels::silu_glu_backward).
  void (*silu_glu_backward)(const float* gate, const float* up, const float* dz, int64_t F, float* dgate, float* dup);
  void (*softmax)(float* x, int64_t n);
  void (*add)(float* y, const float* b, int64_t n);
  // Rotates n_heads heads (head_stride apart) of one position by the given cos / sin tables of
  // length `half`: pairs (i, i + half).
  void (*rope)(float* x, int64_t n_heads, int64_t head_stride, int64_t half, const float* cos, const float* sin);

  void (*attention)(const AttentionBlock& block, float* scratch);  // scratch: attention_scratch_floats
  // scratch: decode_scratch_floats
  void (*decode_attention)(const DecodeAttentionBlock& block, float* scratch);

  // Training. The backward products, one block of columns of dx = dy · W or of dW += dy^T · x
  // (threading and the cutting into blocks live in backward_products.cc):
  int64_t backward_panel_cols;  // columns of one packed panel
  // C[0:M, 0:cols] = A[M, K] · B[K, col0 : col0 + cols] (assigned), cols <= kBackwardInputCols;
  // A rows lda apart, B (F32, BF16 or F16) rows ldb apart, C rows ldc apart. B is packed into
  // `scratch` (kBackwardGemmScratchFloats) a panel at a time.
  void (*backward_input_block)(const float* A, int64_t lda, int64_t M, int64_t K, const void* B, DType b_type,
                               int64_t ldb, int64_t col0, int64_t cols, float* C, int64_t ldc, float* scratch);
  // panels[p][k][j] = B[k, col0 + p * backward_panel_cols + j] for every k < K, whole panels over
  // `cols` (zero past them): the layout backward_weight_block reads.
  void (*backward_pack_rows)(const float* B, int64_t ldb, int64_t K, int64_t col0, int64_t cols, float* panels);
  // C[0:M, 0:cols] += A[K, 0:M]^T · B (accumulated) for B packed by backward_pack_rows, its first
  // panel at `panels`; cols <= kBackwardWeightCols; A rows (one k each) lda apart.
  void (*backward_weight_block)(const float* A, int64_t lda, int64_t M, int64_t K, const float* panels, int64_t cols,
                                float* C, int64_t ldc);
  // The same products on bf16 operands for bf16 training (backward_bf16dot-inl.h), on AVX512_BF16
  // dot products; null (all four) where the level lacks them. Operands are rounded to bf16 and
  // stored as pairs along the summed dimension: a 32-bit lane holds rows 2p (low half) and 2p + 1.
  // C[0:M, 0:cols] = A · W[:, col0 : col0 + cols] (assigned): A is M rows of dy rounded to bf16,
  // ceil(K / 2) pairs each (a zero after an odd K), lda pairs apart; W is BF16 [K, ldw]; scratch
  // as backward_input_block's.
  void (*backward_input_block_bf16)(const uint32_t* A, int64_t lda, int64_t M, int64_t K, const uint16_t* W,
                                    int64_t ldw, int64_t col0, int64_t cols, float* C, int64_t ldc, float* scratch);
  // x [K, col0 : col0 + cols] (K token rows, ldx apart) as whole panels of backward_panel_cols
  // columns of ceil(K / 2) token pairs ([panel][pair][column], zero past cols).
  void (*backward_pack_pair_rows)(const float* x, int64_t ldx, int64_t K, int64_t col0, int64_t cols,
                                  uint32_t* panels);
  // dy [K, col0 : col0 + cols] as token pairs, pair p of column c at out[p * ldo + c], for c up to
  // cols rounded up to 16 (zero past cols).
  void (*backward_pack_pair_columns)(const float* dy, int64_t ldy, int64_t K, int64_t col0, int64_t cols,
                                     uint32_t* out, int64_t ldo);
  // C[0:M, 0:cols] += A^T · B over K tokens: row m's pair p at A[p * lda + m]
  // (backward_pack_pair_columns), B packed by backward_pack_pair_rows (first panel at `panels`),
  // cols <= kBackwardWeightCols.
  void (*backward_weight_block_bf16)(const uint32_t* A, int64_t lda, int64_t M, int64_t K, const uint32_t* panels,
                                     int64_t cols, float* C, int64_t ldc);
  // Cross-entropy of one row of V logits against `target`, returned in double, and its gradient
  // dlogits = scale * (softmax - onehot) (kernels/cross_entropy.h); null where the level has no
  // faster kernel than the oracle.
  double (*cross_entropy_row)(const float* logits, int64_t V, int64_t target, double scale, float* dlogits);
  // The backward of causal attention for one head (attention_backward-inl.h), with
  // attention_backward_scratch(positions, head_dim) floats of scratch.
  void (*attention_backward_head)(const ops::AttentionBackwardHead& head, float* scratch);
  int64_t (*attention_backward_scratch)(int64_t positions, int64_t head_dim);

  // Machine probes for the roofline (jetmoe bench): multiply-adds with `iters` rounds of
  // independent accumulators; returns floating-point operations done (2 per multiply-add).
  double (*fma_flops)(int64_t iters);
  double (*bf16_dot_flops)(int64_t iters);  // null where the level lacks bf16 dot products
  float (*read_sum)(const float* p, int64_t n);  // reads n floats (memory bandwidth)
};

// The table of `isa`; the caller makes sure this machine runs it (runnable_isas()).
const KernelTable& kernel_table(Isa isa);
// The same after checking that this CPU runs `isa` (an Error naming both levels if not): for the
// ops, whose callers may force a level.
const KernelTable& checked_kernel_table(Isa isa);

}  // namespace jetmoe::kernels::cpu

namespace jetmoe::kernels::cpu {
// One per isa_<level>.cc; kernel_table() picks among them.
const KernelTable& scalar_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();
const KernelTable& avx512bf16_kernels();
}  // namespace jetmoe::kernels::cpu
