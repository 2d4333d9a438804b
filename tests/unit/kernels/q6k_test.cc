// Q6_K (core/q6_k.h) against GGML's layout as its documentation and every independent decoder
// state it, restated here from scratch:
//   super-block of 256 values, 210 bytes: ql[128], qh[64], int8 scales[16], f16 d;
//   value v: half h = v / 128, chunk c = v % 128 / 32, l = v % 32;
//     low  = ql[64 h + 32 (c % 2) + l], its low nibble for c < 2, its high nibble for c >= 2;
//     high = bits 2c, 2c + 1 of qh[32 h + l];
//     value = (d * scales[v / 16]) * (low + 16 high - 32).
// The format (blocks decoded by hand, a block the quantizer must reproduce byte for byte, the
// quantizer's error) and products with Q6_K weights on every ISA level of this machine against the
// oracles of kernels/ref (the same numerics written plainly, and the fp32 product with the
// dequantized weights within the bound the activations' rounding sets), over odd sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <vector>

#include "core/dtype.h"
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

int spec_level(const uint8_t* block, int v) {
  const int h = v / 128, c = v % 128 / 32, l = v % 32;
  const uint8_t low_byte = block[64 * h + 32 * (c % 2) + l];
  const int low = c < 2 ? low_byte & 0xF : low_byte >> 4;
  const int high = (block[128 + 32 * h + l] >> (2 * c)) & 3;
  return low + 16 * high;
}

float spec_value(const uint8_t* block, int v) {
  uint16_t d;
  std::memcpy(&d, block + 208, 2);
  return (f16_to_f32(d) * float(int8_t(block[192 + v / 16]))) * float(spec_level(block, v) - 32);
}

TEST(Q6kFormat, SizesAndNamesFollowGgml) {
  EXPECT_EQ(dtype_block_elems(DType::Q6_K), 256);
  EXPECT_EQ(dtype_block_bytes(DType::Q6_K), 210u);
  EXPECT_EQ(dtype_bytes(DType::Q6_K, 512), 420u);  // 6.5625 bits per value
  EXPECT_TRUE(dtype_is_quantized(DType::Q6_K));
  EXPECT_EQ(dtype_name(DType::Q6_K), "Q6_K");
  DType t;
  ASSERT_TRUE(parse_quant_dtype("q6_k", &t));
  EXPECT_EQ(t, DType::Q6_K);
}

// d = 0.5; scales[g] = g + 1 for even g, -(g + 1) for odd g; ql[i] = i; qh[i] = i * 37 mod 256.
std::vector<uint8_t> hand_block() {
  std::vector<uint8_t> block(210);
  for (int i = 0; i < 128; ++i) block[size_t(i)] = uint8_t(i);
  for (int i = 0; i < 64; ++i) block[size_t(128 + i)] = uint8_t(i * 37 % 256);
  for (int g = 0; g < 16; ++g) block[size_t(192 + g)] = uint8_t(int8_t(g % 2 == 0 ? g + 1 : -(g + 1)));
  block[208] = 0x00, block[209] = 0x38;  // f16 0.5
  return block;
}

TEST(Q6kFormat, DequantizesAHandDecodedBlock) {
  const std::vector<float> x = test::decode_as(DType::Q6_K, hand_block(), 256);
  // v 0: h 0, c 0, l 0: low nibble of ql[0] = 0, bits 0-1 of qh[0] = 0: q = 0 - 32; 0.5 * 1 * -32
  EXPECT_EQ(x[0], -16.0f);
  // v 1: low nibble of ql[1] = 1, bits 0-1 of qh[1] = 37 = 0b100101: 1 -> q = 1 + 16 - 32 = -15;
  // 0.5 * 1 * -15
  EXPECT_EQ(x[1], -7.5f);
  // v 50: c 1, l 18, group 3 (scale -4): low nibble of ql[50] = 0x32 -> 2, bits 2-3 of
  // qh[18] = 666 mod 256 = 154 = 0b10011010 -> 2: q = 2 + 32 - 32 = 2; 0.5 * -4 * 2
  EXPECT_EQ(x[50], -4.0f);
  // v 70: c 2, l 6, group 4 (scale 5): high nibble of ql[6] = 0, bits 4-5 of qh[6] = 222 =
  // 0b11011110 -> 1: q = 16 - 32; 0.5 * 5 * -16
  EXPECT_EQ(x[70], -40.0f);
  // v 255: h 1, c 3, l 31, group 15 (scale -16): high nibble of ql[64 + 32 + 31 = 127] = 7,
  // bits 6-7 of qh[32 + 31 = 63] = 2331 mod 256 = 27 = 0b00011011 -> 0: q = 7 - 32; 0.5 * -16 * -25
  EXPECT_EQ(x[255], 200.0f);
  const std::vector<uint8_t> block = hand_block();
  for (int v = 0; v < 256; ++v) EXPECT_EQ(x[size_t(v)], spec_value(block.data(), v)) << "value " << v;
}

