#include "model/loss.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace jetmoe {
namespace {

// targets holds T entries (HF's labels: the last position has no target) or T + 1 (the next
// token after the window is known, as in packed training data).
void check_targets(const FloatTensor& logits, std::span<const int64_t> targets) {
  JM_CHECK(logits.shape.size() == 2, "logits ", shape_str(logits.shape));
  const int64_t T = logits.shape[0], n = int64_t(targets.size());
  if (n != T && n != T + 1) fail("cross-entropy: ", T, " positions of logits but ", n, " targets (expected ", T, " or ", T + 1, ")");
}

}  // namespace

double next_token_nll_sum(const FloatTensor& logits, std::span<const int64_t> targets, int64_t* count) {
  check_targets(logits, targets);
  const int64_t V = logits.shape[1];
  double total = 0.0;
  int64_t n = 0;
  for (int64_t t = 0; t + 1 < int64_t(targets.size()); ++t) {
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

}  // namespace jetmoe
