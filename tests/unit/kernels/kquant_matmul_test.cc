// Products with Q4_K and Q5_K weights (ops::matmul_xwT, ops::matmul_xwT_grouped, ops::load_row) on
// every ISA level of this machine against the oracles of kernels/ref:
//  - kernels::matmul_xwT_q8, the same numerics written plainly (8-bit activations, integer
//    sub-block sums, the min term from the activation block sums): equal up to fp32 rounding, and
//    bit for bit on data where every fp32 step is exact;
//  - the fp32 product with the dequantized weights (kernels::matmul_xwT), within the bound that
//    the activations' rounding sets (quantized_ops.h);
// over odd sizes: 1 .. 130 rows (both sides of the gemv / gemm switch, partial register tiles),
// odd output counts (partial panels), 1 to 9 super-blocks (partial packed panels of 2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>

#include "core/parallel.h"
#include "core/q4_k.h"
#include "core/q5_k.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/ops.h"
#include "kernels/ref/ops.h"
#include "kernels/ref/quantized_ops.h"
#include "quantized_test_util.h"

namespace jetmoe {
namespace {

using test::Isa;
using test::QuantizedWeight;

constexpr DType kKQuants[] = {DType::Q4_K, DType::Q5_K};

// sum_b |d dx_b| sc_b sum_j w_j |q_j| + |dmin dx_b| m_b |s_b|: the magnitude every evaluation
// order of row o's output sums over.
double magnitude(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale) {
  double mag = 0.0;
  for (int64_t b = 0; b < W.shape[1] / kQuantBlock; ++b) {
    const kernels::KQuantSubBlock w = kernels::k_quant_sub_block(W, o, b);
    double dots = 0.0;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      dots += double(w.levels[j]) * std::abs(q[b * 32 + j]);
      sum += q[b * 32 + j];
    }
    mag += std::fabs(double(w.d) * x_scale[b]) * w.sc * dots +
           std::fabs(double(w.dmin) * x_scale[b]) * w.m * std::abs(sum);
  }
  return mag;
}

// Bound on the fp32 rounding between two evaluations: each side splits a sub-block's dot product
// into up to 8 lanes and rounds at most 4 products per lane (d sc, times dx, times the lane;
// the min term likewise) before summing 8 lanes per sub-block: gamma_{8 blocks + 16}, either side.
double rounding_bound(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale) {
  const int64_t blocks = W.shape[1] / kQuantBlock;
  return 2.0 * test::gamma_n(8 * blocks + 16) * magnitude(W, o, q, x_scale);
}

// The dequantized weights are two fp32 roundings (d sc times q, minus dmin m) from the values
// the kernels use.
double weight_rounding(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale) {
  return 2.0 * test::gamma_n(3) * magnitude(W, o, q, x_scale);
}

// y [T, out] against both oracles (quantized_test_util.h).
void expect_matches_oracles(const float* y, int64_t y_stride, const std::vector<float>& x, int64_t x_stride, int64_t T,
                            const TensorView& W, const std::string& what) {
  test::expect_matches_quantized_oracles(y, y_stride, x, x_stride, T, W, {rounding_bound, weight_rounding}, what);
}

class KQuantMatmulTest : public testing::TestWithParam<std::tuple<Isa, DType>> {
 protected:
  Isa isa() const { return std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
  void check_one(int64_t T, int64_t in, int64_t out, ThreadPool& pool) const {
    const uint32_t seed = uint32_t(T * 7919 + in * 104729 + out * 31);
    test::check_quantized_product(isa(), dtype(), T, in, out, seed, pool, {rounding_bound, weight_rounding});
  }
};

TEST_P(KQuantMatmulTest, MatchesOraclesOverOddShapes) {
  ThreadPool pool(2);
  for (int64_t T : {1, 2, 3, 4, 5, 7, 33, 130})
    for (int64_t in : {256, 768, 2304})  // super-blocks: 1, 3 (a packed panel and a half), 9
      for (int64_t out : {1, 5, 33, 67}) check_one(T, in, out, pool);
}

TEST_P(KQuantMatmulTest, ManyRowsOnOneThread) {
  ThreadPool pool(1);
  check_one(40, 1280, 200, pool);
}

// Data on which every fp32 step of every evaluation order is exact: activations are integers with
// a +-127 in each block (activation scale 1, levels = values), d and dmin +-1 or +-1/2 (signs a
// foreign file may hold), random 6-bit sc / m and levels (random bytes after the scales: Q5_K's
// high bits and nibbles alike), and small enough magnitudes (checked) that every lane, product and
// partial sum is a multiple of 1/2 below 2^22. Any kernel must then equal the oracle bit for bit:
// a wrong nibble, fifth bit, sub-block, scale or min cannot hide in a tolerance.
TEST_P(KQuantMatmulTest, EqualsTheOracleExactlyWhereFp32IsExact) {
  ThreadPool pool(2);
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> six_bits(0, 63), byte(0, 255);
  const uint16_t halves[4] = {0x3c00, 0x3800, 0xbc00, 0xb800};  // f16 1, 1/2, -1, -1/2
  for (int64_t T : {1, 3, 4, 7, 33}) {
    const int64_t in = 512, out = 45;
    const size_t block_bytes = dtype_block_bytes(dtype());
    std::vector<uint8_t> bytes(dtype_bytes(dtype(), out * in));
    for (size_t sb = 0; sb < bytes.size() / block_bytes; ++sb) {
      uint8_t* block = bytes.data() + sb * block_bytes;
      std::memcpy(block, &halves[byte(gen) % 4], 2);
      std::memcpy(block + 2, &halves[byte(gen) % 4], 2);
      Q4kScales s;
      for (int k = 0; k < 8; ++k) s.sc[k] = uint8_t(six_bits(gen)), s.m[k] = uint8_t(six_bits(gen));
      pack_q4k_scales(s, block + kQ4kScalesAt);
      for (size_t i = kQ4kScalesAt + 12; i < block_bytes; ++i) block[i] = uint8_t(byte(gen));
    }
    test::expect_exact_product(QuantizedWeight(dtype(), {out, in}, bytes), T, gen, pool, isa(), magnitude);
  }
}

// The MoE path: an [E, out, in] stack sliced per expert, jobs of uneven sizes.
TEST_P(KQuantMatmulTest, GroupedExpertStacksMatchTheOracleOneByOne) {
  const int64_t E = 5, out = 45, in = 512;
  const QuantizedWeight stacked = test::random_quantized_weight(dtype(), E * out, in, 77);
  const TensorView experts{dtype(), {E, out, in}, stacked.view.data};
  const std::vector<int64_t> rows = {0, 1, 4, 5, 37};
  test::ExpertJobs work(experts, rows);
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    work.clear_outputs();
    ops::matmul_xwT_grouped(work.jobs, pool, {ops::Activations::F32, isa()});
    for (int64_t e = 0; e < E; ++e)
      expect_matches_oracles(work.ys[size_t(e)].data(), out + 1, work.xs[size_t(e)], in, rows[size_t(e)],
                             experts.slice0(e), str_cat("expert ", e, " threads ", threads));
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, KQuantMatmulTest,
                         testing::Combine(testing::ValuesIn(kernels::cpu::runnable_isas()), testing::ValuesIn(kKQuants)),
                         [](const testing::TestParamInfo<std::tuple<Isa, DType>>& info) {
                           return str_cat(kernels::cpu::isa_name(std::get<0>(info.param)), "_",
                                          dtype_name(std::get<1>(info.param)));
                         });

// Embedding rows of a Q4_K / Q5_K table: row r is super-blocks r * in / 256 .. of the data, each
// value (d sc) q - dmin m of its sub-block.
TEST(KQuantLoadRow, DequantizesTheRowsSubBlocks) {
  const int64_t rows = 7, in = 512;
  for (DType dtype : kKQuants) {
    const QuantizedWeight W = test::random_quantized_weight(dtype, rows, in, 9);
    for (int64_t r : {0, 3, 6}) {
      std::vector<float> got(static_cast<size_t>(in)), want(static_cast<size_t>(in));
      ops::load_row(W.view, r, got.data());
      for (int64_t b = 0; b < in / 32; ++b) {
        const kernels::KQuantSubBlock w = kernels::k_quant_sub_block(W.view, r, b);
        for (int j = 0; j < 32; ++j)
          want[size_t(b * 32 + j)] = (w.d * float(w.sc)) * float(w.levels[j]) - w.dmin * float(w.m);
      }
      EXPECT_EQ(got, want) << dtype_name(dtype) << " row " << r;
    }
  }
}

TEST(KQuantMatmul, RowsThatAreNotWholeSuperBlocksAreAnError) {
  ThreadPool pool(1);
  std::vector<uint8_t> bytes(4096);
  for (DType dtype : kKQuants) {
    const TensorView W{dtype, {2, 288}, bytes.data()};  // whole blocks of 32, not of 256
    std::vector<float> x(288), y(2);
    EXPECT_THROW(ops::matmul_xwT(x.data(), 288, 1, W, y.data(), 2, pool), Error);
    EXPECT_THROW(kernels::matmul_xwT(x.data(), 288, 1, W, y.data(), 2, pool), Error);
    EXPECT_THROW(kernels::matmul_xwT_q8(x.data(), 288, 1, W, y.data(), 2), Error);
  }
}

}  // namespace
}  // namespace jetmoe
