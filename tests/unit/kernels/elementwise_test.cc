// The row kernels (RMSNorm, RoPE, SiLU-GLU, softmax, bias, KV cache rows) of ops.h against their oracles in
// kernels/ref on every ISA level, over lengths with every kind of vector tail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/ops.h"
#include "kernels/ref/backward_ops.h"
#include "kernels/ref/ops.h"
#include "kernel_test_util.h"

namespace jetmoe {
namespace {

using test::Isa;

const int64_t kLengths[] = {1, 2, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257};

// |got - want| <= rel * |want| + abs, element by element.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(double(got[i]) - want[i]), rel * std::fabs(double(want[i])) + abs)
        << what << " at " << i << ": " << got[i] << " vs " << want[i];
}

class ElementwiseTest : public testing::TestWithParam<Isa> {};

TEST_P(ElementwiseTest, RmsNorm) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (int64_t d : kLengths) {
      const int64_t T = 3;
      const std::vector<float> x = test::random_floats(size_t(T * d), uint32_t(d), 3.0f);
      const test::StoredValues w = test::store_as(dtype, test::random_floats(size_t(d), uint32_t(d + 1)));
      const TensorView wv{dtype, {d}, w.bytes.data()};
      std::vector<float> got(x.size()), want(x.size());
      ops::rmsnorm(x.data(), wv, 1e-6, T, d, got.data(), GetParam());
      kernels::rmsnorm(x.data(), wv, 1e-6, T, d, want.data());
      // Only the sum of squares is reordered (gamma_d relative), then sqrt and two products.
      expect_close(got, want, 4.0 * test::gamma_n(d) + 8 * test::kU, 0.0, str_cat("rmsnorm d=", d));
    }
}

TEST_P(ElementwiseTest, RopeRotatesEveryHeadLikeApply) {
  for (int64_t half : {1, 4, 8, 9, 16, 33, 64}) {
    const int64_t D = 2 * half, heads = 3, stride = D + 5;
    const kernels::Rope rope(D, 10000.0);
    for (int64_t pos : {0, 1, 17, 4095}) {
      std::vector<float> got = test::random_floats(size_t(heads * stride), uint32_t(half + pos));
      std::vector<float> want = got;
      ops::rope(rope, got.data(), heads, stride, pos, GetParam());
      for (int64_t h = 0; h < heads; ++h) rope.apply(want.data() + h * stride, pos);
      // Same cos/sin; a contracted multiply-add may round once less.
      expect_close(got, want, 4 * test::kU, 4 * test::kU, str_cat("rope half=", half, " pos=", pos));
    }
  }
}

TEST_P(ElementwiseTest, SiluGlu) {
  for (int64_t F : kLengths) {
    const int64_t n = 2;
    std::vector<float> u = test::random_floats(size_t(n * 2 * F), uint32_t(F), 4.0f);
    u[0] = -100.0f;  // e^100 overflows inside the sigmoid: silu must still be -0
    if (F > 1) u[1] = 90.0f;
    std::vector<float> got(size_t(n * F)), want(size_t(n * F));
    ThreadPool pool(2);
    ops::silu_glu(u.data(), n, F, got.data(), pool, GetParam());
    kernels::silu_glu(u.data(), n, F, want.data());
    // exp within 2 ulp, then one add, one divide and one product.
    expect_close(got, want, 8 * test::kU, 1e-30, str_cat("silu_glu F=", F));
  }
}

TEST_P(ElementwiseTest, SiluGluBackward) {
  for (int64_t F : kLengths) {
    const int64_t n = 3;
    std::vector<float> u = test::random_floats(size_t(n * 2 * F), uint32_t(F + 3), 4.0f);
    const std::vector<float> dz = test::random_floats(size_t(n * F), uint32_t(F + 4));
    u[0] = -100.0f;  // e^100 overflows inside the sigmoid: both gradients must still be finite
    if (F > 1) u[1] = 90.0f;
    std::vector<float> got(u.size(), 7.0f);
    ThreadPool pool(2);
    ops::silu_glu_backward(u.data(), dz.data(), n, F, got.data(), pool, GetParam());
    const std::vector<double> ud(u.begin(), u.end()), dzd(dz.begin(), dz.end());
    std::vector<double> want(u.size());
    kernels::silu_glu_backward(ud.data(), dzd.data(), n, F, want.data());
    // The sigmoid s is within a few ulp (exp, add, divide). 1 + g (1 - s) cancels for negative g,
    // so dgate's error is bounded by the size of its terms, |dz up s| (1 + |g|), not by its value.
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < F; ++i) {
        const double g = ud[size_t(r * 2 * F + i)], up = ud[size_t(r * 2 * F + F + i)], grad = dzd[size_t(r * F + i)];
        const double sig = 1.0 / (1.0 + std::exp(-g));
        const size_t at_g = size_t(r * 2 * F + i), at_up = at_g + size_t(F);
        const std::string what = str_cat("silu_glu_backward F=", F, " row ", r, " i ", i);
        EXPECT_LE(std::fabs(got[at_up] - want[at_up]), 16 * test::kU * std::fabs(grad * g * sig) + 1e-30) << what;
        EXPECT_LE(std::fabs(got[at_g] - want[at_g]), 16 * test::kU * std::fabs(grad * up * sig) * (1 + std::fabs(g)) + 1e-30)
            << what;
      }
  }
}

