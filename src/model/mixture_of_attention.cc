#include "model/mixture_of_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "model/expert_products.h"

namespace jetmoe {

Routing mixture_of_attention(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope, const float* h,
                             int64_t T, KvCache& cache, int64_t layer, float* y, ThreadPool& pool,
                             AttentionTape* tape, const ops::MatmulOptions& matmul) {
  const int64_t d = c.hidden_size, k = c.top_k, H = c.num_kv_heads, D = c.head_dim, HD = c.kv_proj_size();
  const int64_t start = cache.length();
  Routing routing = route(h, T, w.attn_router, k, pool);

  // Shared K/V, computed once per token: rows 0..HD-1 of kv_proj give K, the rest V (P8).
  std::vector<float> kv(size_t(T * 2 * HD));
  ops::matmul_xwT(h, d, T, w.kv_proj, kv.data(), 2 * HD, pool, matmul);
  float* keys = cache.keys(layer);
  float* values = cache.values(layer);
  for (int64_t t = 0; t < T; ++t) {
    float* krow = keys + (start + t) * HD;
    std::copy(kv.data() + t * 2 * HD, kv.data() + t * 2 * HD + HD, krow);
    std::copy(kv.data() + t * 2 * HD + HD, kv.data() + (t + 1) * 2 * HD, values + (start + t) * HD);
    ops::rope(rope, krow, H, D, start + t);  // cache holds post-RoPE K
  }

  // Queries of the expert chosen in each slot, then RoPE on every query head.
  std::vector<float> q(size_t(T * k * HD));
  expert_matmul(routing, h, d, /*per_assignment=*/false, w.attn_q, q.data(), pool, matmul);
  // The k * H query heads of token t are contiguous and share its position.
  for (int64_t t = 0; t < T; ++t) ops::rope(rope, q.data() + t * k * HD, k * H, D, start + t);

  std::vector<float> heads(size_t(T * k * HD));
  ops::causal_attention(q.data(), T, k, H, D, keys, values, start, heads.data(), pool);

  // Each slot's heads go through the output projection of the same expert as its query (P3).
  std::vector<float> projected(size_t(T * k * d));
  expert_matmul(routing, heads.data(), HD, /*per_assignment=*/true, w.attn_o, projected.data(), pool, matmul);
  std::fill(y, y + T * d, 0.0f);
  combine_gated(routing, projected.data(), d, y);
  ops::add_bias(y, T, d, w.attn_bias);
  if (tape) {
    tape->queries = std::move(q);
    tape->keys.assign(keys + start * HD, keys + (start + T) * HD);
    tape->values.assign(values + start * HD, values + (start + T) * HD);
    tape->heads = std::move(heads);
    tape->projected = std::move(projected);
  }
  return routing;
}

}  // namespace jetmoe
