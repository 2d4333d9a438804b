#include "kernels/ref/quantized_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/q4_k.h"
#include "core/q5_k.h"
#include "core/q6_k.h"

namespace jetmoe::kernels {

void quantize_row_q8(const float* x, int64_t n, int8_t* q, float* scale) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    // A subnormal scale would make 1 / d overflow: such blocks (max |x| < 127 * 2^-126) are zero.
    const float d = amax / 127.0f >= std::numeric_limits<float>::min() ? amax / 127.0f : 0.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    scale[b] = d;
    for (int64_t j = 0; j < kQuantBlock; ++j) {
      const float v = std::nearbyint(xb[j] * inv);  // the default rounding mode: half to even
      q[b * kQuantBlock + j] = int8_t(v == v ? std::clamp(v, -127.0f, 127.0f) : 0.0f);
    }
  }
}

float weight_block(const TensorView& W, int64_t row, int64_t b, int levels[32]) {
  const int64_t in = W.shape.back();
  const auto* block = static_cast<const uint8_t*>(W.data) + size_t(row) * dtype_bytes(W.dtype, in) +
                      size_t(b) * dtype_block_bytes(W.dtype);
  uint16_t d;
  std::memcpy(&d, block, 2);
  const uint8_t* qs = block + 2;
  if (W.dtype == DType::Q8_0) {
    for (int j = 0; j < 32; ++j) levels[j] = int8_t(qs[j]);
  } else {
    JM_CHECK(W.dtype == DType::Q4_0, "weight_block: ", dtype_name(W.dtype), " is not Q8_0 or Q4_0");
    for (int j = 0; j < 16; ++j) {
      levels[j] = int(qs[j] & 0x0f) - 8;
      levels[j + 16] = int(qs[j] >> 4) - 8;
    }
  }
  return f16_to_f32(d);
}

KQuantSubBlock k_quant_sub_block(const TensorView& W, int64_t row, int64_t b) {
  JM_CHECK(W.dtype == DType::Q4_K || W.dtype == DType::Q5_K, "k_quant_sub_block: ", dtype_name(W.dtype), " is not Q4_K or Q5_K");
  const int64_t in = W.shape.back(), k = b % kQ4kSubBlocks;
  const auto* block = static_cast<const uint8_t*>(W.data) + size_t(row) * dtype_bytes(W.dtype, in) +
                      size_t(b / kQ4kSubBlocks) * dtype_block_bytes(W.dtype);
  uint16_t d, dmin;
  std::memcpy(&d, block, 2);
  std::memcpy(&dmin, block + 2, 2);
  const Q4kScales scales = unpack_q4k_scales(block + kQ4kScalesAt);
  KQuantSubBlock out;
  out.d = f16_to_f32(d);
  out.dmin = f16_to_f32(dmin);
  out.sc = scales.sc[k];
  out.m = scales.m[k];
  if (W.dtype == DType::Q5_K) {
    for (int j = 0; j < 32; ++j) out.levels[j] = q5k_level(block, int(k), j);
    return out;
  }
  const uint8_t* group = block + kQ4kLevelsAt + (k / 2) * 32;
  for (int j = 0; j < 32; ++j) out.levels[j] = k % 2 == 0 ? group[j] & 0x0f : group[j] >> 4;
  return out;
}

Q6kBlock q6k_block(const TensorView& W, int64_t row, int64_t b) {
  JM_CHECK(W.dtype == DType::Q6_K, "q6k_block: ", dtype_name(W.dtype), " is not Q6_K");
  const int64_t in = W.shape.back(), groups_per_block = kQuantBlock / kQ6kGroup;
  const auto* block = static_cast<const uint8_t*>(W.data) + size_t(row) * dtype_bytes(W.dtype, in) +
                      size_t(b * kQuantBlock / kKQuantSuperBlock) * kQ6kBytes;
  const int first = int(b * kQuantBlock % kKQuantSuperBlock);  // of the 32 values in the super-block
  uint16_t d;
  std::memcpy(&d, block + kQ6kDAt, 2);
  Q6kBlock out;
  out.d = f16_to_f32(d);
  for (int g = 0; g < groups_per_block; ++g) out.sc[g] = int8_t(block[kQ6kScalesAt + first / kQ6kGroup + g]);
  for (int j = 0; j < 32; ++j) out.levels[j] = q6k_level(block, first + j) - 32;
  return out;
}

namespace {

// Row t of y for a Q6_K weight, from the row's activation levels q and block scales.
void q6k_row(const TensorView& W, const int8_t* q, const float* scale, float* y) {
  const int64_t out = W.shape[0], blocks = W.shape[1] / kQuantBlock;
  for (int64_t o = 0; o < out; ++o) {
    float acc = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) {
      const Q6kBlock w = q6k_block(W, o, b);
      int32_t dot = 0;
      for (int g = 0; g < 2; ++g) {
        int32_t group = 0;
        for (int j = 16 * g; j < 16 * g + 16; ++j) group += w.levels[j] * q[b * 32 + j];
        dot += w.sc[g] * group;
      }
      acc += (w.d * scale[b]) * float(dot);
    }
    y[o] = acc;
  }
}

// Row t of y for a Q4_K or Q5_K weight, from the row's activation levels q and block scales.
void k_quant_row(const TensorView& W, const int8_t* q, const float* scale, float* y) {
  const int64_t out = W.shape[0], blocks = W.shape[1] / kQuantBlock;
  for (int64_t o = 0; o < out; ++o) {
    float main = 0.0f, mins = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) {
      const KQuantSubBlock w = k_quant_sub_block(W, o, b);
      int32_t dot = 0, sum = 0;
      for (int j = 0; j < 32; ++j) {
        dot += w.levels[j] * q[b * 32 + j];
        sum += q[b * 32 + j];
      }
      main += (w.d * scale[b]) * float(w.sc * dot);
      mins += (w.dmin * scale[b]) * float(w.m * sum);
    }
    y[o] = main - mins;
  }
}

}  // namespace

void matmul_xwT_q8(const float* x, int64_t x_stride, int64_t T, const TensorView& W, float* y, int64_t y_stride) {
  JM_CHECK(W.shape.size() == 2 && dtype_is_quantized(W.dtype) && W.shape[1] % dtype_block_elems(W.dtype) == 0,
           "matmul_xwT_q8 needs a 2-D Q8_0 / Q4_0 / k-quant weight with rows of whole blocks, got ", dtype_name(W.dtype),
           " ", shape_str(W.shape));
  const int64_t out = W.shape[0], in = W.shape[1], blocks = in / kQuantBlock;
  std::vector<int8_t> q(static_cast<size_t>(in));
  std::vector<float> scale(static_cast<size_t>(blocks));
  int levels[32];
  for (int64_t t = 0; t < T; ++t) {
    quantize_row_q8(x + t * x_stride, in, q.data(), scale.data());
    if (W.dtype == DType::Q6_K) {
      q6k_row(W, q.data(), scale.data(), y + t * y_stride);
      continue;
    }
    if (dtype_is_k_quant(W.dtype)) {
      k_quant_row(W, q.data(), scale.data(), y + t * y_stride);
      continue;
    }
    for (int64_t o = 0; o < out; ++o) {
      float acc = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        const float dw = weight_block(W, o, b, levels);
        int32_t sum = 0;
        for (int j = 0; j < 32; ++j) sum += levels[j] * q[size_t(b * 32 + j)];
        acc += (dw * scale[size_t(b)]) * float(sum);
      }
      y[t * y_stride + o] = acc;
    }
  }
}

}  // namespace jetmoe::kernels
