// ops::matmul_backward_input / _weight against the scalar oracles of kernels/ref/backward_ops.h
// on every ISA level, in fp32 and in bf16 training (the oracles on bf16-rounded operands): row
// counts on both sides of the small-batch path (1, 2, 3 rows) and of the gemm path, odd widths
// and sums, one and two threads; dW accumulates onto nonzero gradients.
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
// 1100 outputs cross the bf16 input gradient's 512-row blocks of W; 301 tokens cross the
// weight gradient's 192-row blocks of dW (301 outputs) and 601 tokens (odd: a last token without
// a pair) its 512-token passes and the input gradient's 576-row blocks. 37, 5, 257 and 1100
// outputs are odd / even sums of pairs for the input gradient.
const Case kCases[] = {{1, 37, 129},  {2, 300, 77},   {3, 5, 513},    {17, 37, 129}, {17, 300, 77},
                       {64, 5, 513},  {64, 257, 96},  {130, 37, 129}, {130, 300, 77}, {7, 64, 64},
                       {5, 1100, 40}, {301, 301, 50}, {601, 20, 50}};

std::string label(const Case& c, int threads) {
  return "T " + std::to_string(c.T) + " out " + std::to_string(c.out) + " in " + std::to_string(c.in) + " threads " +
         std::to_string(threads);
}

std::vector<float> rounded_to_bf16(const std::vector<float>& v) { return test::store_as(DType::BF16, v).exact; }

// Both results are sums of the same n products (plus `base` for accumulation), in different
// orders: they may differ by twice gamma_n of the sum of magnitudes, which `scale` holds.
void expect_close(const std::vector<float>& fast, const std::vector<float>& ref, const std::vector<double>& scale,
                  int64_t n, const std::string& what) {
  ASSERT_EQ(fast.size(), ref.size());
  const double bound = 2.0 * test::gamma_n(n + 1);
  for (size_t i = 0; i < fast.size(); ++i)
    ASSERT_LE(std::fabs(double(fast[i]) - double(ref[i])), bound * scale[i] + 1e-30) << what << " at " << i;
}

// sum_o |dy[t, o] W[o, i]| for every dx element.
std::vector<double> input_scale(const Case& c, const std::vector<float>& dy, const std::vector<float>& W) {
  std::vector<double> scale(size_t(c.T * c.in), 0.0);
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t o = 0; o < c.out; ++o)
      for (int64_t i = 0; i < c.in; ++i)
        scale[size_t(t * c.in + i)] += std::fabs(double(dy[size_t(t * c.out + o)]) * W[size_t(o * c.in + i)]);
  return scale;
}

// |before| + sum_t |dy[t, o] x[t, i]| for every dW element.
std::vector<double> weight_scale(const Case& c, const std::vector<float>& dy, const std::vector<float>& x,
                                 const std::vector<float>& before) {
  std::vector<double> scale(before.size());
  for (size_t i = 0; i < before.size(); ++i) scale[i] = std::fabs(double(before[i]));
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t o = 0; o < c.out; ++o)
      for (int64_t i = 0; i < c.in; ++i)
        scale[size_t(o * c.in + i)] += std::fabs(double(dy[size_t(t * c.out + o)]) * x[size_t(t * c.in + i)]);
  return scale;
}

class BackwardProductsTest : public testing::TestWithParam<Isa> {};

TEST_P(BackwardProductsTest, InputGradientMatchesOracle) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Case& c : kCases) {
      const auto dy = test::random_floats(size_t(c.T * c.out), 1);
      const auto W = test::random_floats(size_t(c.out * c.in), 2, 0.1f);
      std::vector<float> ref(size_t(c.T * c.in)), fast(ref.size(), 7.0f);
      kernels::matmul_backward_input(dy.data(), c.T, W.data(), c.out, c.in, ref.data(), pool);
      ops::matmul_backward_input(dy.data(), c.T, TensorView{DType::F32, Shape{c.out, c.in}, W.data()}, fast.data(),
                                 pool, {.isa = GetParam()});
      expect_close(fast, ref, input_scale(c, dy, W), c.out, label(c, threads));
    }
  }
}

