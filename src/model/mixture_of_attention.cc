#include "model/mixture_of_attention.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/expert_products.h"
#include "model/row_ranges.h"

namespace jetmoe {

Routing mixture_of_attention(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope, const float* h,
                             std::span<const AttentionSegment> segments, int64_t layer, float* y, ThreadPool& pool,
                             ForwardScratch& scratch, AttentionTape* tape, const ops::MatmulOptions& matmul) {
  const int64_t d = c.hidden_size, k = c.top_k, H = c.num_kv_heads, D = c.head_dim, HD = c.kv_proj_size();
  int64_t T = 0;
  for (const AttentionSegment& s : segments) T += s.rows;
  JM_CHECK(!tape || (segments.size() == 1 && segments[0].cache->length() == 0));
  Routing routing = route(h, T, w.attn_router, k, pool);

  // Shared K/V, computed once per token: rows 0..HD-1 of kv_proj give K, the rest V (P8).
  float* kv = scratch_floats(scratch.kv, T * 2 * HD);
  ops::matmul_xwT(h, d, T, w.kv_proj, scratch.kv.data(), 2 * HD, pool, matmul);
  // Queries of the expert chosen in each slot; the k * H query heads of a token are contiguous.
  float* q = scratch_floats(scratch.q, T * k * HD);
  expert_matmul(routing, h, d, /*per_assignment=*/false, w.attn_q, q, pool, matmul, scratch.experts);

  // Per segment: RoPE at its own positions, K/V into its cache (post-RoPE K, in the cache's
  // type), attention over its own cache.
  float* heads = scratch_floats(scratch.heads, T * k * HD);
  // bf16 products speed up prefill attention for inference; a recorded forward keeps it exact,
  // so the fp32 attention backward differentiates the function that ran.
  ops::MatmulOptions attention = matmul;
  if (tape) attention.activations = ops::Activations::F32;
  int64_t first = 0;  // the segment's first row in the stack
  for (const AttentionSegment& s : segments) {
    const int64_t start = s.cache->length();
    for_row_ranges(pool, s.rows, (k + 3) * HD, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        float* kv_row = kv + (first + t) * 2 * HD;
        ops::rope(rope, kv_row, H, D, start + t);
        s.cache->store(layer, start + t, kv_row, kv_row + HD);
        ops::rope(rope, q + (first + t) * k * HD, k * H, D, start + t);
      }
    });
    ops::causal_attention(q + first * k * HD, s.rows, k, H, D, s.cache->rows(layer), start, heads + first * k * HD,
                          pool, attention);
    first += s.rows;
  }

  // Each slot's heads go through the output projection of the same expert as its query (P3).
  // Their products stay in expert order for the gated combine.
  float* heads_e = scratch_floats(scratch.experts.gathered, T * k * HD);
  gather_to_expert_order(routing, heads, HD, /*per_assignment=*/true, HD, heads_e, pool);
  float* projected = scratch_floats(scratch.projected, T * k * d);
  expert_products(routing, heads_e, w.attn_o, projected, pool, matmul);
  combine_gated(routing, projected, d, w.attn_bias, y, pool);
  if (tape) {
    const KvCache& cache = *segments[0].cache;
    tape->queries = std::move(scratch.q);
    tape->keys.assign(cache.f32_keys(layer), cache.f32_keys(layer) + T * HD);
    tape->values.assign(cache.f32_values(layer), cache.f32_values(layer) + T * HD);
    tape->heads = std::move(scratch.heads);
    tape->projected = std::move(scratch.projected);
  }
  return routing;
}

}  // namespace jetmoe
