// core's Q8_0 / Q4_0 quantizers (from_f32 / to_f32) against blocks whose bytes are derived by hand
// from GGML's definitions, and their error bound on random data. (These formats are what the
// quantized kernels read, hence the test here.)
//   Q8_0: d = amax / 127 stored as f16, q_j = round_half_away(x_j / d)              (34 bytes)
//   Q4_0: d = (the value of largest magnitude, first one on ties) / -8 stored as f16,
//         q_j = min(15, trunc(x_j / d + 8.5)), byte j = q_j | q_{j+16} << 4          (18 bytes)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernel_test_util.h"

namespace jetmoe {
namespace {

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> out(dtype_bytes(t, int64_t(x.size())));
  from_f32(t, x.data(), out.data(), x.size());
  return out;
}

// A 32-value block: zeros except the given (index, value) pairs.
std::vector<float> block(std::initializer_list<std::pair<int, float>> values) {
  std::vector<float> x(32, 0.0f);
  for (auto [j, v] : values) x[size_t(j)] = v;
  return x;
}

TEST(QuantFormat, SizesFollowTheBlockLayouts) {
  EXPECT_EQ(dtype_bytes(DType::Q8_0, 64), 68u);
  EXPECT_EQ(dtype_bytes(DType::Q4_0, 64), 36u);
  EXPECT_EQ(dtype_bytes(DType::BF16, 3), 6u);
}

TEST(QuantFormat, Q8_0WithUnitScaleRoundsHalfAwayFromZero) {
  // amax = 127, so d = 1 (f16 0x3c00) and q = round(x).
  const auto x = block({{0, 127}, {1, -127}, {2, 0.5f}, {3, 1.5f}, {4, 2.5f}, {5, -0.5f}, {6, -2.5f}, {7, 3.49f},
                        {8, 100.6f}, {9, -100.5f}, {10, 0.49f}, {11, 126.5f}, {12, -126.5f}});
  std::vector<uint8_t> want(34, 0x00);
  want[0] = 0x00, want[1] = 0x3c;
  const uint8_t q[] = {0x7f, 0x81, 0x01, 0x02, 0x03, 0xff, 0xfd, 0x03, 0x65 /*101*/, 0x9b /*-101*/, 0x00, 0x7f, 0x81};
  for (size_t j = 0; j < sizeof q; ++j) want[2 + j] = q[j];
  EXPECT_EQ(quantize(DType::Q8_0, x), want);
}

TEST(QuantFormat, Q8_0StoresTheScaleAsF16AndDividesByTheUnroundedOne) {
  // amax = 0.5: d = 0.5 / 127 = 2^-8 * 1.00787, f16 mantissa round(0.00787 * 1024) = 8 -> 0x1c08.
  // 1 / d = 254: 0.1 -> 25.4 -> 25, -0.3 -> -76.2 -> -76, 0.004 -> 1.016 -> 1, 0.002 -> 0.508 -> 1,
  // -0.001 -> -0.254 -> 0.
  const auto x = block({{0, -0.5f}, {1, 0.1f}, {2, -0.3f}, {3, 0.004f}, {4, 0.002f}, {5, -0.001f}});
  std::vector<uint8_t> want(34, 0x00);
  want[0] = 0x08, want[1] = 0x1c;
  const uint8_t q[] = {0x81, 0x19, 0xb4, 0x01, 0x01, 0x00};
  for (size_t j = 0; j < sizeof q; ++j) want[2 + j] = q[j];
  EXPECT_EQ(quantize(DType::Q8_0, x), want);
  std::vector<float> back(32);
  to_f32(DType::Q8_0, want.data(), back.data(), 32);
  const float d = float(0x408) / 1024.0f / 256.0f;  // 0x1c08 = 2^-8 * (1 + 8/1024)
  EXPECT_EQ(back[0], -127 * d);
  EXPECT_EQ(back[2], -76 * d);
  EXPECT_EQ(back[5], 0.0f);
}

TEST(QuantFormat, Q4_0WithNegativeExtreme) {
  // The extreme is -8, so d = -8 / -8 = 1 (0x3c00) and q = min(15, trunc(x + 8.5)).
  const auto x = block({{0, -8}, {1, 7}, {2, 7.6f}, {3, 0.5f}, {4, -0.5f}, {5, 1.49f}, {6, 2.5f}, {7, -2.5f},
                        {8, -7.9f}, {16, 3}, {17, -3}, {18, -1.5f}, {31, 6.5f}});
  // q: j0 0, j1 15, j2 16 -> 15, j3 9, j4 8, j5 9, j6 11, j7 6, j8 0, j16 11, j17 5, j18 7, j31 15, else 8.
  std::vector<uint8_t> want(18, 0x88);
  want[0] = 0x00, want[1] = 0x3c;
  const uint8_t bytes[] = {0xb0, 0x5f, 0x7f, 0x89, 0x88, 0x89, 0x8b, 0x86, 0x80};
  for (size_t j = 0; j < sizeof bytes; ++j) want[2 + j] = bytes[j];
  want[2 + 15] = 0xf8;
  EXPECT_EQ(quantize(DType::Q4_0, x), want);
}

TEST(QuantFormat, Q4_0WithPositiveExtremeMapsItToLevelZero) {
  // The extreme is +4 (the later -4 has no larger magnitude), so d = -0.5 (0xb800), x / d = -2 x:
  // j0 1 -> 6.5 -> 6, j1 4 -> 0, j2 -3.5 -> 15, j3 0.25 -> 8, j4 -0.25 -> 9, j5 -3.75 -> 16 -> 15,
  // j16 -4 -> 16.5 -> 15 (clamped: dequantizes to -3.5), j17 2 -> 4.5 -> 4.
  const auto x = block({{0, 1}, {1, 4}, {2, -3.5f}, {3, 0.25f}, {4, -0.25f}, {5, -3.75f}, {16, -4}, {17, 2}});
  std::vector<uint8_t> want(18, 0x88);
  want[0] = 0x00, want[1] = 0xb8;
  const uint8_t bytes[] = {0xf6, 0x40, 0x8f, 0x88, 0x89, 0x8f};
  for (size_t j = 0; j < sizeof bytes; ++j) want[2 + j] = bytes[j];
  EXPECT_EQ(quantize(DType::Q4_0, x), want);
  std::vector<float> back(32);
  to_f32(DType::Q4_0, want.data(), back.data(), 32);
  EXPECT_EQ(back[1], 4.0f);
  EXPECT_EQ(back[16], -3.5f);
  EXPECT_EQ(back[0], 1.0f);
}

TEST(QuantFormat, ZeroBlocksHaveZeroScale) {
  const std::vector<float> x(32, 0.0f);
  std::vector<uint8_t> q8(34, 0x00), q4(18, 0x88);
  q4[0] = 0x00, q4[1] = 0x80;  // Q4_0: d = 0 / -8 = -0 (f16 0x8000), levels 8
  EXPECT_EQ(quantize(DType::Q8_0, x), q8);
  EXPECT_EQ(quantize(DType::Q4_0, x), q4);
}

// |x - dequant(x)| <= |d| / 2 from the rounding (x / d is computed as x * (1 / d): a relative error
// of 2 ulp on at most 8 or 127, far below what the checks resolve, allowed as 2^-12 |d|), plus the
// f16 rounding of the stored scale, at most 2^-11 |d| per level unit: 127 units for Q8_0, 8 for
// Q4_0. Q4_0 clamps x / d = 7.5 .. 8 (the opposite extreme) to level 7: error up to |d|.
TEST(QuantFormat, RoundTripErrorIsWithinHalfAStepOnRandomData) {
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const int64_t n = 32 * 500;
    std::vector<float> x = test::random_floats(size_t(n), 7, 0.03f);
    for (int64_t b = 0; b < n / 32; b += 7) x[size_t(b * 32 + b % 32)] *= 40.0f;  // outliers
    const std::vector<uint8_t> q = quantize(t, x);
    std::vector<float> back(static_cast<size_t>(n));
    to_f32(t, q.data(), back.data(), size_t(n));
    int failures = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
      float extreme = 0.0f;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(x[size_t(b * 32 + j)]) > std::fabs(extreme)) extreme = x[size_t(b * 32 + j)];
      const double d = t == DType::Q8_0 ? std::fabs(extreme) / 127.0 : std::fabs(extreme) / 8.0;
      const double scale_err = d * std::ldexp(1.0, -11) * (t == DType::Q8_0 ? 127 : 8);
      for (int j = 0; j < 32; ++j) {
        const double xj = x[size_t(b * 32 + j)], err = std::fabs(xj - back[size_t(b * 32 + j)]);
        const bool clamped = t == DType::Q4_0 && xj / (extreme / -8.0) >= 7.5;
        const double bound = (clamped ? 1.0 : 0.5 + std::ldexp(1.0, -12)) * d + scale_err;
        if (!(err <= bound) && ++failures <= 3)
          ADD_FAILURE() << dtype_name(t) << " block " << b << " value " << j << ": " << xj << " -> "
                        << back[size_t(b * 32 + j)] << ", error " << err << " > " << bound;
      }
    }
    EXPECT_EQ(failures, 0);
  }
}

}  // namespace
}  // namespace jetmoe