// bf16 training: dy rounded to bf16 against a BF16 weight, exact products, fp32 sums — the
// oracle on the rounded operands, on every level (AVX512_BF16 dot products or fp32 ones).
TEST_P(BackwardProductsTest, Bf16InputGradientIsTheOracleOnRoundedOperands) {
  int64_t differ_from_fp32 = 0;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Case& c : kCases) {
      const auto dy = test::random_floats(size_t(c.T * c.out), 1);
      const test::StoredValues W = test::store_as(DType::BF16, test::random_floats(size_t(c.out * c.in), 2, 0.1f));
      const std::vector<float> dy_bf16 = rounded_to_bf16(dy);
      std::vector<float> ref(size_t(c.T * c.in)), fp32(ref.size()), fast(ref.size(), 7.0f);
      kernels::matmul_backward_input(dy_bf16.data(), c.T, W.exact.data(), c.out, c.in, ref.data(), pool);
      kernels::matmul_backward_input(dy.data(), c.T, W.exact.data(), c.out, c.in, fp32.data(), pool);
      const TensorView view{DType::BF16, Shape{c.out, c.in}, W.bytes.data()};
      ops::matmul_backward_input(dy.data(), c.T, view, fast.data(), pool, {ops::Activations::BF16, GetParam()});
      expect_close(fast, ref, input_scale(c, dy_bf16, W.exact), c.out, label(c, threads));
      for (size_t i = 0; i < fast.size(); ++i) differ_from_fp32 += fast[i] != fp32[i];
    }
  }
  EXPECT_GT(differ_from_fp32, 0) << "bf16 mode gave the exact fp32 input gradient: is dy rounded at all?";
}

TEST_P(BackwardProductsTest, Bf16ModeKeepsF32WeightsExact) {
  ThreadPool pool(2);
  const Case c{17, 300, 77};
  const auto dy = test::random_floats(size_t(c.T * c.out), 1);
  const auto W = test::random_floats(size_t(c.out * c.in), 2, 0.1f);
  std::vector<float> f32(size_t(c.T * c.in)), bf16(f32.size());
  const TensorView view{DType::F32, Shape{c.out, c.in}, W.data()};
  ops::matmul_backward_input(dy.data(), c.T, view, f32.data(), pool, {ops::Activations::F32, GetParam()});
  ops::matmul_backward_input(dy.data(), c.T, view, bf16.data(), pool, {ops::Activations::BF16, GetParam()});
  EXPECT_EQ(f32, bf16);
}

TEST_P(BackwardProductsTest, WeightGradientAccumulatesLikeOracle) {
  for (const ops::Activations act : {ops::Activations::F32, ops::Activations::BF16}) {
    int64_t differ_from_fp32 = 0;
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      for (const Case& c : kCases) {
        const std::string what = label(c, threads) + (act == ops::Activations::BF16 ? " bf16" : "");
        const auto dy = test::random_floats(size_t(c.T * c.out), 3);
        const auto x = test::random_floats(size_t(c.T * c.in), 4);
        const auto before = test::random_floats(size_t(c.out * c.in), 5);  // earlier sequences' gradient
        // bf16 mode: the oracle on dy and x rounded to bf16.
        const bool bf16 = act == ops::Activations::BF16;
        const std::vector<float> dy_used = bf16 ? rounded_to_bf16(dy) : dy, x_used = bf16 ? rounded_to_bf16(x) : x;
        std::vector<float> ref = before, fp32 = before, fast = before;
        const std::vector<double> scale = weight_scale(c, dy_used, x_used, before);
        kernels::matmul_backward_weight(dy_used.data(), x_used.data(), c.T, c.out, c.in, ref.data(), pool);
        kernels::matmul_backward_weight(dy.data(), x.data(), c.T, c.out, c.in, fp32.data(), pool);
        ops::matmul_backward_weight(dy.data(), x.data(), c.T, c.out, c.in, fast.data(), pool, {act, GetParam()});
        expect_close(fast, ref, scale, c.T, what);
        for (size_t i = 0; i < fast.size(); ++i) differ_from_fp32 += fast[i] != fp32[i];
        // Independent of the oracle: accumulating twice adds the same product twice.
        ops::matmul_backward_weight(dy.data(), x.data(), c.T, c.out, c.in, fast.data(), pool, {act, GetParam()});
        for (size_t i = 0; i < fast.size(); ++i)
          ASSERT_NEAR(fast[i], 2.0 * ref[i] - before[i], 6.0 * test::gamma_n(c.T + 2) * scale[i] + 1e-30) << what;
      }
    }
    if (act == ops::Activations::BF16) {
      EXPECT_GT(differ_from_fp32, 0) << "bf16 mode gave the exact fp32 weight gradient: are dy and x rounded?";
    }
  }
}

TEST(BackwardProducts, EmptyProducts) {
  ThreadPool pool(2);
  for (const ops::Activations act : {ops::Activations::F32, ops::Activations::BF16}) {
    std::vector<float> dW(6, 1.0f), dx(6, 5.0f);
    ops::matmul_backward_weight(nullptr, nullptr, 0, 2, 3, dW.data(), pool, {act});  // no rows: nothing added
    EXPECT_EQ(dW, std::vector<float>(6, 1.0f));
    const std::vector<float> dy(4, 1.0f);
    const TensorView empty{DType::BF16, Shape{0, 3}, nullptr};
    ops::matmul_backward_input(dy.data(), 2, empty, dx.data(), pool, {act});  // empty sum: zeros
    EXPECT_EQ(dx, std::vector<float>(6, 0.0f));
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, BackwardProductsTest, testing::ValuesIn(kernels::cpu::runnable_isas()),
                         test::isa_label);

}  // namespace
}  // namespace jetmoe
