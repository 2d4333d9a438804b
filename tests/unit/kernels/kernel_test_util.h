// Helpers of the kernel tests: every kernel is run on each instruction-set level this machine
// has (forced through the `isa` argument of ops.h) and compared with its scalar oracle.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/isa.h"

namespace jetmoe::test {

using kernels::cpu::Isa;

// Unit roundoff of fp32.
constexpr double kU = 1.0 / (1 << 24);

// Higham's gamma_n = n u / (1 - n u): a sum of n fp32 terms, in any order, is within gamma_n of
// sum |terms| of the exact sum. Two such sums differ by at most twice that.
inline double gamma_n(int64_t n) { return double(n) * kU / (1.0 - double(n) * kU); }

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// The float32 values of n values of dtype t stored in `bytes` (whole blocks for a quantized t).
inline std::vector<float> decode_as(DType t, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> out(n);
  to_f32(t, bytes.data(), out.data(), n);
  return out;
}

// Values of dtype t stored in `bytes` (its float32 equivalents in `exact`); a quantized t takes
// whole blocks.
struct StoredValues {
  std::vector<uint8_t> bytes;
  std::vector<float> exact;
};
inline StoredValues store_as(DType t, const std::vector<float>& values) {
  StoredValues out;
  out.bytes.resize(dtype_bytes(t, int64_t(values.size())));
  from_f32(t, values.data(), out.bytes.data(), values.size());
  out.exact = decode_as(t, out.bytes, values.size());
  return out;
}

inline std::string isa_label(const testing::TestParamInfo<Isa>& info) {
  return std::string(kernels::cpu::isa_name(info.param));
}

}  // namespace jetmoe::test