// Values that d = 1/16 and the group scales below represent exactly, each group holding level
// -32 (its value of largest magnitude) and then every other level in turn: the quantizer must find
// exactly those scales and levels, byte for byte.
TEST(Q6kFormat, QuantizesAnExactlyRepresentableBlockByteForByte) {
  const int sc[16] = {127, -3, 5, 1, -127, 64, 2, -1, 9, 100, -50, 7, 11, -13, 17, 1};
  const auto level = [](int v) { return v % 16 == 0 ? 0 : (v * 7) % 64; };  // 0 = -32 + 32
  std::vector<float> x(256);
  for (int v = 0; v < 256; ++v) x[size_t(v)] = float(sc[v / 16]) / 16 * float(level(v) - 32);
  std::vector<uint8_t> want(210, 0);
  for (int v = 0; v < 256; ++v) {
    const int h = v / 128, c = v % 128 / 32, l = v % 32;
    want[size_t(64 * h + 32 * (c % 2) + l)] |= uint8_t((level(v) & 15) << (c < 2 ? 0 : 4));
    want[size_t(128 + 32 * h + l)] |= uint8_t((level(v) >> 4) << (2 * c));
  }
  for (int g = 0; g < 16; ++g) want[size_t(192 + g)] = uint8_t(int8_t(sc[g]));
  want[208] = 0x00, want[209] = 0x2C;  // f16 1/16
  const std::vector<uint8_t> got = test::store_as(DType::Q6_K, x).bytes;
  EXPECT_EQ(got, want);
  EXPECT_EQ(test::decode_as(DType::Q6_K, got, 256), x);
}

TEST(Q6kFormat, ZeroSuperBlocksDecodeToZero) {
  const std::vector<float> x(512, 0.0f);
  EXPECT_EQ(test::store_as(DType::Q6_K, x).exact, x);
}

// On random data (normal, with outliers): every level is the nearest one for its group's stored
// scale S = d sc (|x - x^| <= |S| / 2 inside [-32 |S|, 31 |S|] up to the sign of S, the range's
// nearer end outside), and the error is well below Q5_K's on the same data (twice the levels,
// groups of 16). Measured on this data: Q6_K / Q5_K RMS error ~0.45; bound 0.6.
TEST(Q6kFormat, LevelsAreNearestAndTheErrorIsWellBelowQ5Ks) {
  const int64_t n = 256 * 64;
  std::vector<float> x = test::random_floats(size_t(n), 11, 0.02f);
  for (int64_t i = 0; i < n; i += 97) x[size_t(i)] *= 10.0f;
  const test::StoredValues stored = test::store_as(DType::Q6_K, x);
  const std::vector<uint8_t>& q = stored.bytes;
  const std::vector<float>& back = stored.exact;
  int failures = 0;
  double q6k_error = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* block = q.data() + (i / 256) * 210;
    EXPECT_EQ(back[size_t(i)], spec_value(block, int(i % 256)));
    uint16_t d;
    std::memcpy(&d, block + 208, 2);
    const double S = double(f16_to_f32(d)) * int8_t(block[192 + i % 256 / 16]);
    const double xi = x[size_t(i)], lo = std::min(-32 * S, 31 * S), hi = std::max(-32 * S, 31 * S);
    const double nearest = std::clamp(xi, lo, hi), err = std::fabs(back[size_t(i)] - nearest);
    if (!(err <= std::fabs(S) * (0.5 + std::ldexp(1.0, -10)) + std::ldexp(std::fabs(xi), -20)) && ++failures <= 3)
      ADD_FAILURE() << "value " << i << ": " << xi << " -> " << back[size_t(i)] << " with S " << S;
    q6k_error += (xi - back[size_t(i)]) * (xi - back[size_t(i)]);
  }
  EXPECT_EQ(failures, 0);
  const std::vector<float> back5 = test::store_as(DType::Q5_K, x).exact;
  double q5k_error = 0.0;
  for (int64_t i = 0; i < n; ++i) q5k_error += (x[size_t(i)] - back5[size_t(i)]) * (x[size_t(i)] - back5[size_t(i)]);
  const double ratio = std::sqrt(q6k_error / q5k_error);
  std::cout << "[ measured ] RMS error Q6_K / Q5_K = " << ratio << "\n";
  EXPECT_LT(ratio, 0.6);
}

