// Products with Q8_0 / Q4_0 weights (ops::matmul_xwT, ops::matmul_xwT_grouped, ops::load_row) on
// every ISA level of this machine against the oracles of kernels/ref:
//  - kernels::matmul_xwT_q8, the same numerics written plainly (8-bit activations, integer block
//    sums): equal up to fp32 rounding, and bit for bit on data where every fp32 step is exact;
//  - the fp32 product with the dequantized weights (kernels::matmul_xwT), within the bound that
//    the activations' rounding sets (quantized_ops.h);
// over odd sizes: 1 .. 130 rows (both sides of the gemv / gemm switch, partial register tiles),
// odd output counts (partial panels), inputs from one block to more than one packed panel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/parallel.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/ops.h"
#include "kernels/ref/ops.h"
#include "kernels/ref/quantized_ops.h"
#include "quantized_test_util.h"

namespace jetmoe {
namespace {

using test::Isa;
using test::QuantizedWeight;
using test::random_quantized_weight;

// Bound on the fp32 rounding between two evaluations of sum_b s_b * (integer block sum): the
// kernels split a block's sum into up to 8 lanes, and on VNNI the lanes carry the weights' offset
// (+128 for Q8_0, +8 for Q4_0) and its correction, so each lane is bounded by
// sum (|level| + 2 offset) |q|; 8 lanes per block are rounded and summed (gamma_{8 blocks + 8}),
// by either side.
double rounding_bound(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale) {
  const int64_t blocks = W.shape[1] / kQuantBlock;
  const int offset = W.dtype == DType::Q8_0 ? 128 : 8;
  int levels[32];
  double mag = 0.0;
  for (int64_t b = 0; b < blocks; ++b) {
    const double s = std::fabs(double(kernels::weight_block(W, o, b, levels)) * x_scale[b]);
    double lanes = 0.0;
    for (int j = 0; j < 32; ++j) lanes += double(std::abs(levels[j]) + 2 * offset) * std::abs(q[b * 32 + j]);
    mag += s * lanes;
  }
  return 2.0 * test::gamma_n(8 * blocks + 8) * mag;
}

// y [T, out] against both oracles (quantized_test_util.h).
void expect_matches_oracles(const float* y, int64_t y_stride, const std::vector<float>& x, int64_t x_stride, int64_t T,
                            const TensorView& W, const std::string& what) {
  test::expect_matches_quantized_oracles(y, y_stride, x, x_stride, T, W, {rounding_bound, nullptr}, what);
}

void check_one(Isa isa, DType dtype, int64_t T, int64_t in, int64_t out, ThreadPool& pool) {
  const uint32_t seed = uint32_t(T * 7919 + in * 104729 + out * 31 + int(dtype));
  test::check_quantized_product(isa, dtype, T, in, out, seed, pool, {rounding_bound, nullptr});
}

class QuantizedMatmulTest : public testing::TestWithParam<Isa> {};

TEST_P(QuantizedMatmulTest, MatchesOraclesOverOddShapes) {
  ThreadPool pool(2);
  for (DType dtype : {DType::Q8_0, DType::Q4_0})
    for (int64_t T : {1, 2, 3, 4, 5, 7, 33, 130})
      for (int64_t in : {32, 96, 576, 2048 + 32})  // blocks: 1, 3, 16 + 2, 4 * 16 + 1
        for (int64_t out : {1, 5, 33, 67}) check_one(GetParam(), dtype, T, in, out, pool);
}

TEST_P(QuantizedMatmulTest, ManyRowsOnOneThread) {
  ThreadPool pool(1);
  check_one(GetParam(), DType::Q4_0, 40, 544, 200, pool);  // 17 blocks: one packed panel and one more
  check_one(GetParam(), DType::Q8_0, 40, 544, 200, pool);
}

// Data on which every fp32 step of every evaluation order is exact: activations are integers with
// a +-127 in each block (activation scale 1, levels = values), weight scales 1 or 1/2 and small
// levels, so every lane, product and partial sum is a multiple of 1/2 below 2^23. Any kernel must
// then equal the oracle bit for bit: a wrong level, block or scale cannot hide in a tolerance.
TEST_P(QuantizedMatmulTest, EqualsTheOracleExactlyWhereFp32IsExact) {
  ThreadPool pool(2);
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> small(-7, 7), level8(-15, 15), level4(0, 15), coin(0, 1);
  for (DType dtype : {DType::Q8_0, DType::Q4_0}) {
    for (int64_t T : {1, 3, 4, 7, 33}) {
      const int64_t in = 1024, out = 45, blocks = in / 32;
      std::vector<uint8_t> bytes(dtype_bytes(dtype, out * in));
      for (int64_t o = 0; o < out; ++o)
        for (int64_t b = 0; b < blocks; ++b) {
          uint8_t* block = bytes.data() + size_t(o * blocks + b) * dtype_block_bytes(dtype);
          const uint16_t d = coin(gen) ? 0x3c00 : 0x3800;  // f16 1.0 or 0.5
          std::memcpy(block, &d, 2);
          if (dtype == DType::Q8_0)
            for (int j = 0; j < 32; ++j) block[2 + j] = uint8_t(int8_t(level8(gen)));
          else
            for (int j = 0; j < 16; ++j) block[2 + j] = uint8_t(level4(gen) | level4(gen) << 4);
        }
      const QuantizedWeight W(dtype, {out, in}, bytes);
      std::vector<float> x(size_t(T * in));
      for (int64_t i = 0; i < T * in; ++i) x[size_t(i)] = float(small(gen));
      for (int64_t r = 0; r < T * blocks; ++r) x[size_t(r * 32 + r % 32)] = coin(gen) ? 127.0f : -127.0f;
      std::vector<float> want(size_t(T * out)), got(size_t(T * out));
      kernels::matmul_xwT_q8(x.data(), in, T, W.view, want.data(), out);
      ops::matmul_xwT(x.data(), in, T, W.view, got.data(), out, pool, {ops::Activations::F32, GetParam()});
      int failures = 0;
      for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i] && ++failures <= 3)
          ADD_FAILURE() << dtype_name(dtype) << " T=" << T << " y[" << i << "] = " << got[i] << ", oracle " << want[i];
    }
  }
}

