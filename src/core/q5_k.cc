#include "core/q5_k.h"

#include <cstring>

#include "core/k_quant_fit.h"

namespace jetmoe {

void dequantize_q5_k(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / kKQuantSuperBlock; ++b, src += kQ5kBytes, dst += kKQuantSuperBlock) {
    uint16_t d_bits, dmin_bits;
    std::memcpy(&d_bits, src, 2);
    std::memcpy(&dmin_bits, src + 2, 2);
    const float d = f16_to_f32(d_bits), dmin = f16_to_f32(dmin_bits);
    const Q4kScales s = unpack_q4k_scales(src + kQ4kScalesAt);
    for (int k = 0; k < kQ4kSubBlocks; ++k) {
      const float scale = d * float(s.sc[k]), offset = dmin * float(s.m[k]);
      for (int l = 0; l < kQuantBlock; ++l) dst[k * kQuantBlock + l] = scale * float(q5k_level(src, k, l)) - offset;
    }
  }
}

void quantize_q5_k(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / kKQuantSuperBlock; ++b, src += kKQuantSuperBlock, dst += kQ5kBytes) {
    const KQuantSuperBlock fit = fit_k_quant_super_block(src, kQ5kLevels);
    store_k_quant_scales(fit, dst);
    store_low_nibbles(fit, dst + kQ5kLevelsAt);
    uint8_t* qh = dst + kQ5kHighBitsAt;
    std::memset(qh, 0, 32);
    for (int k = 0; k < kQ4kSubBlocks; ++k)
      for (int l = 0; l < kQuantBlock; ++l) qh[l] = uint8_t(qh[l] | (fit.levels[k * kQuantBlock + l] >> 4) << k);
  }
}

}  // namespace jetmoe
