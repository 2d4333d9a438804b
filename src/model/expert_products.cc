#include "model/expert_products.h"

#include <algorithm>

#include "kernels/ops.h"
#include "model/row_ranges.h"

namespace jetmoe {

void gather_to_expert_order(const Routing& r, const float* in, int64_t in_stride, bool per_assignment, int64_t width,
                            float* out, ThreadPool& pool) {
  // Prefill moves megabytes here: both threads copy; decoding's few rows are not worth a wake-up.
  for_row_ranges(pool, int64_t(r.by_expert.size()), width, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t a = r.by_expert[size_t(i)];
      const float* src = in + (per_assignment ? a : a / r.top_k) * in_stride;
      std::copy(src, src + width, out + i * width);
    }
  });
}

void expert_products(const Routing& r, const float* in_e, const TensorView& W, float* out_e, ThreadPool& pool,
                     const ops::MatmulOptions& matmul) {
  const int64_t out_dim = W.shape[1], in_dim = W.shape[2];
  std::vector<ops::MatmulJob> jobs;  // one per expert with work
  for (int64_t e = 0; e < r.num_experts; ++e) {
    const int64_t first = r.offsets[size_t(e)];
    if (r.count(e) > 0)
      jobs.push_back({in_e + first * in_dim, in_dim, r.count(e), W.slice0(e), out_e + first * out_dim, out_dim});
  }
  ops::matmul_xwT_grouped(jobs, pool, matmul);
}

void expert_matmul(const Routing& r, const float* in, int64_t in_stride, bool per_assignment, const TensorView& W,
                   float* out, ThreadPool& pool, const ops::MatmulOptions& matmul, ExpertProductScratch& scratch) {
  const int64_t out_dim = W.shape[1], in_dim = W.shape[2];
  const int64_t total = int64_t(r.by_expert.size());
  float* gathered = scratch_floats(scratch.gathered, total * in_dim);
  float* produced = scratch_floats(scratch.produced, total * out_dim);
  gather_to_expert_order(r, in, in_stride, per_assignment, in_dim, gathered, pool);
  expert_products(r, gathered, W, produced, pool, matmul);
  for_row_ranges(pool, total, out_dim, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      std::copy(produced + i * out_dim, produced + (i + 1) * out_dim, out + r.by_expert[size_t(i)] * out_dim);
  });
}

void combine_gated(const Routing& r, const float* rows_e, int64_t d, const TensorView& bias, float* y,
                   ThreadPool& pool) {
  for_row_ranges(pool, r.num_tokens, r.top_k * d, [&](int64_t begin, int64_t end) {
    std::fill(y + begin * d, y + end * d, 0.0f);
    for (int64_t t = begin; t < end; ++t) {
      float* dst = y + t * d;
      for (int64_t s = 0; s < r.top_k; ++s) {
        const float g = r.gate[size_t(t * r.top_k + s)];
        const float* src = rows_e + r.position[size_t(t * r.top_k + s)] * d;
        for (int64_t i = 0; i < d; ++i) dst[i] += g * src[i];
      }
    }
    ops::add_bias(y + begin * d, end - begin, d, bias);
  });
}

}  // namespace jetmoe
