// Instruction-set detection and forcing.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/cpu/isa.h"
#include "kernels/ops.h"

namespace jetmoe {
namespace {

using kernels::cpu::Isa;

TEST(Isa, NamesRoundTrip) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16}) {
    Isa parsed;
    ASSERT_TRUE(kernels::cpu::parse_isa(kernels::cpu::isa_name(isa), &parsed));
    EXPECT_EQ(parsed, isa);
  }
  Isa parsed;
  EXPECT_FALSE(kernels::cpu::parse_isa("sse9", &parsed));
}

TEST(Isa, RunnableLevelsStartAtScalarAndIncludeTheBest) {
  const std::vector<Isa> levels = kernels::cpu::runnable_isas();
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(levels.front(), Isa::Scalar);
  EXPECT_EQ(levels.back(), kernels::cpu::hardware_isa());
  EXPECT_LE(kernels::cpu::best_isa(), kernels::cpu::hardware_isa());
}

TEST(Isa, ForcingALevelTheCpuLacksIsAnError) {
  if (kernels::cpu::hardware_isa() == Isa::Avx512Bf16) GTEST_SKIP() << "this CPU runs every level";
  const Isa missing = Isa(int(kernels::cpu::hardware_isa()) + 1);
  float x[4] = {1, 2, 3, 4};
  EXPECT_THROW(ops::softmax(x, 4, missing), Error);
}

}  // namespace
}  // namespace jetmoe
