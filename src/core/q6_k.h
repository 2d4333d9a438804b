// GGML's Q6_K block layout (ggml type 14, "6-bit k-quant"), bit for bit so that GGUF files
// interoperate with llama.cpp. One super-block holds 256 consecutive values of a row in 210 bytes:
//   bytes 0-127    ql[128]    (the low 4 bits of each level)
//   bytes 128-191  qh[64]     (the high 2 bits of each level)
//   bytes 192-207  scales[16] (int8: one per group of 16 values)
//   bytes 208-209  f16 d      (scale of the group scales)
// Each half h (values 128 h .. 128 h + 127) uses ql[64 h ..], qh[32 h ..]; its four chunks of 32
// values c = 0 .. 3 take, for l = 0 .. 31, the low bits from ql[64 h + l + 32 (c % 2)] (low nibble
// for c < 2, high nibble for c >= 2) and the high bits from bits 2c, 2c + 1 of qh[32 h + l]. The
// level q is 0 .. 63 and value v of the super-block is (d * scales[v / 16]) * (q - 32), as GGML's
// dequantize_row_q6_K computes it in fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace jetmoe {

inline constexpr size_t kQ6kBytes = 210;
inline constexpr size_t kQ6kHighBitsAt = 128;  // byte offsets in a super-block
inline constexpr size_t kQ6kScalesAt = 192;
inline constexpr size_t kQ6kDAt = 208;
inline constexpr int kQ6kGroup = 16;  // values per scale

// Where value v (0 .. 255) of a super-block keeps its level: the byte and shift of its low 4 bits
// (in ql) and of its high 2 bits (in qh).
struct Q6kBits {
  int low_byte, low_shift, high_byte, high_shift;
};
inline Q6kBits q6k_bits(int v) {
  const int half = v / 128, chunk = v % 128 / 32, l = v % 32;
  return {64 * half + 32 * (chunk % 2) + l, chunk < 2 ? 0 : 4, int(kQ6kHighBitsAt) + 32 * half + l, 2 * chunk};
}

// The level (0 .. 63) of value v of a super-block.
inline int q6k_level(const uint8_t* block, int v) {
  const Q6kBits b = q6k_bits(v);
  return ((block[b.low_byte] >> b.low_shift) & 15) | ((block[b.high_byte] >> b.high_shift) & 3) << 4;
}

// n values (a multiple of kKQuantSuperBlock) from / to whole super-blocks.
void dequantize_q6_k(const uint8_t* src, float* dst, size_t n);
// Our quantizer (GGML's layout, not its search): per group of 16, the scale with the least squared
// error among least-squares refits of the levels that a few steps around max |x| / 32 give (the
// value of largest magnitude on level -32 or near it); d = max |scale| / 127, each group's scale
// rounded to a signed 8-bit multiple of d, then the levels rounded to nearest against it.
void quantize_q6_k(const float* src, uint8_t* dst, size_t n);

}  // namespace jetmoe
