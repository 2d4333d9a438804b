// The kernel API the model calls. Each op runs on the fastest kernels this CPU supports
// (kernels/cpu, chosen at run time; `isa` forces a level, for tests and comparisons) and takes
// the thread pool explicitly. Every op has a plain scalar oracle in kernels/ref with the same
// meaning; tests/unit/kernels compares the two on every level the machine runs.
#pragma once

#include <cstdint>
#include <span>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/cpu/isa.h"
#include "kernels/ref/ops.h"  // kernels::Rope: the frequency table is shared with the oracle

namespace jetmoe::ops {

using kernels::cpu::Isa;

// How activations enter products with BF16 weights.
//  F32:  exact fp32 products (the default; what the reference fixtures check at 1e-4).
//  BF16: prefill-sized products with BF16 weights (more than kernels::cpu::kGemvMaxRows rows)
//        round the activations to bf16 (nearest even) and run on AVX512_BF16 dot products,
//        twice the fp32 multiply-add rate; other CPUs round the same way and multiply in fp32,
//        so results do not depend on the CPU. These are the numerics of HF's bf16 inference
//        (error up to 2^-8 of sum |x w| per output). Decoding products are memory bound and
//        stay fp32, as do F32 / F16 weights.
// Prefill attention follows the option whatever the weights (causal_attention; a forward
// recorded for a backward keeps it fp32).
// Q8_0 / Q4_0 / Q4_K / Q5_K weights ignore the option: their products always quantize each activation row to
// 8-bit blocks of 32 (scale max|x| / 127, levels rounded half to even) and multiply in integers,
// exactly as kernels::matmul_xwT_q8 (kernels/ref/quantized_ops.h, which states the error bound);
// both decoding (memory bound: 4.5 / 8.5 bits per weight read) and prefill (int8 dot products)
// use these numerics, so a token's result does not depend on the batch it came in (up to the
// order of fp32 sums).
enum class Activations : uint8_t { F32, BF16 };

struct MatmulOptions {
  Activations activations = Activations::F32;
  Isa isa = kernels::cpu::best_isa();
};

// y[t, o] = sum_i x[t, i] * W[o, i] for t < T, o < out; W is [out, in] in F32, BF16, F16, Q8_0,
// Q4_0, Q4_K or Q5_K (quantized rows are whole blocks: in a multiple of 32, of 256 for the k-quants).
// x rows are `x_stride` floats apart, y rows `y_stride` floats apart.
void matmul_xwT(const float* x, int64_t x_stride, int64_t T, const TensorView& W, float* y, int64_t y_stride,
                ThreadPool& pool, const MatmulOptions& options = {});

// One product of a group: rows x [rows, in] against W [out, in] into y [rows, out].
struct MatmulJob {
  const float* x = nullptr;
  int64_t x_stride = 0;
  int64_t rows = 0;
  TensorView W;
  float* y = nullptr;
  int64_t y_stride = 0;
};

// Independent products in one parallel pass (the experts of a MoE layer, each with however many
// tokens the router sent it): all jobs are cut into output tiles that the threads take from one
// shared queue, so uneven jobs still keep every thread busy, with a single synchronisation.
void matmul_xwT_grouped(std::span<const MatmulJob> jobs, ThreadPool& pool, const MatmulOptions& options = {});

// y[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * w, over T rows of length d.
void rmsnorm(const float* x, const TensorView& weight, double eps, int64_t T, int64_t d, float* y,
             Isa isa = kernels::cpu::best_isa());

// Rotates `n_heads` heads of one position (head h at x + h * head_stride) by RoPE at `pos`,
// with cos / sin computed once for all heads (Rope::cos_sin), in the order of Rope::apply.
void rope(const kernels::Rope& rope, float* x, int64_t n_heads, int64_t head_stride, int64_t pos,
          Isa isa = kernels::cpu::best_isa());

// z[n, F] = silu(u[n, 0:F]) * u[n, F:2F], rows shared among the pool threads.
void silu_glu(const float* u, int64_t n, int64_t F, float* z, ThreadPool& pool, Isa isa = kernels::cpu::best_isa());

// du[n, 2F] = the gradient of silu_glu at u[n, 2F] given dz[n, F] (the oracle
// kernels::silu_glu_backward), rows shared among the pool threads.
void silu_glu_backward(const float* u, const float* dz, int64_t n, int64_t F, float* du, ThreadPool& pool,
                       Isa isa = kernels::cpu::best_isa());

// In-place softmax of n values.
void softmax(float* x, int64_t n, Isa isa = kernels::cpu::best_isa());

// Adds a [d] vector (any dtype) to every row of y [T, d].
void add_bias(float* y, int64_t T, int64_t d, const TensorView& bias, Isa isa = kernels::cpu::best_isa());

// Converts row `row` of a 2-D weight (any dtype, quantized ones dequantized) to float32.
void load_row(const TensorView& W, int64_t row, float* out);

// K and V rows of a KV cache: row p at keys + p * H*D elements of `type` (F32 or F16).
struct KvRows {
  const void* keys = nullptr;
  const void* values = nullptr;
  DType type = DType::F32;
};

// Stores n floats as one cache row of `type`: copied for F32, rounded to nearest even for F16
// (bit for bit f32_to_f16).
void store_kv_row(const float* src, void* dst, DType type, int64_t n, Isa isa = kernels::cpu::best_isa());

// Causal attention with JetMoE's shared K/V (spec §1.4, P1). q, out: [T*k, H*D], row t*k+s holds
// the H query heads of slot s of token t; kv: [start + T, H*D] post-RoPE rows of positions
// 0 .. start+T-1. Query head j of every slot attends with KV head j (the tile mapping), over
// positions 0 .. start + t. Scores are scaled by 1/sqrt(D). Never materialises more than a
// block of scores per query block, whatever T. F16 rows are widened exactly as they are read.
// Activations::BF16 (options.activations) runs prefill attention, more than kDecodeMaxRows query
// rows, on bf16 operands: queries, keys, values and the probabilities exp(score - running max)
// before normalisation are rounded to bf16 (nearest even), products are exact and sums fp32, as
// the oracle kernels::causal_attention does with bf16_products (on every CPU: AVX512_BF16 dot
// products, fp32 multiply-adds elsewhere). Decoding stays fp32: it is memory bound.
void causal_attention(const float* q, int64_t T, int64_t k, int64_t H, int64_t D, const KvRows& kv, int64_t start,
                      float* out, ThreadPool& pool, const MatmulOptions& options = {});
// The same on float32 rows.
inline void causal_attention(const float* q, int64_t T, int64_t k, int64_t H, int64_t D, const float* keys,
                             const float* values, int64_t start, float* out, ThreadPool& pool,
                             const MatmulOptions& options = {}) {
  causal_attention(q, T, k, H, D, KvRows{keys, values, DType::F32}, start, out, pool, options);
}
// Query rows up to which causal_attention decodes (one or two tokens of top-2): dot products
// straight from the cache, the positions split among the threads.
constexpr int64_t kDecodeMaxRows = 4;

}  // namespace jetmoe::ops
