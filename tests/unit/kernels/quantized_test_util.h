// Shared by the tests of products with quantized weights (Q8_0 / Q4_0, the k-quants): the weights,
// expert jobs, the exact-arithmetic check, and the check of a product against both oracles of
// kernels/ref:
//  - kernels::matmul_xwT_q8, the same numerics written plainly (8-bit activations, integer
//    sums): equal up to the fp32 rounding each format's test bounds;
//  - the fp32 product with the dequantized weights, within the bound that the activations'
//    rounding sets (quantized_ops.h).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/ops.h"
#include "kernels/ref/ops.h"
#include "kernels/ref/quantized_ops.h"
#include "kernel_test_util.h"

namespace jetmoe::test {

// A quantized [out, in] weight one byte past an aligned allocation (GGUF only aligns tensors, and
// blocks are 18, 34 or 144 bytes: the kernels must not assume more than byte alignment).
struct QuantizedWeight {
  std::vector<uint8_t> storage;
  TensorView view;
  QuantizedWeight(DType dtype, std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
    storage.resize(bytes.size() + 1);
    std::copy(bytes.begin(), bytes.end(), storage.begin() + 1);
    view = TensorView{dtype, std::move(shape), storage.data() + 1};
  }
};

// Weights quantized by core from normal random values (std 0.02 with some larger ones).
inline QuantizedWeight random_quantized_weight(DType dtype, int64_t out, int64_t in, uint32_t seed) {
  std::vector<float> w = random_floats(size_t(out * in), seed, 0.02f);
  for (size_t i = 0; i < w.size(); i += 37) w[i] *= 8.0f;
  std::vector<uint8_t> bytes(dtype_bytes(dtype, out * in));
  from_f32(dtype, w.data(), bytes.data(), w.size());
  return QuantizedWeight(dtype, {out, in}, bytes);
}

// A bound for output o of weight W, given the activation row quantized to levels q and block
// scales x_scale.
using OutputBound = std::function<double(const TensorView& W, int64_t o, const int8_t* q, const float* x_scale)>;

struct QuantizedBounds {
  OutputBound rounding;          // between two evaluation orders of the quantized numerics
  OutputBound weight_rounding;   // of the dequantized weights against the values the kernels use
};

// y [T, out] (rows y_stride apart) against both oracles; columns past `out` must stay NaN.
inline void expect_matches_quantized_oracles(const float* y, int64_t y_stride, const std::vector<float>& x,
                                             int64_t x_stride, int64_t T, const TensorView& W,
                                             const QuantizedBounds& bounds, const std::string& what) {
  const int64_t out = W.shape[0], in = W.shape[1], blocks = in / kQuantBlock;
  std::vector<float> same(size_t(T * out));
  kernels::matmul_xwT_q8(x.data(), x_stride, T, W, same.data(), out);
  std::vector<int8_t> q(static_cast<size_t>(in));
  std::vector<float> x_scale(static_cast<size_t>(blocks)), w(static_cast<size_t>(in));
  int failures = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x.data() + t * x_stride;
    kernels::quantize_row_q8(xt, in, q.data(), x_scale.data());
    for (int64_t o = 0; o < out; ++o) {
      const double got = y[t * y_stride + o], want = same[size_t(t * out + o)];
      const double tol = bounds.rounding(W, o, q.data(), x_scale.data());
      if (!(std::fabs(got - want) <= tol) && ++failures <= 3)
        ADD_FAILURE() << what << ": y[" << t << ", " << o << "] = " << got << ", oracle " << want << ", tolerance "
                      << tol;
      // Against the exact product with the dequantized weights: activation rounding
      // |x - d q| <= d (1/2 + 2^-12) (quantized_ops.h), plus both sides' fp32 rounding.
      kernels::load_row(W, o, w.data());
      double exact = 0.0, act_bound = 0.0, abs_sum = 0.0;
      for (int64_t b = 0; b < blocks; ++b) {
        double w_abs = 0.0;
        for (int64_t j = b * 32; j < b * 32 + 32; ++j) {
          exact += double(xt[j]) * w[size_t(j)];
          abs_sum += std::fabs(double(xt[j]) * w[size_t(j)]);
          w_abs += std::fabs(w[size_t(j)]);
        }
        act_bound += double(x_scale[size_t(b)]) * (0.5 + std::ldexp(1.0, -12)) * w_abs;
      }
      const double weights = bounds.weight_rounding ? bounds.weight_rounding(W, o, q.data(), x_scale.data()) : 0.0;
      const double bound = act_bound + tol + weights + gamma_n(in) * abs_sum;
      if (!(std::fabs(got - exact) <= bound) && ++failures <= 3)
        ADD_FAILURE() << what << ": y[" << t << ", " << o << "] = " << got << ", exact " << exact << ", bound "
                      << bound;
    }
    for (int64_t c = out; c < y_stride; ++c)
      if (!std::isnan(y[t * y_stride + c]) && ++failures <= 3) ADD_FAILURE() << what << ": wrote past column " << out;
  }
  EXPECT_EQ(failures, 0) << what;
}