TEST_P(ElementwiseTest, Softmax) {
  for (int64_t n : kLengths) {
    std::vector<float> x = test::random_floats(size_t(n), uint32_t(n), 5.0f);
    if (n > 2) {
      x[1] = -std::numeric_limits<float>::infinity();  // masked entry: probability 0
      x[2] = 80.0f;                                    // e^80 alone would be near overflow
    }
    std::vector<float> got = x, want = x;
    ops::softmax(got.data(), n, GetParam());
    kernels::softmax(want.data(), n);
    expect_close(got, want, 8 * test::kU + 2 * test::gamma_n(n), 1e-38, str_cat("softmax n=", n));
  }
}

TEST_P(ElementwiseTest, AddBias) {
  for (DType dtype : {DType::F32, DType::F16})
    for (int64_t d : kLengths) {
      const int64_t T = 2;
      const test::StoredValues b = test::store_as(dtype, test::random_floats(size_t(d), uint32_t(d)));
      const TensorView bv{dtype, {d}, b.bytes.data()};
      std::vector<float> got = test::random_floats(size_t(T * d), uint32_t(d + 9)), want = got;
      ops::add_bias(got.data(), T, d, bv, GetParam());
      kernels::add_bias(want.data(), T, d, bv);
      expect_close(got, want, 0.0, 0.0, str_cat("add_bias d=", d));  // one rounding each: exact
    }
}

// F16 cache rows: bit for bit f32_to_f16 (round to nearest even) on values that test every
// branch of the rounding: ties either way, the subnormal range, the overflow edge, signed zeros
// and infinities; NaN stays NaN. F32 rows are copied.
TEST_P(ElementwiseTest, StoreKvRow) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special = {0.0f, -0.0f, 1.0f, -2.5f, inf, -inf, 65504.0f, 65519.0f, 65520.0f, -70000.0f,
                                6.1e-5f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-9f, -3e-6f};
  // 1 + (odd or even ulp) + exactly half an f16 ulp: the tie goes to the even neighbour.
  for (uint32_t m : {0u, 1u, 2u, 3u}) {
    uint32_t bits = 0x3f800000u | (m << 13) | (1u << 12);
    float tie;
    std::memcpy(&tie, &bits, 4);
    special.push_back(tie);
    special.push_back(-tie);
  }
  for (int64_t n : kLengths) {
    std::vector<float> src = test::random_floats(size_t(n), uint32_t(n * 3), 4.0f);
    for (size_t i = 0; i < src.size(); ++i) src[i] = i % 3 == 0 ? special[(i / 3) % special.size()] : src[i];
    std::vector<uint16_t> got(size_t(n) + 1, 0xabcd);  // one guard element past the row
    ops::store_kv_row(src.data(), got.data(), DType::F16, n, GetParam());
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[size_t(i)], f32_to_f16(src[size_t(i)])) << "n=" << n << " at " << i << ": " << src[size_t(i)];
    EXPECT_EQ(got[size_t(n)], 0xabcd) << "wrote past the row, n=" << n;

    std::vector<float> copied(static_cast<size_t>(n));
    ops::store_kv_row(src.data(), copied.data(), DType::F32, n, GetParam());
    EXPECT_EQ(std::memcmp(copied.data(), src.data(), size_t(n) * 4), 0) << "n=" << n;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  uint16_t h = 0;
  ops::store_kv_row(&nan, &h, DType::F16, 1, GetParam());
  EXPECT_TRUE(std::isnan(f16_to_f32(h)));
  EXPECT_THROW(ops::store_kv_row(special.data(), &h, DType::BF16, 1, GetParam()), Error);
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, ElementwiseTest, testing::ValuesIn(kernels::cpu::runnable_isas()),
                         test::isa_label);

}  // namespace
}  // namespace jetmoe
