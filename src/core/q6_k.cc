#include "core/q6_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace jetmoe {
namespace {

constexpr int kLowest = -32, kHighest = 31;
constexpr int kMaxScale = 127;
// Candidate steps: the extreme value on level -(32 + kCandidateStep * i), i = -kCandidates .. kCandidates.
constexpr int kCandidates = 4;
constexpr float kCandidateStep = 0.5f;

// v rounded to an integer (halves to even) and clamped to [lo, hi], as a float; NaN gives 0.
inline float clamped_level(float v, float lo, float hi) {
  const float r = std::nearbyint(v);
  if (std::isnan(r)) return 0.0f;
  return std::clamp(r, lo, hi);
}

// The least-squares scale for fixed levels q: sum q x / sum q q (0 when every level is 0).
float refit(const float* x, const float* q) {
  float qx = 0.0f, qq = 0.0f;
  for (int j = 0; j < kQ6kGroup; ++j) {
    qx += q[j] * x[j];
    qq += q[j] * q[j];
  }
  return qq > 0.0f ? qx / qq : 0.0f;
}

float squared_error(const float* x, float scale, const float* q) {
  float e = 0.0f;
  for (int j = 0; j < kQ6kGroup; ++j) {
    const float r = scale * q[j] - x[j];
    e += r * r;
  }
  return e;
}

void nearest_levels(const float* x, float scale, float* q) {
  const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
  for (int j = 0; j < kQ6kGroup; ++j) q[j] = clamped_level(x[j] * inv, kLowest, kHighest);
}

// The signed scale of one group of 16 (levels -32 .. 31).
float fit_group(const float* x) {
  float extreme = 0.0f;  // the value of largest magnitude
  for (int j = 0; j < kQ6kGroup; ++j)
    if (std::fabs(x[j]) > std::fabs(extreme)) extreme = x[j];
  if (!(std::fabs(extreme) > 0.0f)) return 0.0f;  // all zero (or NaN)
  // The plain choice puts the extreme on level -32, the end with the longer reach.
  float best = extreme / float(kLowest), q[kQ6kGroup];
  nearest_levels(x, best, q);
  float best_error = squared_error(x, best, q);
  for (int i = -kCandidates; i <= kCandidates; ++i) {
    nearest_levels(x, extreme / (float(kLowest) - kCandidateStep * float(i)), q);
    const float scale = refit(x, q);
    const float error = squared_error(x, scale, q);
    if (error < best_error) best = scale, best_error = error;
  }
  return best;
}

void quantize_super_block(const float* x, uint8_t* out) {
  float scales[kKQuantSuperBlock / kQ6kGroup], max_abs = 0.0f;
  for (int g = 0; g < kKQuantSuperBlock / kQ6kGroup; ++g) {
    scales[g] = fit_group(x + g * kQ6kGroup);
    max_abs = std::max(max_abs, std::fabs(scales[g]));
  }
  const uint16_t d_bits = f32_to_f16(max_abs / kMaxScale);
  const float d = f16_to_f32(d_bits);
  std::memset(out, 0, kQ6kBytes);
  std::memcpy(out + kQ6kDAt, &d_bits, 2);
  for (int g = 0; g < kKQuantSuperBlock / kQ6kGroup; ++g) {
    const int sc = d > 0.0f ? int(clamped_level(scales[g] / d, -kMaxScale, kMaxScale)) : 0;
    out[kQ6kScalesAt + g] = uint8_t(int8_t(sc));
    float q[kQ6kGroup];
    nearest_levels(x + g * kQ6kGroup, d * float(sc), q);  // against the scale the decoder computes
    for (int j = 0; j < kQ6kGroup; ++j) {
      const int level = int(q[j]) - kLowest;  // 0 .. 63
      const Q6kBits b = q6k_bits(g * kQ6kGroup + j);
      out[b.low_byte] |= uint8_t((level & 15) << b.low_shift);
      out[b.high_byte] |= uint8_t((level >> 4) << b.high_shift);
    }
  }
}

}  // namespace

void dequantize_q6_k(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / kKQuantSuperBlock; ++b, src += kQ6kBytes, dst += kKQuantSuperBlock) {
    uint16_t d_bits;
    std::memcpy(&d_bits, src + kQ6kDAt, 2);
    const float d = f16_to_f32(d_bits);
    for (int v = 0; v < kKQuantSuperBlock; ++v) {
      const float scale = d * float(int8_t(src[kQ6kScalesAt + v / kQ6kGroup]));
      dst[v] = scale * float(q6k_level(src, v) - 32);
    }
  }
}

void quantize_q6_k(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / kKQuantSuperBlock; ++b) quantize_super_block(src + b * kKQuantSuperBlock, dst + b * kQ6kBytes);
}

}  // namespace jetmoe
