#include "kernels/ref/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace jetmoe::kernels {
namespace {

float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

constexpr int64_t kRowTile = 16;  // weight rows converted to fp32 at a time, then reused for every token

// One tile of output rows [o0, o1) for all T tokens.
void matmul_tile(const float* x, int64_t x_stride, int64_t T, const TensorView& W, int64_t o0, int64_t o1,
                 float* scratch, float* y, int64_t y_stride) {
  const int64_t in = W.shape[1];
  const float* w = static_cast<const float*>(W.data) + o0 * in;
  if (W.dtype != DType::F32) {  // rows are whole quantization blocks, so any dtype converts row-wise
    const char* rows = static_cast<const char*>(W.data) + size_t(o0) * dtype_bytes(W.dtype, in);
    to_f32(W.dtype, rows, scratch, size_t((o1 - o0) * in));
    w = scratch;
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = o0; o < o1; ++o) y[t * y_stride + o] = dot(x + t * x_stride, w + (o - o0) * in, in);
}

}  // namespace

void load_row(const TensorView& W, int64_t row, float* out) {
  const int64_t in = W.shape.back();
  const char* base = static_cast<const char*>(W.data) + size_t(row) * dtype_bytes(W.dtype, in);
  to_f32(W.dtype, base, out, size_t(in));
}

void matmul_xwT(const float* x, int64_t x_stride, int64_t T, const TensorView& W, float* y, int64_t y_stride,
                ThreadPool& pool) {
  JM_CHECK(W.shape.size() == 2, "matmul weight must be 2-D, got ", shape_str(W.shape));
  const int64_t out = W.shape[0], in = W.shape[1];
  JM_CHECK(in % dtype_block_elems(W.dtype) == 0, "matmul weight ", shape_str(W.shape), " in ", dtype_name(W.dtype),
           ": rows must be whole blocks of ", dtype_block_elems(W.dtype));
  if (T == 0) return;
  const int64_t tiles = (out + kRowTile - 1) / kRowTile;
  pool.parallel_for(tiles, [&](int64_t tile_begin, int64_t tile_end) {
    std::vector<float> scratch(W.dtype == DType::F32 ? 0 : size_t(kRowTile * in));
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t o0 = tile * kRowTile, o1 = std::min(out, o0 + kRowTile);
      matmul_tile(x, x_stride, T, W, o0, o1, scratch.data(), y, y_stride);
    }
  });
}

void rmsnorm(const float* x, const TensorView& weight, double eps, int64_t T, int64_t d, float* y) {
  std::vector<float> w(static_cast<size_t>(d));
  to_f32(weight.dtype, weight.data, w.data(), size_t(d));
  for (int64_t t = 0; t < T; ++t) {
    const float* row = x + t * d;
    const float mean_sq = dot(row, row, d) / float(d);
    const float scale = 1.0f / std::sqrt(mean_sq + float(eps));
    for (int64_t i = 0; i < d; ++i) y[t * d + i] = w[size_t(i)] * (row[i] * scale);
  }
}

Rope::Rope(int64_t head_dim, double theta) : half_(head_dim / 2), inv_freq_(size_t(head_dim / 2)) {
  JM_CHECK(head_dim % 2 == 0, "RoPE needs an even head dim, got ", head_dim);
  for (int64_t i = 0; i < half_; ++i)
    inv_freq_[size_t(i)] = 1.0f / std::pow(float(theta), float(2 * i) / float(head_dim));
}

void Rope::cos_sin(int64_t pos, float* cos, float* sin) const {
  for (int64_t i = 0; i < half_; ++i) {
    const float angle = float(pos) * inv_freq_[size_t(i)];
    cos[i] = std::cos(angle);
    sin[i] = std::sin(angle);
  }
}

void Rope::apply(float* head, int64_t pos) const {
  for (int64_t i = 0; i < half_; ++i) {
    const float angle = float(pos) * inv_freq_[size_t(i)];
    const float c = std::cos(angle), s = std::sin(angle);
    const float a = head[i], b = head[i + half_];
    head[i] = a * c - b * s;
    head[i + half_] = b * c + a * s;
  }
}

void silu_glu(const float* u, int64_t n, int64_t F, float* z) {
  for (int64_t r = 0; r < n; ++r) {
    const float* gate = u + r * 2 * F;
    const float* up = gate + F;
    for (int64_t i = 0; i < F; ++i) z[r * F + i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }
}

void softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void add_bias(float* y, int64_t T, int64_t d, const TensorView& bias) {
  std::vector<float> b(static_cast<size_t>(d));
  to_f32(bias.dtype, bias.data, b.data(), size_t(d));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < d; ++i) y[t * d + i] += b[size_t(i)];
}

}  // namespace jetmoe::kernels
