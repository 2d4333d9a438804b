#include "core/q4_k.h"

#include <cstring>

#include "core/k_quant_fit.h"

namespace jetmoe {

void pack_q4k_scales(const Q4kScales& s, uint8_t* p) {
  for (int k = 0; k < 4; ++k) {
    p[k] = uint8_t((s.sc[k] & 63) | ((s.sc[k + 4] >> 4) << 6));
    p[k + 4] = uint8_t((s.m[k] & 63) | ((s.m[k + 4] >> 4) << 6));
    p[k + 8] = uint8_t((s.sc[k + 4] & 0x0f) | ((s.m[k + 4] & 0x0f) << 4));
  }
}

void dequantize_q4_k(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / kKQuantSuperBlock; ++b, src += kQ4kBytes, dst += kKQuantSuperBlock) {
    uint16_t d_bits, dmin_bits;
    std::memcpy(&d_bits, src, 2);
    std::memcpy(&dmin_bits, src + 2, 2);
    const float d = f16_to_f32(d_bits), dmin = f16_to_f32(dmin_bits);
    const Q4kScales s = unpack_q4k_scales(src + kQ4kScalesAt);
    const uint8_t* qs = src + kQ4kLevelsAt;
    for (int k = 0; k < kQ4kSubBlocks; ++k) {
      const float scale = d * float(s.sc[k]), offset = dmin * float(s.m[k]);
      const uint8_t* group = qs + (k / 2) * kQuantBlock;
      const int shift = (k % 2) * 4;
      for (int l = 0; l < kQuantBlock; ++l) dst[k * kQuantBlock + l] = scale * float((group[l] >> shift) & 0x0f) - offset;
    }
  }
}

void quantize_q4_k(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / kKQuantSuperBlock; ++b, src += kKQuantSuperBlock, dst += kQ4kBytes) {
    const KQuantSuperBlock fit = fit_k_quant_super_block(src, kQ4kLevels);
    store_k_quant_scales(fit, dst);
    store_low_nibbles(fit, dst + kQ4kLevelsAt);
  }
}

}  // namespace jetmoe