TEST(Q6kFormat, NonFiniteValuesStayInTheirSuperBlock) {
  std::vector<float> x = test::random_floats(256 * 3, 5);
  x[256 + 7] = std::numeric_limits<float>::quiet_NaN();
  x[256 + 100] = std::numeric_limits<float>::infinity();
  const std::vector<uint8_t> all = test::store_as(DType::Q6_K, x).bytes;
  const std::vector<uint8_t> first = test::store_as(DType::Q6_K, {x.begin(), x.begin() + 256}).bytes;
  const std::vector<uint8_t> last = test::store_as(DType::Q6_K, {x.begin() + 512, x.end()}).bytes;
  EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin()));
  EXPECT_TRUE(std::equal(last.begin(), last.end(), all.begin() + 420));
}

// ---- products ----

// sum_b |d dx_b| sum_g |sc_g| sum_j |w_j q_j|: the magnitude every evaluation order of row o's
// output sums over.
double magnitude(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale) {
  double mag = 0.0;
  for (int64_t b = 0; b < W.shape[1] / kQuantBlock; ++b) {
    const kernels::Q6kBlock w = kernels::q6k_block(W, o, b);
    double dots = 0.0;
    for (int j = 0; j < 32; ++j) dots += std::abs(w.sc[j / 16]) * std::abs(w.levels[j] * q[b * 32 + j]);
    mag += std::fabs(double(w.d) * x_scale[b]) * dots;
  }
  return mag;
}

// Either side rounds at most 3 products per lane (d dx, times the lane) before summing 8 lanes
// per block: gamma_{8 blocks + 16}, either side.
double rounding_bound(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale) {
  return 2.0 * test::gamma_n(8 * (W.shape[1] / kQuantBlock) + 16) * magnitude(W, o, q, x_scale);
}

// The dequantized weights are two fp32 roundings (d sc, times the level) from the values the
// kernels use.
double weight_rounding(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale) {
  return 2.0 * test::gamma_n(2) * magnitude(W, o, q, x_scale);
}

class Q6kMatmulTest : public testing::TestWithParam<Isa> {
 protected:
  void check_one(int64_t T, int64_t in, int64_t out, ThreadPool& pool) const {
    const uint32_t seed = uint32_t(T * 7919 + in * 104729 + out * 31);
    test::check_quantized_product(GetParam(), DType::Q6_K, T, in, out, seed, pool, {rounding_bound, weight_rounding});
  }
};

// Rows on both sides of the gemv / gemm switch (kGemvMaxRows) and partial register tiles of the
// GEMMs (4 and 6 rows); outputs in partial panels of 32; 1, 3 and 9 super-blocks (the GEMMs pack
// 2 at a time).
TEST_P(Q6kMatmulTest, MatchesOraclesOverOddShapes) {
  ThreadPool pool(2);
  for (int64_t T : {1, 2, 3, 4, 5, 7, 10, 33, 130})
    for (int64_t in : {256, 768, 2304})
      for (int64_t out : {1, 5, 33, 67, 96}) check_one(T, in, out, pool);
}

