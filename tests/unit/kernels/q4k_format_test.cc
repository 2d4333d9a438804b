// core's Q4_K format (core/q4_k.h: from_f32 / to_f32, the scale packing) against GGML's layout as
// its documentation and every independent decoder state it, restated here from scratch:
//   super-block of 256 values, 144 bytes: f16 d, f16 dmin, scales[12], qs[128];
//   sub-block k (values 32k .. 32k + 31) has sc_k, m_k (6 bits):
//     k < 4:  sc = scales[k] & 63, m = scales[k + 4] & 63
//     k >= 4: sc = (scales[k + 4] & 0xF) | ((scales[k - 4] >> 6) << 4),
//             m  = (scales[k + 4] >> 4)  | ((scales[k] >> 6) << 4)
//   levels: group g = qs[32g .. 32g + 31]; sub-block 2g = low nibbles, 2g + 1 = high nibbles;
//   value = (d * sc) * q - (dmin * m).
// Blocks decoded by hand, a block the quantizer must reproduce byte for byte, the packing over
// every (sc, m) pair, and the quantizer's error on random data.
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
#include "core/q4_k.h"
#include "kernel_test_util.h"

namespace jetmoe {
namespace {

// The (sc, m) of sub-block k by the rule above, independently of core's unpack_q4k_scales.
std::pair<int, int> spec_scale_min(const uint8_t* scales, int k) {
  if (k < 4) return {scales[k] & 63, scales[k + 4] & 63};
  return {(scales[k + 4] & 0xF) | ((scales[k - 4] >> 6) << 4), (scales[k + 4] >> 4) | ((scales[k] >> 6) << 4)};
}

// Value j of a super-block by the rule above, in GGML's fp32 order.
float spec_value(const uint8_t* block, int j) {
  uint16_t d, dmin;
  std::memcpy(&d, block, 2);
  std::memcpy(&dmin, block + 2, 2);
  const int k = j / 32, l = j % 32;
  const auto [sc, m] = spec_scale_min(block + 4, k);
  const uint8_t byte = block[16 + 32 * (k / 2) + l];
  const int q = k % 2 == 0 ? byte & 0xF : byte >> 4;
  const float scale = f16_to_f32(d) * float(sc), min = f16_to_f32(dmin) * float(m);
  return scale * float(q) - min;
}

std::vector<uint8_t> quantize(const std::vector<float>& x) {
  std::vector<uint8_t> out(dtype_bytes(DType::Q4_K, int64_t(x.size())));
  from_f32(DType::Q4_K, x.data(), out.data(), x.size());
  return out;
}

std::vector<float> dequantize(const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> out(n);
  to_f32(DType::Q4_K, bytes.data(), out.data(), n);
  return out;
}

TEST(Q4kFormat, SizesAndNamesFollowGgml) {
  EXPECT_EQ(dtype_block_elems(DType::Q4_K), 256);
  EXPECT_EQ(dtype_block_bytes(DType::Q4_K), 144u);
  EXPECT_EQ(dtype_bytes(DType::Q4_K, 512), 288u);  // 4.5 bits per value
  EXPECT_TRUE(dtype_is_quantized(DType::Q4_K));
  EXPECT_EQ(dtype_name(DType::Q4_K), "Q4_K");
  DType t;
  ASSERT_TRUE(parse_quant_dtype("q4_k", &t));
  EXPECT_EQ(t, DType::Q4_K);
  ASSERT_TRUE(parse_quant_dtype("Q4_K", &t));
  EXPECT_EQ(t, DType::Q4_K);
  EXPECT_FALSE(parse_quant_dtype("q4_k_m", &t));
}

// d = 0.5, dmin = 0.25; scales bytes chosen so that every packing case occurs (top bits set in
// bytes 0-7, both nibbles of bytes 8-11); qs[i] = i. Decoded by hand:
//   sc = {1, 2, 3, 4, 58, 27, 32, 15}, m = {5, 6, 7, 8, 25, 34, 63, 0}
//   e.g. sc_4 = (0x9A & 0xF) | ((0xC1 >> 6) << 4) = 10 | 48 = 58, m_6 = (0xF0 >> 4) | ((0xC7 >> 6) << 4) = 63.
const uint8_t kHandScales[12] = {0xC1, 0x42, 0x83, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9A, 0x2B, 0xF0, 0x0F};

std::vector<uint8_t> hand_block() {
  std::vector<uint8_t> block(144);
  block[0] = 0x00, block[1] = 0x38;  // f16 0.5
  block[2] = 0x00, block[3] = 0x34;  // f16 0.25
  std::memcpy(block.data() + 4, kHandScales, 12);
  for (int i = 0; i < 128; ++i) block[size_t(16 + i)] = uint8_t(i);
  return block;
}

TEST(Q4kFormat, UnpacksTheScalesOfAHandDecodedBlock) {
  const Q4kScales s = unpack_q4k_scales(kHandScales);
  const int sc[8] = {1, 2, 3, 4, 58, 27, 32, 15}, m[8] = {5, 6, 7, 8, 25, 34, 63, 0};
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(s.sc[k], sc[k]) << "sub-block " << k;
    EXPECT_EQ(s.m[k], m[k]) << "sub-block " << k;
  }
}

TEST(Q4kFormat, DequantizesAHandDecodedBlock) {
  const std::vector<float> x = dequantize(hand_block(), 256);
  // value = 0.5 sc q - 0.25 m, q from qs[i] = i:
  EXPECT_EQ(x[0], -1.25f);         // k 0, q = low(0x00) = 0: -0.25 * 5
  EXPECT_EQ(x[15], 6.25f);         // k 0, q = low(0x0F) = 15: 0.5 * 15 - 1.25
  EXPECT_EQ(x[32], -1.5f);         // k 1, q = high(0x00) = 0: -0.25 * 6
  EXPECT_EQ(x[48], -0.5f);         // k 1, q = high(0x10) = 1: 0.5 * 2 - 1.5
  EXPECT_EQ(x[69], 5.75f);         // k 2, q = low(0x25) = 5: 0.5 * 3 * 5 - 1.75
  EXPECT_EQ(x[127], 4.0f);         // k 3, q = high(0x3F) = 3: 0.5 * 4 * 3 - 2
  EXPECT_EQ(x[128], -6.25f);       // k 4, q = low(0x40) = 0: -0.25 * 25
  EXPECT_EQ(x[137], 254.75f);      // k 4, q = low(0x49) = 9: 0.5 * 58 * 9 - 6.25
  EXPECT_EQ(x[177], 59.0f);        // k 5, q = high(0x51) = 5: 0.5 * 27 * 5 - 8.5
  EXPECT_EQ(x[195], 32.25f);       // k 6, q = low(0x63) = 3: 0.5 * 32 * 3 - 15.75
  EXPECT_EQ(x[254], 52.5f);        // k 7, q = high(0x7E) = 7: 0.5 * 15 * 7
  EXPECT_EQ(x[255], 52.5f);        // k 7, q = high(0x7F) = 7
  const std::vector<uint8_t> block = hand_block();
  for (int j = 0; j < 256; ++j) EXPECT_EQ(x[size_t(j)], spec_value(block.data(), j)) << "value " << j;
}

// Values that a super-block with d = 1/16, dmin = 1/32 represents exactly, every level 0 .. 15 in
// every sub-block (so the range [min, max] is exact): the quantizer must find exactly those
// scales (max sc = max m = 63, so d = max scale / 63 = 1/16) and levels, byte for byte.
TEST(Q4kFormat, QuantizesAnExactlyRepresentableBlockByteForByte) {
  const int sc[8] = {1, 2, 3, 4, 63, 27, 32, 15}, m[8] = {5, 6, 7, 8, 25, 34, 63, 0};
  const auto level = [](int k, int l) { return (l + 3 * k) % 16; };
  std::vector<float> x(256);
  for (int k = 0; k < 8; ++k)
    for (int l = 0; l < 32; ++l) x[size_t(32 * k + l)] = float(sc[k]) / 16 * float(level(k, l)) - float(m[k]) / 32;
  std::vector<uint8_t> want(144);
  want[0] = 0x00, want[1] = 0x2C;  // f16 1/16
  want[2] = 0x00, want[3] = 0x28;  // f16 1/32
  // kHandScales with sc_4 = 63: byte 0 keeps top bits 3 (63 >> 4), byte 8 = 15 | 9 << 4.
  const uint8_t scales[12] = {0xC1, 0x42, 0x83, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9F, 0x2B, 0xF0, 0x0F};
  std::memcpy(want.data() + 4, scales, 12);
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) want[size_t(16 + 32 * g + l)] = uint8_t(level(2 * g, l) | level(2 * g + 1, l) << 4);
  const std::vector<uint8_t> got = quantize(x);
  EXPECT_EQ(got, want);
  EXPECT_EQ(dequantize(got, 256), x);
}

