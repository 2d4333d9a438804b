#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/ops.h"

namespace jetmoe {

Routing route(const float* h, int64_t T, const TensorView& router_weight, int64_t top_k, ThreadPool& pool) {
  const int64_t E = router_weight.shape[0], d = router_weight.shape[1];
  Routing r;
  r.num_tokens = T;
  r.num_experts = E;
  r.top_k = top_k;
  r.logits.resize(size_t(T * E));
  ops::matmul_xwT(h, d, T, router_weight, r.logits.data(), E, pool);

  r.expert.resize(size_t(T * top_k));
  r.gate.resize(size_t(T * top_k));
  std::vector<int32_t> ids(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* row = r.logits.data() + t * E;
    std::iota(ids.begin(), ids.end(), 0);
    // Descending logit; equal logits keep the lower expert id first.
    std::partial_sort(ids.begin(), ids.begin() + top_k, ids.end(),
                      [row](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    float* gates = r.gate.data() + t * top_k;
    for (int64_t s = 0; s < top_k; ++s) {
      r.expert[size_t(t * top_k + s)] = ids[size_t(s)];
      gates[s] = row[ids[size_t(s)]];
    }
    ops::softmax(gates, top_k);
  }

  // Counting sort of assignments by expert.
  r.offsets.assign(size_t(E + 1), 0);
  for (int32_t e : r.expert) ++r.offsets[size_t(e) + 1];
  for (int64_t e = 0; e < E; ++e) r.offsets[size_t(e + 1)] += r.offsets[size_t(e)];
  r.by_expert.resize(r.expert.size());
  std::vector<int64_t> cursor(r.offsets.begin(), r.offsets.end() - 1);
  r.position.resize(r.expert.size());
  for (int64_t a = 0; a < T * top_k; ++a) {
    const int64_t i = cursor[size_t(r.expert[size_t(a)])]++;
    r.by_expert[size_t(i)] = a;
    r.position[size_t(a)] = i;
  }
  return r;
}

}  // namespace jetmoe