// A prefill product cut into column tiles (the later ones start past column 0), each of several
// panels and a partial one, on one thread and on two, over 5 super-blocks (two whole packed
// panels and one more).
TEST_P(Q6kMatmulTest, PrefillTilesBeyondTheFirstColumns) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (int64_t T : {6, 37}) check_one(T, 1280, 300, pool);
  }
}

// Data on which every fp32 step is exact (as the Q4_K test's): integer activations with a +-127
// in each block, d = +-1 or +-1/2, small random group scales, random level bytes, magnitudes
// (checked) below 2^22. Any kernel must then equal the oracle bit for bit.
TEST_P(Q6kMatmulTest, EqualsTheOracleExactlyWhereFp32IsExact) {
  ThreadPool pool(2);
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> scale(-6, 6), byte(0, 255);
  const uint16_t halves[4] = {0x3c00, 0x3800, 0xbc00, 0xb800};  // f16 1, 1/2, -1, -1/2
  for (int64_t T : {1, 3, 4, 7, 33}) {
    const int64_t in = 768, out = 45;  // 3 super-blocks: a packed panel and a half
    std::vector<uint8_t> bytes(dtype_bytes(DType::Q6_K, out * in));
    for (size_t sb = 0; sb < bytes.size() / 210; ++sb) {
      uint8_t* block = bytes.data() + sb * 210;
      for (int i = 0; i < 192; ++i) block[i] = uint8_t(byte(gen));
      for (int g = 0; g < 16; ++g) block[192 + g] = uint8_t(int8_t(scale(gen)));
      std::memcpy(block + 208, &halves[byte(gen) % 4], 2);
    }
    test::expect_exact_product(QuantizedWeight(DType::Q6_K, {out, in}, bytes), T, gen, pool, GetParam(), magnitude);
  }
}

// The MoE path: an [E, out, in] Q6_K stack sliced per expert, jobs of uneven sizes.
TEST_P(Q6kMatmulTest, GroupedExpertStacksMatchTheOracleOneByOne) {
  const int64_t E = 4, out = 45, in = 512;
  const QuantizedWeight stacked = test::random_quantized_weight(DType::Q6_K, E * out, in, 77);
  const TensorView experts{DType::Q6_K, {E, out, in}, stacked.view.data};
  const std::vector<int64_t> rows = {0, 1, 5, 37};
  test::ExpertJobs work(experts, rows);
  ThreadPool pool(3);
  ops::matmul_xwT_grouped(work.jobs, pool, {ops::Activations::F32, GetParam()});
  for (int64_t e = 0; e < E; ++e)
    test::expect_matches_quantized_oracles(work.ys[size_t(e)].data(), out + 1, work.xs[size_t(e)], in, rows[size_t(e)],
                                           experts.slice0(e), {rounding_bound, weight_rounding},
                                           str_cat("expert ", e));
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, Q6kMatmulTest, testing::ValuesIn(kernels::cpu::runnable_isas()), test::isa_label);

TEST(Q6kLoadRow, DequantizesTheRowsGroups) {
  const QuantizedWeight W = test::random_quantized_weight(DType::Q6_K, 7, 512, 9);
  for (int64_t r : {0, 3, 6}) {
    std::vector<float> got(512), want(512);
    ops::load_row(W.view, r, got.data());
    for (int64_t b = 0; b < 16; ++b) {
      const kernels::Q6kBlock w = kernels::q6k_block(W.view, r, b);
      for (int j = 0; j < 32; ++j) want[size_t(b * 32 + j)] = (w.d * float(w.sc[j / 16])) * float(w.levels[j]);
    }
    EXPECT_EQ(got, want) << "row " << r;
  }
}

TEST(Q6kMatmul, RowsThatAreNotWholeSuperBlocksAreAnError) {
  ThreadPool pool(1);
  std::vector<uint8_t> bytes(4096);
  const TensorView W{DType::Q6_K, {2, 288}, bytes.data()};
  std::vector<float> x(288), y(2);
  EXPECT_THROW(ops::matmul_xwT(x.data(), 288, 1, W, y.data(), 2, pool), Error);
  EXPECT_THROW(kernels::matmul_xwT_q8(x.data(), 288, 1, W, y.data(), 2), Error);
}

}  // namespace
}  // namespace jetmoe
