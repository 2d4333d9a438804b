#include "core/dtype.h"

#include <algorithm>
#include <cmath>

#include "core/q4_k.h"
#include "core/q5_k.h"
#include "core/q6_k.h"

namespace jetmoe {

bool parse_dtype(std::string_view name, DType* out) {
  if (name == "F32" || name == "f32" || name == "float32") { *out = DType::F32; return true; }
  if (name == "BF16" || name == "bf16" || name == "bfloat16") { *out = DType::BF16; return true; }
  if (name == "F16" || name == "f16" || name == "float16") { *out = DType::F16; return true; }
  return false;
}

bool parse_quant_dtype(std::string_view name, DType* out) {
  if (name == "Q8_0" || name == "q8_0") { *out = DType::Q8_0; return true; }
  if (name == "Q4_0" || name == "q4_0") { *out = DType::Q4_0; return true; }
  if (name == "Q4_K" || name == "q4_k") { *out = DType::Q4_K; return true; }
  if (name == "Q5_K" || name == "q5_k") { *out = DType::Q5_K; return true; }
  if (name == "Q6_K" || name == "q6_k") { *out = DType::Q6_K; return true; }
  return false;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: value = mant * 2^-24, exact in float
      float f = std::ldexp(float(mant), -24);
      std::memcpy(&bits, &f, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
  if (abs < 0x38800000u) {                         // below the smallest normal half (2^-14)
    // Subnormal: value / 2^-24 rounded to nearest even.
    float scaled = std::ldexp(std::fabs(f), 24);
    float r = std::nearbyint(scaled);
    return sign | uint16_t(r);
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return sign | uint16_t((rounded - (112u << 23)) >> 13);
}

namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Rounds half away from zero into [lo, hi]; NaN (0 * inf when a scale underflows) gives 0.
int clamped_round(float v, int lo, int hi) {
  if (!(v == v)) return 0;
  return int(std::clamp(std::round(v), float(lo), float(hi)));
}

void dequantize_q8_0(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b, src += dtype_block_bytes(DType::Q8_0), dst += kQuantBlock) {
    const float d = f16_to_f32(load_u16(src));
    const auto* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kQuantBlock; ++j) dst[j] = d * float(q[j]);
  }
}

void dequantize_q4_0(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b, src += dtype_block_bytes(DType::Q4_0), dst += kQuantBlock) {
    const float d = f16_to_f32(load_u16(src));
    const uint8_t* q = src + 2;
    for (int j = 0; j < kQuantBlock / 2; ++j) {
      dst[j] = d * float(int(q[j] & 0x0f) - 8);
      dst[j + kQuantBlock / 2] = d * float(int(q[j] >> 4) - 8);
    }
  }
}

// Symmetric 8-bit: the largest magnitude maps to +-127.
void quantize_q8_0(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b, src += kQuantBlock, dst += dtype_block_bytes(DType::Q8_0)) {
    float amax = 0;
    for (int j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    store_u16(dst, f32_to_f16(d));
    auto* q = reinterpret_cast<int8_t*>(dst + 2);
    for (int j = 0; j < kQuantBlock; ++j) q[j] = int8_t(clamped_round(src[j] * inv, -127, 127));
  }
}

// 4-bit with offset 8: the value of largest magnitude, with its sign, maps to q = 0 (-8 d), so
// the full range of 16 levels is used on the side that needs it.
void quantize_q4_0(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b, src += kQuantBlock, dst += dtype_block_bytes(DType::Q4_0)) {
    float amax = 0, extreme = 0;
    for (int j = 0; j < kQuantBlock; ++j) {
      if (std::fabs(src[j]) > amax) {
        amax = std::fabs(src[j]);
        extreme = src[j];
      }
    }
    const float d = extreme / -8.0f;
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    store_u16(dst, f32_to_f16(d));
    uint8_t* q = dst + 2;
    // GGML truncates x / d + 8.5, i.e. rounds x / d half up, then clamps to 15.
    auto level = [&](float x) { return uint8_t(clamped_round(std::floor(x * inv + 8.5f), 0, 15)); };
    for (int j = 0; j < kQuantBlock / 2; ++j) q[j] = uint8_t(level(src[j]) | (level(src[j + kQuantBlock / 2]) << 4));
  }
}

}  // namespace

void to_f32(DType t, const void* src, float* dst, size_t n) {
  if (n == 0) return;  // memcpy with null pointers is undefined even for zero bytes
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0: dequantize_q8_0(static_cast<const uint8_t*>(src), dst, n); return;
    case DType::Q4_0: dequantize_q4_0(static_cast<const uint8_t*>(src), dst, n); return;
    case DType::Q4_K: dequantize_q4_k(static_cast<const uint8_t*>(src), dst, n); return;
    case DType::Q5_K: dequantize_q5_k(static_cast<const uint8_t*>(src), dst, n); return;
    case DType::Q6_K: dequantize_q6_k(static_cast<const uint8_t*>(src), dst, n); return;
  }
}

void from_f32(DType t, const float* src, void* dst, size_t n) {
  if (n == 0) return;
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::Q8_0: quantize_q8_0(src, static_cast<uint8_t*>(dst), n); return;
    case DType::Q4_0: quantize_q4_0(src, static_cast<uint8_t*>(dst), n); return;
    case DType::Q4_K: quantize_q4_k(src, static_cast<uint8_t*>(dst), n); return;
    case DType::Q5_K: quantize_q5_k(src, static_cast<uint8_t*>(dst), n); return;
    case DType::Q6_K: quantize_q6_k(src, static_cast<uint8_t*>(dst), n); return;
  }
}

}  // namespace jetmoe
