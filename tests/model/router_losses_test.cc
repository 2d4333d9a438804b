// The auxiliary router losses of spec §2.3 against a direct evaluation of the formulas written
// here, and their gradient against double-precision finite differences of that evaluation.
#include "model/router_losses.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

namespace jetmoe {
namespace {

struct Router {
  int64_t N, E, k;
  std::vector<float> logits;     // [N, E]
  std::vector<int32_t> experts;  // [N, k], the k largest logits of each token
};

Router random_router(int64_t N, int64_t E, int64_t k, uint32_t seed) {
  Router r{N, E, k, std::vector<float>(size_t(N * E)), std::vector<int32_t>(size_t(N * k))};
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  for (float& x : r.logits) x = dist(gen);
  for (int64_t t = 0; t < N; ++t) {
    std::vector<int32_t> ids(static_cast<size_t>(E));
    std::iota(ids.begin(), ids.end(), 0);
    const float* row = r.logits.data() + t * E;
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    std::copy(ids.begin(), ids.begin() + k, r.experts.begin() + t * k);
  }
  return r;
}

// The formulas of spec §2.3, evaluated directly in double for logits x (f from the fixed routing).
struct Direct {
  double balance, z;
  std::vector<double> f;
};
Direct direct(const Router& r, const std::vector<double>& x) {
  Direct out{0.0, 0.0, std::vector<double>(size_t(r.E), 0.0)};
  for (int32_t e : r.experts) out.f[size_t(e)] += 1.0 / double(r.N * r.k);
  std::vector<double> P(size_t(r.E), 0.0);
  for (int64_t t = 0; t < r.N; ++t) {
    double sum = 0.0;
    for (int64_t j = 0; j < r.E; ++j) sum += std::exp(x[size_t(t * r.E + j)]);
    for (int64_t j = 0; j < r.E; ++j) P[size_t(j)] += std::exp(x[size_t(t * r.E + j)]) / sum / double(r.N);
    out.z += std::log(sum) * std::log(sum) / double(r.N);
  }
  for (int64_t i = 0; i < r.E; ++i) out.balance += double(r.E) * out.f[size_t(i)] * P[size_t(i)];
  return out;
}

TEST(RouterAuxLoss, MatchesTheFormulas) {
  for (auto [N, E, k] : {std::tuple<int64_t, int64_t, int64_t>{24, 8, 2}, {13, 4, 1}, {7, 3, 3}}) {
    const Router r = random_router(N, E, k, uint32_t(N * 100 + E));
    const RouterAuxLoss got = router_aux_loss(r.logits.data(), r.experts.data(), N, E, k, 0.01, 0.001, nullptr);
    const Direct want = direct(r, std::vector<double>(r.logits.begin(), r.logits.end()));
    // Both in double from the same float logits: only summation order differs (~1e-15).
    EXPECT_NEAR(got.load_balance, want.balance, 1e-12) << "E=" << E;
    EXPECT_NEAR(got.z_loss, want.z, 1e-12) << "E=" << E;
    ASSERT_EQ(got.fraction.size(), size_t(E));
    for (int64_t i = 0; i < E; ++i) EXPECT_NEAR(got.fraction[size_t(i)], want.f[size_t(i)], 1e-15);
  }
}

TEST(RouterAuxLoss, KnownValues) {
  // Equal logits: P is uniform, so L_b = E * sum_i f_i / E = 1 for any routing, and
  // L_z = (log E + c)^2 for logits all equal to c.
  const int64_t N = 6, E = 4, k = 2;
  const std::vector<float> logits(size_t(N * E), 0.5f);
  const std::vector<int32_t> experts = {0, 1, 0, 1, 0, 1, 0, 2, 0, 3, 0, 1};
  const RouterAuxLoss r = router_aux_loss(logits.data(), experts.data(), N, E, k, 0.01, 0.001, nullptr);
  EXPECT_NEAR(r.load_balance, 1.0, 1e-12);
  EXPECT_NEAR(r.z_loss, std::pow(std::log(4.0) + 0.5, 2), 1e-12);
  EXPECT_NEAR(r.fraction[0], 6.0 / 12.0, 1e-15);
  EXPECT_NEAR(r.fraction[1], 4.0 / 12.0, 1e-15);

  // All tokens on one expert (top-1) with a dominant logit: L_b -> E * P_0 -> E.
  const std::vector<float> peaked = {30.0f, 0.0f, 0.0f, 0.0f, 30.0f, 0.0f, 0.0f, 0.0f};
  const std::vector<int32_t> first = {0, 0};
  const RouterAuxLoss c = router_aux_loss(peaked.data(), first.data(), 2, 4, 1, 0.01, 0.001, nullptr);
  EXPECT_NEAR(c.load_balance, 4.0, 1e-11);
}

// d(aux_coef * L_b + z_coef * L_z)/dx against central differences of the direct formulas in
// double (f held fixed: it is a count). Step 1e-5: truncation and rounding ~1e-11; the gradient
// is written as float32, so the tolerance is float rounding of values <= ~0.1: 1e-8 + 1e-6 rel.
TEST(RouterAuxLoss, GradientMatchesFiniteDifferences) {
  for (auto [N, E, k] : {std::tuple<int64_t, int64_t, int64_t>{10, 8, 2}, {9, 4, 1}, {5, 3, 3}}) {
    const Router r = random_router(N, E, k, uint32_t(7 * N + E));
    const double alpha = 0.3, beta = 0.05;
    std::vector<float> grad(size_t(N * E), 99.0f);
    router_aux_loss(r.logits.data(), r.experts.data(), N, E, k, alpha, beta, grad.data());
    std::vector<double> x(r.logits.begin(), r.logits.end());
    for (size_t i = 0; i < x.size(); ++i) {
      const double keep = x[i], h = 1e-5;
      x[i] = keep + h;
      const Direct up = direct(r, x);
      x[i] = keep - h;
      const Direct down = direct(r, x);
      x[i] = keep;
      const double want = (alpha * (up.balance - down.balance) + beta * (up.z - down.z)) / (2 * h);
      EXPECT_NEAR(grad[i], want, 1e-8 + 1e-6 * std::fabs(want)) << "E=" << E << " k=" << k << " [" << i << "]";
    }
  }
}

}  // namespace
}  // namespace jetmoe
