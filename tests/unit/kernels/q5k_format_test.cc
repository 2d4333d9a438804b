// core's Q5_K format (core/q5_k.h: from_f32 / to_f32) against GGML's layout as its documentation and
// every independent decoder state it, restated here from scratch:
//   super-block of 256 values, 176 bytes: f16 d, f16 dmin, scales[12] (packed as Q4_K's),
//   qh[32], qs[128];
//   value l of sub-block k (value 32k + l): level q = low | 16 * high, where
//     low  = qs[32 (k / 2) + l], low nibble for even k, high nibble for odd k,
//     high = bit k of qh[l];
//   value = (d * sc_k) * q - (dmin * m_k).
// Blocks decoded by hand, a block the quantizer must reproduce byte for byte, and the quantizer's
// error on random data against Q4_K's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "kernel_test_util.h"

namespace jetmoe {
namespace {

// The (sc, m) of sub-block k from the 12 scale bytes (Q4_K's packing, restated).
std::pair<int, int> spec_scale_min(const uint8_t* scales, int k) {
  if (k < 4) return {scales[k] & 63, scales[k + 4] & 63};
  return {(scales[k + 4] & 0xF) | ((scales[k - 4] >> 6) << 4), (scales[k + 4] >> 4) | ((scales[k] >> 6) << 4)};
}

int spec_level(const uint8_t* block, int k, int l) {
  const uint8_t byte = block[48 + 32 * (k / 2) + l];
  const int low = k % 2 == 0 ? byte & 0xF : byte >> 4;
  const int high = (block[16 + l] >> k) & 1;
  return low + 16 * high;
}

// Value j of a super-block by the rule above, in GGML's fp32 order.
float spec_value(const uint8_t* block, int j) {
  uint16_t d, dmin;
  std::memcpy(&d, block, 2);
  std::memcpy(&dmin, block + 2, 2);
  const int k = j / 32;
  const auto [sc, m] = spec_scale_min(block + 4, k);
  return (f16_to_f32(d) * float(sc)) * float(spec_level(block, k, j % 32)) - f16_to_f32(dmin) * float(m);
}

TEST(Q5kFormat, SizesAndNamesFollowGgml) {
  EXPECT_EQ(dtype_block_elems(DType::Q5_K), 256);
  EXPECT_EQ(dtype_block_bytes(DType::Q5_K), 176u);
  EXPECT_EQ(dtype_bytes(DType::Q5_K, 512), 352u);  // 5.5 bits per value
  EXPECT_TRUE(dtype_is_quantized(DType::Q5_K));
  EXPECT_TRUE(dtype_is_k_quant(DType::Q5_K));
  EXPECT_EQ(dtype_name(DType::Q5_K), "Q5_K");
  DType t;
  ASSERT_TRUE(parse_quant_dtype("q5_k", &t));
  EXPECT_EQ(t, DType::Q5_K);
  ASSERT_TRUE(parse_quant_dtype("Q5_K", &t));
  EXPECT_EQ(t, DType::Q5_K);
  EXPECT_FALSE(parse_quant_dtype("q5_k_m", &t));
}

// d = 0.5, dmin = 0.25; the scale bytes of the Q4_K test (every packing case):
//   sc = {1, 2, 3, 4, 58, 27, 32, 15}, m = {5, 6, 7, 8, 25, 34, 63, 0};
// qh[l] = 1 << (l % 8), so value l of sub-block k has its fifth bit set iff l % 8 == k; qs[i] = i.
std::vector<uint8_t> hand_block() {
  const uint8_t scales[12] = {0xC1, 0x42, 0x83, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9A, 0x2B, 0xF0, 0x0F};
  std::vector<uint8_t> block(176);
  block[0] = 0x00, block[1] = 0x38;  // f16 0.5
  block[2] = 0x00, block[3] = 0x34;  // f16 0.25
  std::memcpy(block.data() + 4, scales, 12);
  for (int l = 0; l < 32; ++l) block[size_t(16 + l)] = uint8_t(1 << (l % 8));
  for (int i = 0; i < 128; ++i) block[size_t(48 + i)] = uint8_t(i);
  return block;
}

TEST(Q5kFormat, DequantizesAHandDecodedBlock) {
  const std::vector<float> x = test::decode_as(DType::Q5_K, hand_block(), 256);
  // value = 0.5 sc q - 0.25 m:
  EXPECT_EQ(x[0], 6.75f);     // k 0, l 0: low(0x00) = 0, fifth bit set: q = 16; 0.5 * 16 - 1.25
  EXPECT_EQ(x[1], -0.75f);    // k 0, l 1: low(0x01) = 1, no fifth bit: 0.5 - 1.25
  EXPECT_EQ(x[33], 14.5f);    // k 1, l 1: high(0x01) = 0, fifth bit set: 0.5 * 2 * 16 - 1.5
  EXPECT_EQ(x[137], 254.75f); // k 4, l 9: low(0x49) = 9, no fifth bit: 0.5 * 58 * 9 - 6.25
  EXPECT_EQ(x[140], 805.75f); // k 4, l 12: low(0x4C) = 12, fifth bit set: 0.5 * 58 * 28 - 6.25
  EXPECT_EQ(x[254], 52.5f);   // k 7, l 30: high(0x7E) = 7, no fifth bit: 0.5 * 15 * 7
  EXPECT_EQ(x[255], 172.5f);  // k 7, l 31: high(0x7F) = 7, fifth bit set: 0.5 * 15 * 23
  const std::vector<uint8_t> block = hand_block();
  for (int j = 0; j < 256; ++j) EXPECT_EQ(x[size_t(j)], spec_value(block.data(), j)) << "value " << j;
}

// Values that a super-block with d = 1/16, dmin = 1/32 represents exactly, every level 0 .. 31 in
// every sub-block: the quantizer must find exactly those scales and levels, byte for byte.
TEST(Q5kFormat, QuantizesAnExactlyRepresentableBlockByteForByte) {
  const int sc[8] = {1, 2, 3, 4, 63, 27, 32, 15}, m[8] = {5, 6, 7, 8, 25, 34, 63, 0};
  const auto level = [](int k, int l) { return (l + 5 * k) % 32; };
  std::vector<float> x(256);
  for (int k = 0; k < 8; ++k)
    for (int l = 0; l < 32; ++l) x[size_t(32 * k + l)] = float(sc[k]) / 16 * float(level(k, l)) - float(m[k]) / 32;
  std::vector<uint8_t> want(176, 0);
  want[0] = 0x00, want[1] = 0x2C;  // f16 1/16
  want[2] = 0x00, want[3] = 0x28;  // f16 1/32
  const uint8_t scales[12] = {0xC1, 0x42, 0x83, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9F, 0x2B, 0xF0, 0x0F};
  std::memcpy(want.data() + 4, scales, 12);
  for (int k = 0; k < 8; ++k)
    for (int l = 0; l < 32; ++l) {
      uint8_t& high = want[size_t(16 + l)];
      uint8_t& low = want[size_t(48 + 32 * (k / 2) + l)];
      high = uint8_t(high | (level(k, l) >> 4) << k);
      low = uint8_t(low | (level(k, l) & 15) << (4 * (k % 2)));
    }
  const std::vector<uint8_t> got = test::store_as(DType::Q5_K, x).bytes;
  EXPECT_EQ(got, want);
  EXPECT_EQ(test::decode_as(DType::Q5_K, got, 256), x);
}

TEST(Q5kFormat, ZeroSuperBlocksAreZeroBytes) {
  const std::vector<float> x(512, 0.0f);
  EXPECT_EQ(test::store_as(DType::Q5_K, x).bytes, std::vector<uint8_t>(352, 0));
  EXPECT_EQ(test::store_as(DType::Q5_K, x).exact, x);
}

// On random data (normal, with outliers and sub-blocks of one sign):
//  - every level is the nearest one for the stored scale and min: |x - x^| <= S / 2 inside the
//    sub-block's range [-O, 31 S - O], the range's nearer end outside it (as in the Q4_K test);
//  - the error is about half Q4_K's on the same data (twice the levels over the same range).
//    Measured on this data: Q5_K / Q4_K RMS error ~0.5; bound 0.6.
TEST(Q5kFormat, LevelsAreNearestAndTheErrorIsAboutHalfQ4Ks) {
  const int64_t n = 256 * 64;
  std::vector<float> x = test::random_floats(size_t(n), 11, 0.02f);
  for (int64_t i = 0; i < n; i += 97) x[size_t(i)] *= 10.0f;                          // outliers
  for (int64_t i = 256 * 8; i < 256 * 9; ++i) x[size_t(i)] = std::fabs(x[size_t(i)]);  // all positive
  for (int64_t i = 256 * 9; i < 256 * 10; ++i) x[size_t(i)] = -std::fabs(x[size_t(i)]);
  const test::StoredValues stored = test::store_as(DType::Q5_K, x);
  const std::vector<uint8_t>& q = stored.bytes;
  const std::vector<float>& back = stored.exact;
  int failures = 0;
  double q5k_error = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* block = q.data() + (i / 256) * 176;
    EXPECT_EQ(back[size_t(i)], spec_value(block, int(i % 256)));
    uint16_t d, dmin;
    std::memcpy(&d, block, 2);
    std::memcpy(&dmin, block + 2, 2);
    const auto [sc, m] = spec_scale_min(block + 4, int(i % 256 / 32));
    const double S = double(f16_to_f32(d)) * sc, O = double(f16_to_f32(dmin)) * m;
    const double xi = x[size_t(i)], lo = -O, hi = 31 * S - O;
    const double nearest = std::clamp(xi, lo, hi), err = std::fabs(back[size_t(i)] - nearest);
    if (!(err <= S * (0.5 + std::ldexp(1.0, -10)) + std::ldexp(std::fabs(xi) + O, -20)) && ++failures <= 3)
      ADD_FAILURE() << "value " << i << ": " << xi << " -> " << back[size_t(i)] << " with S " << S << ", O " << O;
    q5k_error += (xi - back[size_t(i)]) * (xi - back[size_t(i)]);
  }
  EXPECT_EQ(failures, 0);

