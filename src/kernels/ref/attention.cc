#include "kernels/ref/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "kernels/ref/ops.h"

namespace jetmoe::kernels {

void causal_attention(const float* q, int64_t T, int64_t k, int64_t H, int64_t D, const float* keys,
                      const float* values, int64_t start, float* out, ThreadPool& pool, bool bf16_products) {
  const int64_t HD = H * D;
  const float scale = 1.0f / std::sqrt(float(D));
  const auto operand = [bf16_products](float x) { return bf16_products ? bf16_to_f32(f32_to_bf16(x)) : x; };
  pool.parallel_for(T * k * H, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(size_t(start + T));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t a = task / H, j = task % H, t = a / k;
      const int64_t n_keys = start + t + 1;  // causal: positions 0 .. start + t
      const float* qh = q + a * HD + j * D;
      for (int64_t p = 0; p < n_keys; ++p) {
        const float* kh = keys + p * HD + j * D;
        float s = 0.0f;
        for (int64_t i = 0; i < D; ++i) s += operand(qh[i]) * operand(kh[i]);
        scores[size_t(p)] = s * scale;
      }
      float* oh = out + a * HD + j * D;
      std::fill(oh, oh + D, 0.0f);
      if (!bf16_products) {
        softmax(scores.data(), n_keys);
        for (int64_t p = 0; p < n_keys; ++p) {
          const float* vh = values + p * HD + j * D;
          const float wgt = scores[size_t(p)];
          for (int64_t i = 0; i < D; ++i) oh[i] += wgt * vh[i];
        }
        continue;
      }
      const float top = *std::max_element(scores.begin(), scores.begin() + n_keys);
      float sum = 0.0f;
      for (int64_t p = 0; p < n_keys; ++p) {
        const float e = std::exp(scores[size_t(p)] - top);
        sum += e;
        const float* vh = values + p * HD + j * D;
        for (int64_t i = 0; i < D; ++i) oh[i] += operand(e) * operand(vh[i]);
      }
      for (int64_t i = 0; i < D; ++i) oh[i] /= sum;
    }
  });
}

}  // namespace jetmoe::kernels
