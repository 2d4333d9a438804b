// Every backward kernel of src/kernels/ref/backward_ops against double-precision central finite
// differences of its forward op, on small random inputs with odd sizes.
//
// Each forward op is restated here in double straight from its definition, and that restatement
// is first checked against the engine's float32 forward kernel (so the finite differences
// differentiate the op the engine really runs). The backward kernels are then run in double.
//
// Tolerance for gradients: 1e-7 absolute on O(1) values. Central differences with step h = 1e-5
// have truncation error ~h^2 * |f'''| / 6 ~ 1e-11 and rounding error ~1e-16 * |f| / h ~ 1e-11;
// a wrong term in a backward formula is off by O(1e-2 .. 1).
#include "kernels/ref/backward_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "kernels/ref/ops.h"

namespace jetmoe::kernels {
namespace {

constexpr double kFdStep = 1e-5;
constexpr double kFdTol = 1e-7;       // see the file comment
constexpr double kForwardTol = 1e-5;  // float32 kernel vs its double restatement, O(1) values

using Vec = std::vector<double>;

Vec random_vec(size_t n, uint32_t seed, double lo = -1.5, double hi = 1.5) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }

// d f / d x by central differences, f: R^n -> R.
Vec numeric_gradient(const std::function<double(const Vec&)>& f, Vec x) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + kFdStep;
    const double up = f(x);
    x[i] = keep - kFdStep;
    const double down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * kFdStep);
  }
  return g;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

void expect_close(const Vec& got, const Vec& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " [" << i << "]";
}

template <typename Vector>
void expect_forward_matches(const std::vector<float>& engine, const Vector& restated, const char* what) {
  ASSERT_EQ(engine.size(), restated.size()) << what;
  for (size_t i = 0; i < engine.size(); ++i)
    EXPECT_NEAR(engine[i], restated[i], kForwardTol) << what << " [" << i << "]";
}

// --- forward ops restated in double ------------------------------------------------------

Vec matmul(const Vec& x, const Vec& W, int64_t T, int64_t out, int64_t in) {  // y = x W^T
  Vec y(size_t(T * out), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) y[size_t(t * out + o)] += x[size_t(t * in + i)] * W[size_t(o * in + i)];
  return y;
}

Vec rmsnorm(const Vec& x, const Vec& w, double eps, int64_t T, int64_t d) {
  Vec y(x.size());
  for (int64_t t = 0; t < T; ++t) {
    double ms = 0;
    for (int64_t i = 0; i < d; ++i) ms += x[size_t(t * d + i)] * x[size_t(t * d + i)] / double(d);
    for (int64_t i = 0; i < d; ++i) y[size_t(t * d + i)] = w[size_t(i)] * x[size_t(t * d + i)] / std::sqrt(ms + eps);
  }
  return y;
}

Vec silu_glu(const Vec& u, int64_t n, int64_t F) {
  Vec z(size_t(n * F));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < F; ++i) {
      const double g = u[size_t(r * 2 * F + i)], v = u[size_t(r * 2 * F + F + i)];
      z[size_t(r * F + i)] = g / (1 + std::exp(-g)) * v;
    }
  return z;
}