// Activation quantization of each level, bit for bit like the oracle's, ties to even included.
TEST_P(QuantizedMatmulTest, ActivationQuantizationMatchesTheOracleBitForBit) {
  const auto& kt = kernels::cpu::kernel_table(GetParam());
  std::vector<float> x = test::random_floats(32 * 40, 3, 2.0f);
  // Block 0 has scale 1 (amax 127): halves are exact ties and round to even.
  const float ties[] = {127, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 126.5f, -126.5f};
  std::copy(std::begin(ties), std::end(ties), x.begin());
  std::fill(x.begin() + 32, x.begin() + 128, 0.0f);  // blocks 1 .. 3: zero but for tiny extremes
  x[70] = -1e-30f;                                   // block 2: scale 1e-30 / 127, still normal
  x[100] = 1e-39f;  // block 3: the scale would be subnormal (1 / d overflows): a zero block
  std::vector<int8_t> q(x.size()), want_q(x.size());
  std::vector<float> scale(x.size() / 32), want_scale(x.size() / 32);
  std::vector<int32_t> sum(x.size() / 32);
  kt.quantize_row_q8(x.data(), int64_t(x.size()), q.data(), scale.data(), sum.data());
  kernels::quantize_row_q8(x.data(), int64_t(x.size()), want_q.data(), want_scale.data());
  EXPECT_EQ(q, want_q);
  EXPECT_EQ(scale, want_scale);
  const int8_t first[] = {127, 0, 2, 2, 0, -2, 126, -126};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(q[size_t(j)], first[j]) << "value " << j;
  EXPECT_EQ(q[70], -127);
  EXPECT_EQ(q[100], 0);
  EXPECT_EQ(scale[3], 0.0f);
  for (size_t b = 0; b < sum.size(); ++b) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += want_q[b * 32 + size_t(j)];
    EXPECT_EQ(sum[b], s) << "block " << b;
  }
}

// The MoE path: an [E, out, in] quantized stack sliced per expert, jobs of uneven sizes.
TEST_P(QuantizedMatmulTest, GroupedExpertStacksMatchTheOracleOneByOne) {
  for (DType dtype : {DType::Q8_0, DType::Q4_0}) {
    const int64_t E = 5, out = 45, in = 96;
    const QuantizedWeight stacked = random_quantized_weight(dtype, E * out, in, 77);
    const TensorView experts{dtype, {E, out, in}, stacked.view.data};
    const std::vector<int64_t> rows = {0, 1, 4, 5, 37};
    test::ExpertJobs work(experts, rows);
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      work.clear_outputs();
      ops::matmul_xwT_grouped(work.jobs, pool, {ops::Activations::F32, GetParam()});
      for (int64_t e = 0; e < E; ++e) {
        // The slice must be expert e's rows of the stack: rows e*out .. of the 2-D view.
        std::vector<float> a(static_cast<size_t>(in)), b(static_cast<size_t>(in));
        ops::load_row(experts.slice0(e), out - 1, a.data());
        ops::load_row(stacked.view, e * out + out - 1, b.data());
        EXPECT_EQ(a, b) << "expert " << e;
        expect_matches_oracles(work.ys[size_t(e)].data(), out + 1, work.xs[size_t(e)], in, rows[size_t(e)],
                               experts.slice0(e),
                               str_cat(dtype_name(dtype), " expert ", e, " threads ", threads));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, QuantizedMatmulTest, testing::ValuesIn(kernels::cpu::runnable_isas()),
                         test::isa_label);

// Embedding rows of quantized tables: row r is blocks r * in / 32 .. of the data, dequantized.
TEST(QuantizedLoadRow, DequantizesTheRowsBlocks) {
  for (DType dtype : {DType::Q8_0, DType::Q4_0}) {
    const int64_t rows = 7, in = 64;
    const QuantizedWeight W = random_quantized_weight(dtype, rows, in, 9);
    for (int64_t r : {0, 3, 6}) {
      std::vector<float> got(static_cast<size_t>(in)), want(static_cast<size_t>(in));
      ops::load_row(W.view, r, got.data());
      int levels[32];
      for (int64_t b = 0; b < in / 32; ++b) {
        const float d = kernels::weight_block(W.view, r, b, levels);
        for (int j = 0; j < 32; ++j) want[size_t(b * 32 + j)] = d * float(levels[j]);
      }
      EXPECT_EQ(got, want) << dtype_name(dtype) << " row " << r;
    }
  }
}

TEST(QuantizedMatmul, RowsThatAreNotWholeBlocksAreAnError) {
  ThreadPool pool(1);
  std::vector<uint8_t> bytes(1024);
  const TensorView W{DType::Q8_0, {2, 40}, bytes.data()};
  std::vector<float> x(40), y(2);
  EXPECT_THROW(ops::matmul_xwT(x.data(), 40, 1, W, y.data(), 2, pool), Error);
  EXPECT_THROW(kernels::matmul_xwT(x.data(), 40, 1, W, y.data(), 2, pool), Error);
}

}  // namespace
}  // namespace jetmoe
