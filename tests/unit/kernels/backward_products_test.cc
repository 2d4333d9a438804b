// ops::matmul_backward_input / _weight against the scalar oracles of kernels/ref/backward_ops.h
// on every ISA level: row counts on both sides of the small-batch path (1, 2, 3 rows) and of the
// gemm path, odd widths, one and two threads; dW accumulates onto nonzero gradients.
#include "kernels/backward_products.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.h"
#include "kernels/ref/backward_ops.h"

namespace jetmoe {
namespace {

using test::Isa;

struct Case {
  int64_t T, out, in;
};
const Case kCases[] = {{1, 37, 129},  {2, 300, 77},  {3, 5, 513},   {17, 37, 129}, {17, 300, 77},
                       {64, 5, 513},  {64, 257, 96}, {130, 37, 129}, {130, 300, 77}, {7, 64, 64}};

// Both results are sums of the same n products (plus `base` for accumulation), in different
// orders: they may differ by twice gamma_n of the sum of magnitudes, which `scale` holds.
void expect_close(const std::vector<float>& fast, const std::vector<float>& ref, const std::vector<double>& scale,
                  int64_t n, const std::string& what) {
  ASSERT_EQ(fast.size(), ref.size());
  const double bound = 2.0 * test::gamma_n(n + 1);
  for (size_t i = 0; i < fast.size(); ++i)
    ASSERT_LE(std::fabs(double(fast[i]) - double(ref[i])), bound * scale[i] + 1e-30) << what << " at " << i;
}

class BackwardProductsTest : public testing::TestWithParam<Isa> {};

TEST_P(BackwardProductsTest, InputGradientMatchesOracle) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Case& c : kCases) {
      const std::string what = "T " + std::to_string(c.T) + " out " + std::to_string(c.out) + " in " +
                               std::to_string(c.in) + " threads " + std::to_string(threads);
      const auto dy = test::random_floats(size_t(c.T * c.out), 1);
      const auto W = test::random_floats(size_t(c.out * c.in), 2, 0.1f);
      std::vector<float> ref(size_t(c.T * c.in)), fast(ref.size(), 7.0f), fast_t(ref.size(), 7.0f);
      std::vector<double> scale(ref.size(), 0.0);
      for (int64_t t = 0; t < c.T; ++t)
        for (int64_t i = 0; i < c.in; ++i)
          for (int64_t o = 0; o < c.out; ++o)
            scale[size_t(t * c.in + i)] += std::fabs(double(dy[size_t(t * c.out + o)]) * W[size_t(o * c.in + i)]);

      kernels::matmul_backward_input(dy.data(), c.T, W.data(), c.out, c.in, ref.data(), pool);
      ops::matmul_backward_input(dy.data(), c.T, W.data(), c.out, c.in, fast.data(), pool, GetParam());
      expect_close(fast, ref, scale, c.out, what);
      const ops::TransposedWeight Wt(W.data(), c.out, c.in, pool);
      ops::matmul_backward_input(dy.data(), c.T, Wt, fast_t.data(), pool, GetParam());
      expect_close(fast_t, ref, scale, c.out, what + " (transposed weight)");
    }
  }
}

TEST_P(BackwardProductsTest, WeightGradientAccumulatesLikeOracle) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Case& c : kCases) {
      const std::string what = "T " + std::to_string(c.T) + " out " + std::to_string(c.out) + " in " +
                               std::to_string(c.in) + " threads " + std::to_string(threads);
      const auto dy = test::random_floats(size_t(c.T * c.out), 3);
      const auto x = test::random_floats(size_t(c.T * c.in), 4);
      const auto before = test::random_floats(size_t(c.out * c.in), 5);  // earlier sequences' gradient
      std::vector<float> ref = before, fast = before;
      std::vector<double> scale(ref.size());
      for (int64_t o = 0; o < c.out; ++o)
        for (int64_t i = 0; i < c.in; ++i) {
          double s = std::fabs(double(before[size_t(o * c.in + i)]));
          for (int64_t t = 0; t < c.T; ++t)
            s += std::fabs(double(dy[size_t(t * c.out + o)]) * x[size_t(t * c.in + i)]);
          scale[size_t(o * c.in + i)] = s;
        }

      kernels::matmul_backward_weight(dy.data(), x.data(), c.T, c.out, c.in, ref.data(), pool);
      ops::matmul_backward_weight(dy.data(), x.data(), c.T, c.out, c.in, fast.data(), pool, GetParam());
      expect_close(fast, ref, scale, c.T, what);
      // Independent of the oracle: accumulating twice adds the same product twice.
      ops::matmul_backward_weight(dy.data(), x.data(), c.T, c.out, c.in, fast.data(), pool, GetParam());
      for (size_t i = 0; i < fast.size(); ++i)
        ASSERT_NEAR(fast[i], 2.0 * ref[i] - before[i], 6.0 * test::gamma_n(c.T + 2) * scale[i] + 1e-30) << what;
    }
  }
}

TEST(BackwardProducts, TransposeMovesEveryElement) {
  ThreadPool pool(2);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {33, 65}, {100, 3}, {3, 100}, {64, 64}}) {
    const auto a = test::random_floats(size_t(rows * cols), 6);
    std::vector<float> at(a.size(), -1.0f);
    ops::transpose(a.data(), rows, cols, at.data(), pool);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(at[size_t(c * rows + r)], a[size_t(r * cols + c)]);
  }
}

TEST(BackwardProducts, EmptyProducts) {
  ThreadPool pool(2);
  std::vector<float> dW(6, 1.0f), dx(6, 5.0f);
  ops::matmul_backward_weight(nullptr, nullptr, 0, 2, 3, dW.data(), pool);  // no rows: nothing added
  EXPECT_EQ(dW, std::vector<float>(6, 1.0f));
  const std::vector<float> dy(4, 1.0f);
  ops::matmul_backward_input(dy.data(), 2, nullptr, 0, 3, dx.data(), pool);  // empty sum: zeros
  EXPECT_EQ(dx, std::vector<float>(6, 0.0f));
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, BackwardProductsTest, testing::ValuesIn(kernels::cpu::runnable_isas()),
                         test::isa_label);

}  // namespace
}  // namespace jetmoe