Vec softmax(const Vec& x) {
  double mx = x[0], sum = 0;
  for (double v : x) mx = std::max(mx, v);
  Vec p(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum += (p[i] = std::exp(x[i] - mx));
  for (double& v : p) v /= sum;
  return p;
}

TensorView f32_view(const std::vector<float>& v, Shape shape) {
  return TensorView{DType::F32, std::move(shape), v.data()};
}

// --- tests ---------------------------------------------------------------------------------

TEST(BackwardOps, MatmulInputAndWeight) {
  const int64_t T = 3, out = 5, in = 7;
  const Vec x = random_vec(size_t(T * in), 1), W = random_vec(size_t(out * in), 2), dy = random_vec(size_t(T * out), 3);
  ThreadPool pool(2);
  {  // the restatement is the engine's op
    const std::vector<float> xf = to_float(x), Wf = to_float(W);
    std::vector<float> y(size_t(T * out));
    matmul_xwT(xf.data(), in, T, f32_view(Wf, {out, in}), y.data(), out, pool);
    expect_forward_matches(y, matmul(x, W, T, out, in), "matmul forward");
  }
  // Scalar loss l = sum(y * dy): its gradients are the backward of dy.
  const Vec want_dx = numeric_gradient([&](const Vec& v) { return dot(matmul(v, W, T, out, in), dy); }, x);
  const Vec want_dW = numeric_gradient([&](const Vec& v) { return dot(matmul(x, v, T, out, in), dy); }, W);
  Vec dx(x.size(), 123.0);  // assigned: the old contents must not leak in
  matmul_backward_input(dy.data(), T, W.data(), out, in, dx.data(), pool);
  expect_close(dx, want_dx, kFdTol, "dx");
  Vec dW(W.size(), 0.5);  // accumulated onto 0.5
  matmul_backward_weight(dy.data(), x.data(), T, out, in, dW.data(), pool);
  for (double& v : dW) v -= 0.5;
  expect_close(dW, want_dW, kFdTol, "dW");
}

TEST(BackwardOps, RmsNorm) {
  const int64_t T = 3, d = 9;
  const double eps = 1e-6;
  const Vec x = random_vec(size_t(T * d), 4), w = random_vec(size_t(d), 5, 0.5, 1.5), dy = random_vec(size_t(T * d), 6);
  {
    const std::vector<float> xf = to_float(x), wf = to_float(w);
    std::vector<float> y(x.size());
    kernels::rmsnorm(xf.data(), f32_view(wf, {d}), eps, T, d, y.data());
    expect_forward_matches(y, rmsnorm(x, w, eps, T, d), "rmsnorm forward");
  }
  const Vec want_dx = numeric_gradient([&](const Vec& v) { return dot(rmsnorm(v, w, eps, T, d), dy); }, x);
  const Vec want_dw = numeric_gradient([&](const Vec& v) { return dot(rmsnorm(x, v, eps, T, d), dy); }, w);
  Vec dx(x.size(), 7.0), dw(w.size(), 0.0);
  rmsnorm_backward(x.data(), w.data(), eps, T, d, dy.data(), dx.data(), dw.data());
  expect_close(dx, want_dx, kFdTol, "dx");
  expect_close(dw, want_dw, kFdTol, "dw");
}

// A tiny mean square makes eps matter: the backward must use the same eps as the forward.
TEST(BackwardOps, RmsNormWithEpsThatMatters) {
  const int64_t T = 2, d = 5;
  const double eps = 1e-5;
  Vec x = random_vec(size_t(T * d), 7);
  for (double& v : x) v *= 3e-3;  // mean(x^2) ~ 3e-6, comparable to eps
  const Vec w = random_vec(size_t(d), 8, 0.5, 1.5), dy = random_vec(size_t(T * d), 9);
  const Vec want_dx = numeric_gradient([&](const Vec& v) { return dot(rmsnorm(v, w, eps, T, d), dy); }, x);
  Vec dx(x.size()), dw(w.size(), 0.0);
  rmsnorm_backward(x.data(), w.data(), eps, T, d, dy.data(), dx.data(), dw.data());
  // Gradients here are ~1/sqrt(eps) ~ 300: relative tolerance.
  double scale = 0;
  for (double v : want_dx) scale = std::max(scale, std::fabs(v));
  expect_close(dx, want_dx, 1e-6 * scale, "dx");
}

TEST(BackwardOps, SiluGlu) {
  const int64_t n = 3, F = 5;
  const Vec u = random_vec(size_t(n * 2 * F), 10, -4.0, 4.0), dz = random_vec(size_t(n * F), 11);
  {
    const std::vector<float> uf = to_float(u);
    std::vector<float> z(size_t(n * F));
    kernels::silu_glu(uf.data(), n, F, z.data());
    expect_forward_matches(z, silu_glu(u, n, F), "silu_glu forward");
  }
  const Vec want = numeric_gradient([&](const Vec& v) { return dot(silu_glu(v, n, F), dz); }, u);
  Vec du(u.size(), 9.0);
  silu_glu_backward(u.data(), dz.data(), n, F, du.data());
  expect_close(du, want, kFdTol, "du");
}

TEST(BackwardOps, Softmax) {
  const Vec x = random_vec(7, 12, -3.0, 3.0), dp = random_vec(7, 13);
  {
    std::vector<float> p = to_float(x);
    kernels::softmax(p.data(), int64_t(p.size()));
    expect_forward_matches(p, softmax(x), "softmax forward");
  }
  const Vec want = numeric_gradient([&](const Vec& v) { return dot(softmax(v), dp); }, x);
  const Vec p = softmax(x);
  Vec dx(x.size(), 5.0);
  softmax_backward(p.data(), dp.data(), int64_t(x.size()), dx.data());
  expect_close(dx, want, kFdTol, "dx");
}

TEST(BackwardOps, AddBias) {
  const int64_t T = 4, d = 3;
  const Vec dy = random_vec(size_t(T * d), 14), b = random_vec(size_t(d), 15);
  auto forward = [&](const Vec& bias) {
    Vec y(size_t(T * d), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < d; ++i) y[size_t(t * d + i)] = bias[size_t(i)];
    return dot(y, dy);
  };
  const Vec want = numeric_gradient(forward, b);
  Vec db(size_t(d), 0.0);
  add_bias_backward(dy.data(), T, d, db.data());
  expect_close(db, want, kFdTol, "dbias");
}

TEST(BackwardOps, CrossEntropy) {
  const int64_t V = 11, target = 4;
  const double scale = 0.25;
  const Vec logits = random_vec(size_t(V), 16, -3.0, 3.0);
  auto loss = [&](const Vec& x) {  // -log softmax(x)[target], restated
    return -std::log(softmax(x)[size_t(target)]);
  };
  Vec dlogits(size_t(V), 3.0);
  const double got = cross_entropy_backward(logits.data(), V, target, scale, dlogits.data());
  EXPECT_NEAR(got, loss(logits), 1e-12);
  Vec want = numeric_gradient(loss, logits);
  for (double& v : want) v *= scale;
  expect_close(dlogits, want, kFdTol, "dlogits");
}

// RoPE is linear, so its Jacobian column i is the rotation of the unit vector e_i (exact: a
// finite difference of any step). The backward must apply the transpose of that Jacobian.
TEST(BackwardOps, RopeIsTheTransposeRotation) {
  const int64_t D = 10;
  const Rope rope(D, 1000.0);
  const Vec g = random_vec(size_t(D), 17);
  for (int64_t pos : {0, 1, 7, 137, 4095}) {
    Vec want(size_t(D), 0.0);  // want = J^T g, J[:, i] = rope(e_i)
    for (int64_t i = 0; i < D; ++i) {
      std::vector<float> e(size_t(D), 0.0f);
      e[size_t(i)] = 1.0f;
      rope.apply(e.data(), pos);
      for (int64_t o = 0; o < D; ++o) want[size_t(i)] += double(e[size_t(o)]) * g[size_t(o)];
    }
    std::vector<float> got = to_float(g);
    rope_backward(rope, got.data(), pos);
    // float32 sin/cos of angles up to ~4e3 rad and products of O(1) values: ~1e-6.
    for (int64_t i = 0; i < D; ++i)
      EXPECT_NEAR(got[size_t(i)], want[size_t(i)], 1e-5) << "pos " << pos << " [" << i << "]";
  }
}

}  // namespace
}  // namespace jetmoe::kernels
