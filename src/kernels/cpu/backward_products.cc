// Backward products on the forward gemm (ops::matmul_xwT):
//   dx = dy · W      is matmul_xwT(dy, W^T)            (W^T an [in, out] fp32 view)
//   dW += dy^T · x   is matmul_xwT(dy^T, x^T), added    (x^T an [in, T] fp32 view)
// A gemm pays for its transposes only when there are enough rows to share them; a handful of
// rows (decoding-sized batches, rarely chosen experts) take direct axpy loops instead.
#include "kernels/backward_products.h"

#include <algorithm>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/ops.h"

namespace jetmoe::ops {
namespace {

// Below this many rows a gemm tile is mostly empty and the transposes weigh as much as the product
// (rarely chosen experts get only a few tokens). Measured on a [256, 128] weight, 2 AVX-512 threads:
// both ways take about 23 us at 6 rows; at 2 rows the loops take 11 us against 22 us.
constexpr int64_t kSmallRows = 6;
constexpr int64_t kTile = 32;

// Scratch of the calling thread, reused across calls so big gradients do not fault in fresh pages
// every time. Three buffers: the two transposed operands and the product before it is added.
std::vector<float>& scratch(int slot) {
  thread_local std::vector<float> buffers[3];
  return buffers[slot];
}
float* sized(std::vector<float>& buffer, int64_t n) {
  if (int64_t(buffer.size()) < n) buffer.resize(size_t(n));
  return buffer.data();
}

MatmulOptions fp32_options(kernels::cpu::Isa isa) { return MatmulOptions{Activations::F32, isa}; }

// dx[t, cols] for a column range, all rows at once: each row of W is read once per range.
void backward_input_few_rows(const float* dy, int64_t T, const float* W, int64_t out, int64_t in, float* dx,
                             ThreadPool& pool) {
  pool.parallel_for(in, [=](int64_t begin, int64_t end) {
    for (int64_t t = 0; t < T; ++t) std::fill(dx + t * in + begin, dx + t * in + end, 0.0f);
    for (int64_t o = 0; o < out; ++o) {
      const float* w = W + o * in;
      for (int64_t t = 0; t < T; ++t) {
        const float g = dy[t * out + o];
        float* row = dx + t * in;
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) row[i] += g * w[i];
      }
    }
  });
}

void backward_weight_few_rows(const float* dy, const float* x, int64_t T, int64_t out, int64_t in, float* dW,
                              ThreadPool& pool) {
  pool.parallel_for(out, [=](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      float* row = dW + o * in;
      for (int64_t t = 0; t < T; ++t) {
        const float g = dy[t * out + o];
        const float* xt = x + t * in;
#pragma omp simd
        for (int64_t i = 0; i < in; ++i) row[i] += g * xt[i];
      }
    }
  });
}

// One tile of transpose(); restrict and by-value sizes let the compiler keep them in registers.
void transpose_tile(const float* __restrict a, int64_t rows, int64_t cols, float* __restrict at, int64_t r0,
                    int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t r = r0; r < r1; ++r) at[c * rows + r] = a[r * cols + c];
}

void check_sizes(const char* op, int64_t T, int64_t out, int64_t in) {
  if (T < 0 || out < 0 || in < 0) fail(op, ": negative size (T ", T, ", out ", out, ", in ", in, ")");
}

}  // namespace

void transpose(const float* a, int64_t rows, int64_t cols, float* at, ThreadPool& pool) {
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  pool.parallel_for(row_tiles, [=](int64_t begin, int64_t end) {
    for (int64_t r0 = begin * kTile; r0 < std::min(rows, end * kTile); r0 += kTile)
      for (int64_t c0 = 0; c0 < cols; c0 += kTile)
        transpose_tile(a, rows, cols, at, r0, std::min(rows, r0 + kTile), c0, std::min(cols, c0 + kTile));
  });
}

TransposedWeight::TransposedWeight(const float* W, int64_t out, int64_t in, ThreadPool& pool)
    : out_(out), in_(in), values_(size_t(out * in)) {
  check_sizes("TransposedWeight", 0, out, in);
  transpose(W, out, in, values_.data(), pool);
}

void matmul_backward_input(const float* dy, int64_t T, const TransposedWeight& Wt, float* dx, ThreadPool& pool,
                           kernels::cpu::Isa isa) {
  check_sizes("matmul_backward_input", T, Wt.out(), Wt.in());
  if (T == 0 || Wt.in() == 0) return;
  if (Wt.out() == 0) {
    std::fill(dx, dx + T * Wt.in(), 0.0f);
    return;
  }
  const TensorView view{DType::F32, Shape{Wt.in(), Wt.out()}, Wt.data()};
  matmul_xwT(dy, Wt.out(), T, view, dx, Wt.in(), pool, fp32_options(isa));
}

void matmul_backward_input(const float* dy, int64_t T, const float* W, int64_t out, int64_t in, float* dx,
                           ThreadPool& pool, kernels::cpu::Isa isa) {
  check_sizes("matmul_backward_input", T, out, in);
  if (T < kSmallRows) return backward_input_few_rows(dy, T, W, out, in, dx, pool);
  matmul_backward_input(dy, T, TransposedWeight(W, out, in, pool), dx, pool, isa);
}

void matmul_backward_weight(const float* dy, const float* x, int64_t T, int64_t out, int64_t in, float* dW,
                            ThreadPool& pool, kernels::cpu::Isa isa) {
  check_sizes("matmul_backward_weight", T, out, in);
  if (T == 0 || out == 0 || in == 0) return;
  if (T < kSmallRows) return backward_weight_few_rows(dy, x, T, out, in, dW, pool);
  float* dyT = sized(scratch(0), out * T);
  float* xT = sized(scratch(1), in * T);
  float* product = sized(scratch(2), out * in);
  transpose(dy, T, out, dyT, pool);
  transpose(x, T, in, xT, pool);
  const TensorView view{DType::F32, Shape{in, T}, xT};
  matmul_xwT(dyT, T, out, view, product, in, pool, fp32_options(isa));
  pool.parallel_for(out * in, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dW[i] += product[i];
  });
}

}  // namespace jetmoe::ops