// Activations on which every fp32 step is exact (T rows of small integers drawn from `gen`, a
// +-127 in each block: scale 1, levels = values) against W on `isa`: with every output's
// `magnitude` below 2^22 (checked), any evaluation order gives the oracle's value bit for bit.
inline void expect_exact_product(const QuantizedWeight& W, int64_t T, std::mt19937& gen, ThreadPool& pool, Isa isa,
                                 const OutputBound& magnitude) {
  const int64_t out = W.view.shape[0], in = W.view.shape[1], blocks = in / kQuantBlock;
  std::uniform_int_distribution<int> small(-3, 3), coin(0, 1);
  std::vector<float> x(size_t(T * in));
  for (int64_t i = 0; i < T * in; ++i) x[size_t(i)] = float(small(gen));
  for (int64_t r = 0; r < T * blocks; ++r) x[size_t(r * 32 + r % 32)] = coin(gen) ? 127.0f : -127.0f;
  std::vector<int8_t> q(static_cast<size_t>(in));
  std::vector<float> x_scale(static_cast<size_t>(blocks));
  for (int64_t t = 0; t < T; ++t) {
    kernels::quantize_row_q8(x.data() + t * in, in, q.data(), x_scale.data());
    for (int64_t o = 0; o < out; ++o) ASSERT_LT(magnitude(W.view, o, q.data(), x_scale.data()), std::ldexp(1.0, 22));
  }
  std::vector<float> want(size_t(T * out)), got(size_t(T * out));
  kernels::matmul_xwT_q8(x.data(), in, T, W.view, want.data(), out);
  ops::matmul_xwT(x.data(), in, T, W.view, got.data(), out, pool, {ops::Activations::F32, isa});
  int failures = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && ++failures <= 3)
      ADD_FAILURE() << "T=" << T << " y[" << i << "] = " << got[i] << ", oracle " << want[i];
}

// The jobs of an MoE layer over an [E, out, in] stack, of uneven sizes: expert e gets rows[e]
// random activation rows and an output buffer out + 1 wide (NaN, so that a write past `out` shows).
struct ExpertJobs {
  std::vector<std::vector<float>> xs, ys;
  std::vector<ops::MatmulJob> jobs;

  ExpertJobs(const TensorView& experts, const std::vector<int64_t>& rows) {
    const int64_t out = experts.shape[1], in = experts.shape[2];
    for (size_t e = 0; e < rows.size(); ++e) {
      xs.push_back(random_floats(size_t(rows[e] * in), uint32_t(100 + e)));
      ys.emplace_back(size_t(rows[e] * (out + 1)), std::numeric_limits<float>::quiet_NaN());
    }
    for (size_t e = 0; e < rows.size(); ++e)
      jobs.push_back({xs[e].data(), in, rows[e], experts.slice0(int64_t(e)), ys[e].data(), out + 1});
  }
  // Back to NaN before another run.
  void clear_outputs() {
    for (auto& y : ys) std::fill(y.begin(), y.end(), std::numeric_limits<float>::quiet_NaN());
  }
};

// ops::matmul_xwT of T random rows (one float past an aligned start, strides wider than the rows)
// with a random [out, in] weight of `dtype` (from `seed`), checked against both oracles.
inline void check_quantized_product(Isa isa, DType dtype, int64_t T, int64_t in, int64_t out, uint32_t seed,
                                    ThreadPool& pool, const QuantizedBounds& bounds) {
  const QuantizedWeight W = random_quantized_weight(dtype, out, in, seed);
  const int64_t x_stride = in + 3, y_stride = out + 2;
  std::vector<float> x_buffer = random_floats(size_t(T * x_stride + 1), seed + 1);
  const std::vector<float> x(x_buffer.begin() + 1, x_buffer.end());
  std::vector<float> y(size_t(T * y_stride + 1), std::numeric_limits<float>::quiet_NaN());
  ops::matmul_xwT(x_buffer.data() + 1, x_stride, T, W.view, y.data() + 1, y_stride, pool, {ops::Activations::F32, isa});
  expect_matches_quantized_oracles(
      y.data() + 1, y_stride, x, x_stride, T, W.view, bounds,
      str_cat(kernels::cpu::isa_name(isa), " ", dtype_name(dtype), " T=", T, " in=", in, " out=", out));
}

}  // namespace jetmoe::test
