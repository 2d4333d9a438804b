#include "model/mixture_of_attention.h"

#include <algorithm>
#include <cmath>

#include "model/expert_products.h"

namespace jetmoe {
namespace {

// Causal attention of every query head against the cached K/V.
// q, out: [T*k, H*D] per assignment (slot s of token t holds query heads s*H .. s*H+H-1);
// query head j of any slot reads KV head j (the tile mapping, P1).
void attend(const float* q, int64_t T, int64_t k, int64_t H, int64_t D, const float* keys, const float* values,
            int64_t start, float* out, ThreadPool& pool) {
  const int64_t HD = H * D;
  const float scale = 1.0f / std::sqrt(float(D));
  pool.parallel_for(T * k * H, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(size_t(start + T));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t a = task / H, j = task % H, t = a / k;
      const int64_t n_keys = start + t + 1;  // causal: positions 0 .. start + t
      const float* qh = q + a * HD + j * D;
      for (int64_t p = 0; p < n_keys; ++p) {
        const float* kh = keys + p * HD + j * D;
        float s = 0.0f;
        for (int64_t i = 0; i < D; ++i) s += qh[i] * kh[i];
        scores[size_t(p)] = s * scale;
      }
      kernels::softmax(scores.data(), n_keys);
      float* oh = out + a * HD + j * D;
      std::fill(oh, oh + D, 0.0f);
      for (int64_t p = 0; p < n_keys; ++p) {
        const float* vh = values + p * HD + j * D;
        const float wgt = scores[size_t(p)];
        for (int64_t i = 0; i < D; ++i) oh[i] += wgt * vh[i];
      }
    }
  });
}

}  // namespace

Routing mixture_of_attention(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope, const float* h,
                             int64_t T, KvCache& cache, int64_t layer, float* y, ThreadPool& pool,
                             AttentionTape* tape) {
  const int64_t d = c.hidden_size, k = c.top_k, H = c.num_kv_heads, D = c.head_dim, HD = c.kv_proj_size();
  const int64_t start = cache.length();
  Routing routing = route(h, T, w.attn_router, k, pool);

  // Shared K/V, computed once per token: rows 0..HD-1 of kv_proj give K, the rest V (P8).
  std::vector<float> kv(size_t(T * 2 * HD));
  kernels::matmul_xwT(h, d, T, w.kv_proj, kv.data(), 2 * HD, pool);
  float* keys = cache.keys(layer);
  float* values = cache.values(layer);
  for (int64_t t = 0; t < T; ++t) {
    float* krow = keys + (start + t) * HD;
    std::copy(kv.data() + t * 2 * HD, kv.data() + t * 2 * HD + HD, krow);
    std::copy(kv.data() + t * 2 * HD + HD, kv.data() + (t + 1) * 2 * HD, values + (start + t) * HD);
    for (int64_t j = 0; j < H; ++j) rope.apply(krow + j * D, start + t);  // cache holds post-RoPE K
  }

  // Queries of the expert chosen in each slot, then RoPE on every query head.
  std::vector<float> q(size_t(T * k * HD));
  expert_matmul(routing, h, d, /*per_assignment=*/false, w.attn_q, q.data(), pool);
  for (int64_t a = 0; a < T * k; ++a)
    for (int64_t j = 0; j < H; ++j) rope.apply(q.data() + a * HD + j * D, start + a / k);

  std::vector<float> heads(size_t(T * k * HD));
  attend(q.data(), T, k, H, D, keys, values, start, heads.data(), pool);

  // Each slot's heads go through the output projection of the same expert as its query (P3).
  std::vector<float> projected(size_t(T * k * d));
  expert_matmul(routing, heads.data(), HD, /*per_assignment=*/true, w.attn_o, projected.data(), pool);
  std::fill(y, y + T * d, 0.0f);
  combine_gated(routing, projected.data(), d, y);
  kernels::add_bias(y, T, d, w.attn_bias);
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
