// GGML's Q4_K block layout (ggml type 12, "4-bit k-quant"), bit for bit so that GGUF files
// interoperate with llama.cpp. One super-block holds 256 consecutive values of a row in 144 bytes:
//   bytes 0-1    f16 d      (scale of the sub-block scales)
//   bytes 2-3    f16 dmin   (scale of the sub-block mins)
//   bytes 4-15   scales[12] (8 pairs of 6-bit integers sc_k, m_k; see unpack_q4k_scales)
//   bytes 16-143 qs[128]    (256 4-bit levels q in 0 .. 15)
// Sub-block k holds values 32k .. 32k + 31; value = (d * sc_k) * q - (dmin * m_k), each product
// rounded to fp32 as GGML's dequantize_row_q4_K computes it. qs comes in 4 groups of 64 values:
// group g is qs[32g .. 32g + 31], its first 32 values (sub-block 2g) in the low nibbles, the next
// 32 (sub-block 2g + 1) in the high nibbles.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace jetmoe {

inline constexpr int64_t kQ4kSubBlocks = 8;  // of kQuantBlock values each
inline constexpr size_t kQ4kBytes = 144;
inline constexpr size_t kQ4kScalesAt = 4;  // byte offsets in a super-block
inline constexpr size_t kQ4kLevelsAt = 16;

// Where the kernels find the parts of a super-block (core/q5_k.h has Q5_K's).
struct Q4kLayout {
  static constexpr size_t kBytes = kQ4kBytes;
  static constexpr size_t kLevelsAt = kQ4kLevelsAt;  // the low 4 bits of each level
  static constexpr bool kHighBits = false;           // no fifth bit
  static constexpr size_t kHighBitsAt = 0;
};

// The 6-bit scale and min of each sub-block.
struct Q4kScales {
  uint8_t sc[kQ4kSubBlocks];
  uint8_t m[kQ4kSubBlocks];
};

// GGML's packing of the 8 (sc, m) pairs in 12 bytes p: for k < 4, sc_k and m_k are the low 6 bits
// of p[k] and p[k + 4]; for k >= 4, the low 4 bits of sc_k and m_k are the low and high nibble of
// p[k + 4], and their top 2 bits are the top 2 bits of p[k - 4] and p[k].
inline Q4kScales unpack_q4k_scales(const uint8_t* p) {
  Q4kScales s;
  for (int k = 0; k < 4; ++k) {
    s.sc[k] = p[k] & 63;
    s.m[k] = p[k + 4] & 63;
    s.sc[k + 4] = uint8_t((p[k + 8] & 0x0f) | ((p[k] >> 6) << 4));
    s.m[k + 4] = uint8_t((p[k + 8] >> 4) | ((p[k + 4] >> 6) << 4));
  }
  return s;
}

// The inverse of unpack_q4k_scales; every sc and m must be below 64.
void pack_q4k_scales(const Q4kScales& s, uint8_t* p);

// n values (a multiple of kKQuantSuperBlock) from / to whole super-blocks.
void dequantize_q4_k(const uint8_t* src, float* dst, size_t n);
// Our quantizer (GGML's layout, not its search: core/k_quant_fit.h).
void quantize_q4_k(const float* src, uint8_t* dst, size_t n);

}  // namespace jetmoe
