#include "model/expert_products.h"

#include "kernels/ref/ops.h"

namespace jetmoe {

void expert_matmul(const Routing& r, const float* in, int64_t in_stride, bool per_assignment, const TensorView& W,
                   float* out, ThreadPool& pool) {
  const int64_t out_dim = W.shape[1], in_dim = W.shape[2];
  std::vector<float> gathered, produced;
  for (int64_t e = 0; e < r.num_experts; ++e) {
    const int64_t n = r.count(e);
    if (n == 0) continue;
    const int64_t* assignments = r.by_expert.data() + r.offsets[size_t(e)];
    gathered.resize(size_t(n * in_dim));
    produced.resize(size_t(n * out_dim));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t a = assignments[i];
      const float* src = in + (per_assignment ? a : a / r.top_k) * in_stride;
      std::copy(src, src + in_dim, gathered.data() + i * in_dim);
    }
    kernels::matmul_xwT(gathered.data(), in_dim, n, W.slice0(e), produced.data(), out_dim, pool);
    for (int64_t i = 0; i < n; ++i)
      std::copy(produced.data() + i * out_dim, produced.data() + (i + 1) * out_dim, out + assignments[i] * out_dim);
  }
}

void combine_gated(const Routing& r, const float* rows, int64_t d, float* y) {
  for (int64_t t = 0; t < r.num_tokens; ++t) {
    float* dst = y + t * d;
    for (int64_t s = 0; s < r.top_k; ++s) {
      const float g = r.gate[size_t(t * r.top_k + s)];
      const float* src = rows + (t * r.top_k + s) * d;
      for (int64_t i = 0; i < d; ++i) dst[i] += g * src[i];
    }
  }
}

}  // namespace jetmoe
