// Element types of stored tensors and their conversions to and from float32: exact for the float
// types, (de)quantization for the block-quantized ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace jetmoe {

// Q8_0 and Q4_0 are the block formats of GGML / GGUF, bit for bit, so GGUF files interoperate:
// each run of 32 consecutive values of a row is one block holding an f16 scale d, then
//   Q8_0: 32 int8 q,                 value = d * q                       (34 bytes)
//   Q4_0: 16 bytes of 4-bit q, value j in the low nibble of byte j and value j + 16 in its high
//         nibble, value = d * (q - 8)                                      (18 bytes)
// Rows of a Q8_0 / Q4_0 tensor must therefore be a multiple of 32 long.
// Q4_K, Q5_K and Q6_K are GGML's 4-, 5- and 6-bit k-quants, bit for bit: super-blocks of 256
// values (144 / 176 / 210 bytes); Q4_K and Q5_K are made of 8 sub-blocks of 32, each with a 6-bit
// scale and a 6-bit min, Q6_K of 16 groups of 16 with a signed 8-bit scale; rows a multiple of 256
// (core/q4_k.h, core/q5_k.h and core/q6_k.h have the layouts).
enum class DType : uint8_t { F32, BF16, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K };

inline constexpr int64_t kQuantBlock = 32;
inline constexpr int64_t kKQuantSuperBlock = 256;

inline bool dtype_is_k_quant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }
inline bool dtype_is_quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0 || dtype_is_k_quant(t); }

// Values per block: 1 for the float types, kQuantBlock for Q8_0 / Q4_0, kKQuantSuperBlock for the
// k-quants.
inline int64_t dtype_block_elems(DType t) {
  if (dtype_is_k_quant(t)) return kKQuantSuperBlock;
  return dtype_is_quantized(t) ? kQuantBlock : 1;
}

// Bytes per block (per element for the float types).
inline size_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16:
    case DType::F16: return 2;
    case DType::Q8_0: return 2 + 32;
    case DType::Q4_0: return 2 + 16;
    case DType::Q4_K: return 2 + 2 + 12 + 128;
    case DType::Q5_K: return 2 + 2 + 12 + 32 + 128;
    case DType::Q6_K: return 128 + 64 + 16 + 2;
  }
  return 0;
}

// Bytes per element of a float type; only meaningful for the float types.
inline size_t dtype_size(DType t) { return dtype_block_bytes(t); }

// Bytes of n consecutive values; n must be a multiple of dtype_block_elems(t).
inline size_t dtype_bytes(DType t, int64_t n) {
  return size_t(n / dtype_block_elems(t)) * dtype_block_bytes(t);
}

inline std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

// Parses the float types: "F32" / "BF16" / "F16" (safetensors spelling) and the lower-case CLI
// spelling. Quantized names are not accepted here (safetensors has no such types).
bool parse_dtype(std::string_view name, DType* out);
// Parses "q8_0" / "q4_0" / "q4_k" / "q5_k" / "q6_k", in lower or upper case as written.
bool parse_quant_dtype(std::string_view name, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even, NaN kept quiet (same as PyTorch's float -> bfloat16 cast).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of type `t` at `src` to float32. For a quantized type, src is the start of
// a block and n a multiple of dtype_block_elems(t).
void to_f32(DType t, const void* src, float* dst, size_t n);
// Converts n floats to type `t`: round to nearest even for the float types; for the quantized
// ones, GGML's reference quantization of each block (the k-quants: our own search for the
// scales and mins, core/k_quant_fit.h and core/q6_k.h) (n a multiple of dtype_block_elems(t)).
void from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace jetmoe
