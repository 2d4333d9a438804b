#include "model/mixture_of_attention.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/expert_products.h"

namespace jetmoe {

Routing mixture_of_attention(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope, const float* h,
                             std::span<const AttentionSegment> segments, int64_t layer, float* y, ThreadPool& pool,
                             AttentionTape* tape, const ops::MatmulOptions& matmul) {
  const int64_t d = c.hidden_size, k = c.top_k, H = c.num_kv_heads, D = c.head_dim, HD = c.kv_proj_size();
  int64_t T = 0;
  for (const AttentionSegment& s : segments) T += s.rows;
  JM_CHECK(!tape || (segments.size() == 1 && segments[0].cache->length() == 0));
  Routing routing = route(h, T, w.attn_router, k, pool);

  // Shared K/V, computed once per token: rows 0..HD-1 of kv_proj give K, the rest V (P8).
  std::vector<float> kv(size_t(T * 2 * HD));
  ops::matmul_xwT(h, d, T, w.kv_proj, kv.data(), 2 * HD, pool, matmul);
  // Queries of the expert chosen in each slot; the k * H query heads of a token are contiguous.
  std::vector<float> q(size_t(T * k * HD));
  expert_matmul(routing, h, d, /*per_assignment=*/false, w.attn_q, q.data(), pool, matmul);

  // Per segment: K/V into its cache, RoPE at its own positions, attention over its own cache.
  std::vector<float> heads(size_t(T * k * HD));
  int64_t first = 0;  // the segment's first row in the stack
  for (const AttentionSegment& s : segments) {
    const int64_t start = s.cache->length();
    float* keys = s.cache->keys(layer);
    float* values = s.cache->values(layer);
    for (int64_t t = 0; t < s.rows; ++t) {
      const float* kv_row = kv.data() + (first + t) * 2 * HD;
      float* krow = keys + (start + t) * HD;
      std::copy(kv_row, kv_row + HD, krow);
      std::copy(kv_row + HD, kv_row + 2 * HD, values + (start + t) * HD);
      ops::rope(rope, krow, H, D, start + t);  // cache holds post-RoPE K
      ops::rope(rope, q.data() + (first + t) * k * HD, k * H, D, start + t);
    }
    ops::causal_attention(q.data() + first * k * HD, s.rows, k, H, D, keys, values, start,
                          heads.data() + first * k * HD, pool);
    first += s.rows;
  }

  // Each slot's heads go through the output projection of the same expert as its query (P3).
  std::vector<float> projected(size_t(T * k * d));
  expert_matmul(routing, heads.data(), HD, /*per_assignment=*/true, w.attn_o, projected.data(), pool, matmul);
  std::fill(y, y + T * d, 0.0f);
  combine_gated(routing, projected.data(), d, y);
  ops::add_bias(y, T, d, w.attn_bias);
  if (tape) {
    const KvCache& cache = *segments[0].cache;
    tape->queries = std::move(q);
    tape->keys.assign(cache.keys(layer), cache.keys(layer) + T * HD);
    tape->values.assign(cache.values(layer), cache.values(layer) + T * HD);
    tape->heads = std::move(heads);
    tape->projected = std::move(projected);
  }
  return routing;
}

}  // namespace jetmoe
