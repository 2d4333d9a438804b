// ops::cross_entropy_backward against the scalar oracle kernels::cross_entropy_backward on every
// ISA level: vocabulary sizes with and without a partial vector, mild and extreme logit spreads
// (terms that underflow to zero), the target anywhere; a NaN logit still gives a NaN loss.
#include "kernels/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.h"
#include "kernels/ref/backward_ops.h"

namespace jetmoe {
namespace {

using test::Isa;

class CrossEntropyTest : public testing::TestWithParam<Isa> {};

TEST_P(CrossEntropyTest, MatchesTheOracle) {
  for (int64_t V : {1, 7, 16, 100, 1001, 32000})
    for (float spread : {1.0f, 30.0f, 400.0f}) {
      const auto logits = test::random_floats(size_t(V), uint32_t(V), spread);
      for (int64_t target : {int64_t(0), V / 2, V - 1}) {
        const double scale = 1.0 / 37.0;
        std::vector<float> want(static_cast<size_t>(V)), got(static_cast<size_t>(V), 5.0f);
        const double want_loss = kernels::cross_entropy_backward(logits.data(), V, target, scale, want.data());
        const double got_loss = ops::cross_entropy_backward(logits.data(), V, target, scale, got.data(), GetParam());
        const std::string what = "V " + std::to_string(V) + " spread " + std::to_string(spread) + " target " +
                                 std::to_string(target);
        // Both losses are double: exp within 2 ulps and sums in another order move the result by
        // ~1e-16 of the largest term; 1e-13 of the loss (plus its log-sum part) leaves room.
        EXPECT_NEAR(got_loss, want_loss, 1e-13 * (std::fabs(want_loss) + 1.0)) << what;
        // Gradients: the same fp32 value of scale * p up to its last bit, then minus scale at the
        // target (the rounding of p's bit is carried through that subtraction).
        for (int64_t v = 0; v < V; ++v) {
          const double ulp = std::ldexp(1.0, -23) * (std::fabs(double(want[size_t(v)])) + (v == target ? scale : 0.0));
          ASSERT_NEAR(got[size_t(v)], want[size_t(v)], 2.0 * ulp + 1e-45) << what << " at " << v;
        }
      }
    }
}

TEST_P(CrossEntropyTest, ANanLogitGivesANanLoss) {
  std::vector<float> logits(40, 0.5f), d(40);
  logits[21] = NAN;
  EXPECT_TRUE(std::isnan(ops::cross_entropy_backward(logits.data(), 40, 3, 1.0, d.data(), GetParam())));
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, CrossEntropyTest, testing::ValuesIn(kernels::cpu::runnable_isas()),
                         test::isa_label);

}  // namespace
}  // namespace jetmoe
