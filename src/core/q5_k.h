// GGML's Q5_K block layout (ggml type 13, "5-bit k-quant"), bit for bit so that GGUF files
// interoperate with llama.cpp. One super-block holds 256 consecutive values of a row in 176 bytes:
//   bytes 0-1    f16 d      (scale of the sub-block scales)
//   bytes 2-3    f16 dmin   (scale of the sub-block mins)
//   bytes 4-15   scales[12] (8 pairs of 6-bit sc_k, m_k, packed as Q4_K's: unpack_q4k_scales)
//   bytes 16-47  qh[32]     (the fifth bit of each level)
//   bytes 48-175 qs[128]    (the low 4 bits of each level, laid out as Q4_K's qs)
// Value l of sub-block k (value 32k + l of the super-block) has level
//   q = ((qs[32 (k / 2) + l] >> 4 (k % 2)) & 15) + 16 ((qh[l] >> k) & 1)      in 0 .. 31
// and value = (d * sc_k) * q - (dmin * m_k), each product rounded to fp32 as GGML's
// dequantize_row_q5_K computes it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/q4_k.h"

namespace jetmoe {

inline constexpr size_t kQ5kBytes = 176;
inline constexpr size_t kQ5kHighBitsAt = 16;  // byte offsets in a super-block
inline constexpr size_t kQ5kLevelsAt = 48;

struct Q5kLayout {
  static constexpr size_t kBytes = kQ5kBytes;
  static constexpr size_t kLevelsAt = kQ5kLevelsAt;
  static constexpr bool kHighBits = true;
  static constexpr size_t kHighBitsAt = kQ5kHighBitsAt;
};

// Level l of sub-block k of a super-block, 0 .. 31.
inline int q5k_level(const uint8_t* block, int k, int l) {
  const int low = (block[kQ5kLevelsAt + 32 * (k / 2) + l] >> (4 * (k % 2))) & 15;
  return low | ((block[kQ5kHighBitsAt + l] >> k) & 1) << 4;
}

// n values (a multiple of kKQuantSuperBlock) from / to whole super-blocks.
void dequantize_q5_k(const uint8_t* src, float* dst, size_t n);
// Our quantizer (GGML's layout, not its search: core/k_quant_fit.h).
void quantize_q5_k(const float* src, uint8_t* dst, size_t n);

}  // namespace jetmoe