TEST(Q4kFormat, ZeroSuperBlocksAreZeroBytes) {
  const std::vector<float> x(512, 0.0f);
  EXPECT_EQ(quantize(x), std::vector<uint8_t>(288, 0));
  EXPECT_EQ(dequantize(quantize(x), 512), x);
}

// pack_q4k_scales then unpacking (core's and the rule above) gives back every (sc, m) pair in
// every sub-block, with the other sub-blocks holding random pairs.
TEST(Q4kFormat, ScalePackingRoundTripsEveryPair) {
  std::mt19937 gen(3);
  std::uniform_int_distribution<int> six_bits(0, 63);
  int failures = 0;
  for (int k = 0; k < 8; ++k) {
    for (int sc = 0; sc < 64; ++sc) {
      for (int m = 0; m < 64; ++m) {
        Q4kScales s;
        for (int i = 0; i < 8; ++i) s.sc[i] = uint8_t(six_bits(gen)), s.m[i] = uint8_t(six_bits(gen));
        s.sc[k] = uint8_t(sc), s.m[k] = uint8_t(m);
        uint8_t packed[12];
        pack_q4k_scales(s, packed);
        const Q4kScales back = unpack_q4k_scales(packed);
        for (int i = 0; i < 8; ++i) {
          const auto [spec_sc, spec_m] = spec_scale_min(packed, i);
          if ((back.sc[i] != s.sc[i] || back.m[i] != s.m[i] || spec_sc != s.sc[i] || spec_m != s.m[i]) &&
              ++failures <= 3)
            ADD_FAILURE() << "sub-block " << i << ": packed (" << int(s.sc[i]) << ", " << int(s.m[i])
                          << "), core read (" << int(back.sc[i]) << ", " << int(back.m[i]) << "), the rule ("
                          << spec_sc << ", " << spec_m << ")";
        }
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

// On random data (normal, with outliers and sub-blocks of one sign):
//  - every level is the nearest one for the stored (6-bit) scale and min: |x - x^| <= S / 2 for x
//    in the sub-block's range [-O, 15 S - O] (S = d sc, O = dmin m), and x^ is the range's nearer
//    end otherwise (2^-10 S slack: x * (1 / S) and the fp32 products round);
//  - the squared error is well below Q4_0's on the same data (same 4.5 bits per value): the min
//    makes the 16 levels cover [min, max] rather than [-max|x|, max|x|], and the search fits the
//    scale to the values. Measured on this data: Q4_K / Q4_0 RMS error ~0.6; bound 0.8.
TEST(Q4kFormat, LevelsAreNearestAndTheErrorIsWellBelowQ4_0s) {
  const int64_t n = 256 * 64;
  std::vector<float> x = test::random_floats(size_t(n), 11, 0.02f);
  for (int64_t i = 0; i < n; i += 97) x[size_t(i)] *= 10.0f;                          // outliers
  for (int64_t i = 256 * 8; i < 256 * 9; ++i) x[size_t(i)] = std::fabs(x[size_t(i)]);  // all positive
  for (int64_t i = 256 * 9; i < 256 * 10; ++i) x[size_t(i)] = -std::fabs(x[size_t(i)]);
  const std::vector<uint8_t> q = quantize(x);
  const std::vector<float> back = dequantize(q, size_t(n));
  int failures = 0;
  double q4k_error = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* block = q.data() + (i / 256) * 144;
    uint16_t d, dmin;
    std::memcpy(&d, block, 2);
    std::memcpy(&dmin, block + 2, 2);
    const auto [sc, m] = spec_scale_min(block + 4, int(i % 256 / 32));
    const double S = double(f16_to_f32(d)) * sc, O = double(f16_to_f32(dmin)) * m;
    const double xi = x[size_t(i)], lo = -O, hi = 15 * S - O;
    const double nearest = std::clamp(xi, lo, hi), err = std::fabs(back[size_t(i)] - nearest);
    if (!(err <= S * (0.5 + std::ldexp(1.0, -10)) + std::ldexp(std::fabs(xi) + O, -20)) && ++failures <= 3)
      ADD_FAILURE() << "value " << i << ": " << xi << " -> " << back[size_t(i)] << " with S " << S << ", O " << O;
    q4k_error += (xi - back[size_t(i)]) * (xi - back[size_t(i)]);
  }
  EXPECT_EQ(failures, 0);

  std::vector<uint8_t> q4_0(dtype_bytes(DType::Q4_0, n));
  from_f32(DType::Q4_0, x.data(), q4_0.data(), size_t(n));
  std::vector<float> back4(static_cast<size_t>(n));
  to_f32(DType::Q4_0, q4_0.data(), back4.data(), size_t(n));
  double q4_0_error = 0.0;
  for (int64_t i = 0; i < n; ++i) q4_0_error += (x[size_t(i)] - back4[size_t(i)]) * (x[size_t(i)] - back4[size_t(i)]);
  const double ratio = std::sqrt(q4k_error / q4_0_error);
  std::cout << "[ measured ] RMS error Q4_K / Q4_0 = " << ratio << "\n";
  EXPECT_LT(ratio, 0.8);
}

// Non-finite values spoil only their own super-block (no undefined behaviour: the sanitizer
// builds run this), and the blocks around it quantize as they do alone.
TEST(Q4kFormat, NonFiniteValuesStayInTheirSuperBlock) {
  std::vector<float> x = test::random_floats(256 * 3, 5);
  x[256 + 7] = std::numeric_limits<float>::quiet_NaN();
  x[256 + 100] = std::numeric_limits<float>::infinity();
  const std::vector<uint8_t> all = quantize(x);
  const std::vector<uint8_t> first = quantize(std::vector<float>(x.begin(), x.begin() + 256));
  const std::vector<uint8_t> last = quantize(std::vector<float>(x.begin() + 512, x.end()));
  EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin()));
  EXPECT_TRUE(std::equal(last.begin(), last.end(), all.begin() + 288));
}

}  // namespace
}  // namespace jetmoe
