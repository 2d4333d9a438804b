// The routing's bookkeeping and the grouped expert products in expert order, against direct
// per-token evaluations written here: each token's k largest logits, softmaxed; every assignment
// found once in by_expert at its position; W[e] · x row by row; the gated sum with its bias.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "model/expert_products.h"
#include "model/router.h"

namespace jetmoe {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

struct Case {
  int64_t T, d, E, k;
};

class ExpertOrder : public ::testing::TestWithParam<Case> {};

TEST_P(ExpertOrder, RoutingListsEveryAssignmentOnceAtItsPosition) {
  const auto [T, d, E, k] = GetParam();
  const std::vector<float> h = random_values(size_t(T * d), 1), wr = random_values(size_t(E * d), 2);
  ThreadPool pool(2);
  const Routing r = route(h.data(), T, TensorView{DType::F32, {E, d}, wr.data()}, k, pool);

  ASSERT_EQ(r.position.size(), size_t(T * k));
  ASSERT_EQ(r.by_expert.size(), size_t(T * k));
  for (int64_t t = 0; t < T; ++t) {
    // The k largest logits, descending, with softmaxed gates.
    std::vector<double> logits(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e)
      logits[size_t(e)] = std::inner_product(h.begin() + t * d, h.begin() + (t + 1) * d, wr.begin() + e * d, 0.0);
    std::vector<int> ids(static_cast<size_t>(E));
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return logits[size_t(a)] > logits[size_t(b)]; });
    double denominator = 0;
    for (int64_t s = 0; s < k; ++s) denominator += std::exp(logits[size_t(ids[size_t(s)])] - logits[size_t(ids[0])]);
    for (int64_t s = 0; s < k; ++s) {
      const int64_t a = t * k + s;
      EXPECT_EQ(r.expert[size_t(a)], ids[size_t(s)]) << "token " << t << " slot " << s;
      EXPECT_NEAR(r.gate[size_t(a)], std::exp(logits[size_t(ids[size_t(s)])] - logits[size_t(ids[0])]) / denominator,
                  1e-5);
      // Its row in expert order lies in its expert's block and lists it.
      const int64_t i = r.position[size_t(a)];
      EXPECT_EQ(r.by_expert[size_t(i)], a);
      EXPECT_GE(i, r.offsets[size_t(r.expert[size_t(a)])]);
      EXPECT_LT(i, r.offsets[size_t(r.expert[size_t(a)]) + 1]);
    }
  }
  for (int64_t e = 0; e < E; ++e)  // token order inside each expert's block
    for (int64_t i = r.offsets[size_t(e)] + 1; i < r.offsets[size_t(e) + 1]; ++i)
      EXPECT_LT(r.by_expert[size_t(i - 1)], r.by_expert[size_t(i)]);
}

TEST_P(ExpertOrder, ProductsAndGatedCombineMatchAPerTokenEvaluation) {
  const auto [T, d, E, k] = GetParam();
  const int64_t out_dim = 24;
  const std::vector<float> h = random_values(size_t(T * d), 3), wr = random_values(size_t(E * d), 4);
  const std::vector<float> W = random_values(size_t(E * out_dim * d), 5), bias = random_values(size_t(out_dim), 6);
  ThreadPool pool(2);
  const Routing r = route(h.data(), T, TensorView{DType::F32, {E, d}, wr.data()}, k, pool);

  std::vector<float> h_e(size_t(T * k * d)), out_e(size_t(T * k * out_dim)), y(size_t(T * out_dim));
  gather_to_expert_order(r, h.data(), d, /*per_assignment=*/false, d, h_e.data(), pool);
  expert_products(r, h_e.data(), TensorView{DType::F32, {E, out_dim, d}, W.data()}, out_e.data(), pool, {});
  combine_gated(r, out_e.data(), out_dim, TensorView{DType::F32, {out_dim}, bias.data()}, y.data(), pool);

  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out_dim; ++o) {
      double expected = bias[size_t(o)];
      for (int64_t s = 0; s < k; ++s) {
        const int64_t a = t * k + s, e = r.expert[size_t(a)];
        const double product =
            std::inner_product(h.begin() + t * d, h.begin() + (t + 1) * d, W.begin() + (e * out_dim + o) * d, 0.0);
        EXPECT_NEAR(out_e[size_t(r.position[size_t(a)] * out_dim + o)], product, 1e-4 * (1 + std::abs(product)));
        expected += r.gate[size_t(a)] * product;
      }
      EXPECT_NEAR(y[size_t(t * out_dim + o)], expected, 1e-4 * (1 + std::abs(expected))) << "token " << t;
    }
}

// Sizes that leave experts empty (T = 1), give one expert every token (k = E) and split the pool's
// row ranges unevenly; large enough T x d to take the pool's parallel paths.
INSTANTIATE_TEST_SUITE_P(Sizes, ExpertOrder,
                         ::testing::Values(Case{1, 16, 8, 2}, Case{5, 33, 4, 4}, Case{37, 40, 8, 2},
                                           Case{300, 257, 8, 2}, Case{129, 64, 3, 1}));

}  // namespace
}  // namespace jetmoe