  const std::vector<float> back4 = test::store_as(DType::Q4_K, x).exact;
  double q4k_error = 0.0;
  for (int64_t i = 0; i < n; ++i) q4k_error += (x[size_t(i)] - back4[size_t(i)]) * (x[size_t(i)] - back4[size_t(i)]);
  const double ratio = std::sqrt(q5k_error / q4k_error);
  std::cout << "[ measured ] RMS error Q5_K / Q4_K = " << ratio << "\n";
  EXPECT_LT(ratio, 0.6);
}

// Non-finite values spoil only their own super-block (no undefined behaviour: the sanitizer
// builds run this).
TEST(Q5kFormat, NonFiniteValuesStayInTheirSuperBlock) {
  std::vector<float> x = test::random_floats(256 * 3, 5);
  x[256 + 7] = std::numeric_limits<float>::quiet_NaN();
  x[256 + 100] = -std::numeric_limits<float>::infinity();
  const std::vector<uint8_t> all = test::store_as(DType::Q5_K, x).bytes;
  const std::vector<uint8_t> first = test::store_as(DType::Q5_K, {x.begin(), x.begin() + 256}).bytes;
  const std::vector<uint8_t> last = test::store_as(DType::Q5_K, {x.begin() + 512, x.end()}).bytes;
  EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin()));
  EXPECT_TRUE(std::equal(last.begin(), last.end(), all.begin() + 352));
}

}  // namespace
}  // namespace jetmoe
