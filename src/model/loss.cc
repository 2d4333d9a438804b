#include "model/loss.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/ref/backward_ops.h"

namespace jetmoe {

double next_token_nll_sum(const FloatTensor& logits, std::span<const int64_t> targets, int64_t* count) {
  JM_CHECK(logits.shape.size() == 2 && logits.shape[0] == int64_t(targets.size()), "logits ", shape_str(logits.shape),
           " vs ", targets.size(), " targets");
  const int64_t T = logits.shape[0], V = logits.shape[1];
  double total = 0.0;
  int64_t n = 0;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const int64_t target = targets[size_t(t + 1)];
    if (target < 0) continue;
    if (target >= V) fail("target id ", target, " at position ", t + 1, " is outside the vocabulary [0, ", V, ")");
    const float* row = logits.data() + t * V;
    const double mx = *std::max_element(row, row + V);
    double sum = 0.0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
    total += (mx + std::log(sum)) - double(row[target]);
    ++n;
  }
  if (count) *count = n;
  return total;
}

double next_token_nll_sum_backward(const FloatTensor& logits, std::span<const int64_t> targets, double scale,
                                   FloatTensor& dlogits, int64_t* count) {
  JM_CHECK(logits.shape.size() == 2 && logits.shape[0] == int64_t(targets.size()), "logits ", shape_str(logits.shape),
           " vs ", targets.size(), " targets");
  const int64_t T = logits.shape[0], V = logits.shape[1];
  dlogits = FloatTensor(logits.shape);
  double total = 0.0;
  int64_t n = 0;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const int64_t target = targets[size_t(t + 1)];
    if (target < 0) continue;
    if (target >= V) fail("target id ", target, " at position ", t + 1, " is outside the vocabulary [0, ", V, ")");
    total += kernels::cross_entropy_backward(logits.data() + t * V, V, target, scale, dlogits.data() + t * V);
    ++n;
  }
  if (count) *count = n;
  return total;
}

}  // namespace jetmoe
