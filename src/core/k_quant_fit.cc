#include "core/k_quant_fit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace jetmoe {
namespace {


constexpr int kMaxScale = 63;
constexpr int kSub = int(kQuantBlock);  // values per sub-block
// The candidate ranges of fit_sub_block: the levels spread over (max - min) * L / (L + step * i)
// for the top level L, i = -kCandidates .. kCandidates.
constexpr int kCandidates = 5;
constexpr int kRefinePasses = 2;

// v rounded to an integer (halves to even) and clamped to [0, hi], as a float; NaN gives 0. The
// rounding adds and subtracts 2^23 (for 0 <= v < 2^23 the sum's ulp is 1; negative v end at or
// below 0) rather than converting to int, which GCC will not vectorize under fp32 exception
// semantics: the quantizer evaluates ~13 candidate levels per value, in loops over a sub-block.
inline float clamped_level(float v, float hi) {
  const float r = (v + 0x1p23f) - 0x1p23f;
  return std::min(std::max(0.0f, r), hi);  // max(0, NaN) is 0
}

// Sums over a sub-block are kept in kLanes partial sums (lane l: values l, l + kLanes, ..), which
// vectorize without reordering any fp32 addition.
constexpr int kLanes = 8;
float lane_total(const float* part) {
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += part[l];
  return sum;
}

// A sub-block's values as scale * q - offset, both >= 0: GGML's mins are never positive.
struct Fit {
  float scale = 0.0f;
  float offset = 0.0f;
};

// The nearest levels in 0 .. top for `f` (all 0 when the scale is 0).
void nearest_levels(const float* x, const Fit& f, float top, float* q) {
  const float inv = f.scale > 0.0f ? 1.0f / f.scale : 0.0f;
  for (int j = 0; j < kSub; ++j) q[j] = clamped_level((x[j] + f.offset) * inv, top);
}

// Squared error of the values the decoder rebuilds (fp32 scale * q - offset) against x.
float squared_error(const float* x, const Fit& f, const float* q) {
  float part[kLanes] = {};
  for (int j = 0; j < kSub; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float r = (f.scale * q[j + l] - f.offset) - x[j + l];
      part[l] += r * r;
    }
  return lane_total(part);
}

// The least-squares scale and offset for fixed levels q, both kept >= 0.
Fit refit(const float* x, const float* q) {
  float part_q[kLanes] = {}, part_qq[kLanes] = {}, part_x[kLanes] = {}, part_qx[kLanes] = {};
  for (int j = 0; j < kSub; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      part_q[l] += q[j + l];
      part_qq[l] += q[j + l] * q[j + l];
      part_x[l] += x[j + l];
      part_qx[l] += q[j + l] * x[j + l];
    }
  const float sq = lane_total(part_q), sqq = lane_total(part_qq), sx = lane_total(part_x), sqx = lane_total(part_qx);
  const float n = kSub, det = n * sqq - sq * sq;  // exact: integers below 2^18
  float scale = 0.0f, offset = 0.0f;
  if (det > 0.0f) {
    scale = (n * sqx - sq * sx) / det;
    offset = (scale * sq - sx) / n;
    if (offset < 0.0f) {  // the best line passes above the origin: fit through it instead
      offset = 0.0f;
      scale = sqx / sqq;
    }
  } else if (sq > 0.0f && sx > 0.0f) {  // all levels equal and nonzero, positive mean
    scale = sx / sq;
  }
  if (!(scale > 0.0f)) return Fit{0.0f, std::max(0.0f, -sx / n)};  // the mean alone, if negative
  return Fit{scale, offset};
}

// The scale and offset of one sub-block that give the least squared error among: the plain range
// [min(x, 0), max(x)] in `top` steps, and least-squares refits of the levels that slightly narrower
// or wider steps give (a wider step wastes no level on a lone extreme, a narrower one clips it).
Fit fit_sub_block(const float* x, const KQuantLevels& lv) {
  const float top = float(lv.max_level);
  float lo = 0.0f, hi = x[0];
  for (int j = 0; j < kSub; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  if (!(hi > lo)) return Fit{0.0f, -lo};  // every value is the same, <= 0 (or NaN)
  Fit best{(hi - lo) / top, -lo};
  float q[kSub];
  nearest_levels(x, best, top, q);
  float best_error = squared_error(x, best, q);
  for (int i = -kCandidates; i <= kCandidates; ++i) {
    const float inv_step = (top + lv.candidate_step * float(i)) / (hi - lo);
    for (int j = 0; j < kSub; ++j) q[j] = clamped_level((x[j] - lo) * inv_step, top);
    const Fit f = refit(x, q);
    const float error = squared_error(x, f, q);  // the refit's levels are these or better
    if (error < best_error) {
      best = f;
      best_error = error;
    }
  }
  return best;
}

// The 6-bit multiple of `unit` nearest to v (0 when unit is 0).
int six_bit_multiple(float v, float unit) { return unit > 0.0f ? int(clamped_level(v / unit, kMaxScale)) : 0; }

}  // namespace

KQuantSuperBlock fit_k_quant_super_block(const float* x, const KQuantLevels& lv) {
  const float top = float(lv.max_level);
  Fit fits[kQ4kSubBlocks];
  float max_scale = 0.0f, max_offset = 0.0f;
  for (int k = 0; k < kQ4kSubBlocks; ++k) {
    fits[k] = fit_sub_block(x + k * kSub, lv);
    max_scale = std::max(max_scale, fits[k].scale);
    max_offset = std::max(max_offset, fits[k].offset);
  }
  KQuantSuperBlock out;
  out.d_bits = f32_to_f16(max_scale / kMaxScale);
  out.dmin_bits = f32_to_f16(max_offset / kMaxScale);
  const float d = f16_to_f32(out.d_bits), dmin = f16_to_f32(out.dmin_bits);
  for (int k = 0; k < kQ4kSubBlocks; ++k) {
    const float* xk = x + k * kSub;
    float q[kSub];
    int sc = six_bit_multiple(fits[k].scale, d), m = six_bit_multiple(fits[k].offset, dmin);
    Fit stored{d * float(sc), dmin * float(m)};  // what the decoder computes
    nearest_levels(xk, stored, top, q);
    float error = squared_error(xk, stored, q);
    // The levels moved with the 6-bit rounding: refit scale and min to them while that helps.
    for (int pass = 0; pass < kRefinePasses; ++pass) {
      const Fit f = refit(xk, q);
      const int sc2 = six_bit_multiple(f.scale, d), m2 = six_bit_multiple(f.offset, dmin);
      if (sc2 == sc && m2 == m) break;
      const Fit candidate{d * float(sc2), dmin * float(m2)};
      float q2[kSub];
      nearest_levels(xk, candidate, top, q2);
      const float candidate_error = squared_error(xk, candidate, q2);
      if (!(candidate_error < error)) break;
      sc = sc2, m = m2, error = candidate_error;
      std::memcpy(q, q2, sizeof q2);
    }
    out.scales.sc[k] = uint8_t(sc);
    out.scales.m[k] = uint8_t(m);
    for (int j = 0; j < kSub; ++j) out.levels[k * kSub + j] = uint8_t(q[j]);
  }
  return out;
}

void store_k_quant_scales(const KQuantSuperBlock& fit, uint8_t* block) {
  std::memcpy(block, &fit.d_bits, 2);
  std::memcpy(block + 2, &fit.dmin_bits, 2);
  pack_q4k_scales(fit.scales, block + kQ4kScalesAt);
}

void store_low_nibbles(const KQuantSuperBlock& fit, uint8_t* qs) {
  for (int g = 0; g < kQ4kSubBlocks / 2; ++g) {
    const uint8_t* even = fit.levels + 2 * g * kSub;  // sub-block 2g: the low nibbles
    const uint8_t* odd = even + kSub;
    for (int l = 0; l < kSub; ++l) qs[g * kSub + l] = uint8_t((even[l] & 15) | (odd[l] & 15) << 4);
  }
}

}  // namespace jetmoe
