#include "kernels/ref/backward_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace jetmoe::kernels {

template <typename Real>
void matmul_backward_input(const Real* dy, int64_t T, const Real* W, int64_t out, int64_t in, Real* dx,
                           ThreadPool& pool) {
  // Rows of dx are independent: each is a dy-weighted sum of the rows of W.
  pool.parallel_for(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      Real* row = dx + t * in;
      std::fill(row, row + in, Real(0));
      for (int64_t o = 0; o < out; ++o) {
        const Real g = dy[t * out + o];
        if (g == Real(0)) continue;
        const Real* w = W + o * in;
#pragma omp simd
        for (int64_t i = 0; i < in; ++i) row[i] += g * w[i];
      }
    }
  });
}

template <typename Real>
void matmul_backward_weight(const Real* dy, const Real* x, int64_t T, int64_t out, int64_t in, Real* dW,
                            ThreadPool& pool) {
  // Rows of dW are independent: row o gathers dy[:, o]-weighted rows of x.
  pool.parallel_for(out, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      Real* row = dW + o * in;
      for (int64_t t = 0; t < T; ++t) {
        const Real g = dy[t * out + o];
        if (g == Real(0)) continue;
        const Real* xt = x + t * in;
#pragma omp simd
        for (int64_t i = 0; i < in; ++i) row[i] += g * xt[i];
      }
    }
  });
}

template <typename Real>
void rmsnorm_backward(const Real* x, const Real* w, double eps, int64_t T, int64_t d, const Real* dy, Real* dx,
                      Real* dw) {
  // With r = rsqrt(mean(x^2) + eps), n = x * r and y = w * n:
  //   dw += dy * n,  dn = dy * w,  dx = r * (dn - n * mean(dn * n)).
  for (int64_t t = 0; t < T; ++t) {
    const Real* xt = x + t * d;
    const Real* gt = dy + t * d;
    Real mean_sq = 0;
    for (int64_t i = 0; i < d; ++i) mean_sq += xt[i] * xt[i];
    mean_sq /= Real(d);
    const Real r = Real(1) / std::sqrt(mean_sq + Real(eps));
    Real dn_dot_n = 0;
    for (int64_t i = 0; i < d; ++i) {
      const Real n = xt[i] * r;
      dw[i] += gt[i] * n;
      dn_dot_n += gt[i] * w[i] * n;
    }
    const Real mean_dn_n = dn_dot_n / Real(d);
    for (int64_t i = 0; i < d; ++i) dx[t * d + i] = r * (gt[i] * w[i] - xt[i] * r * mean_dn_n);
  }
}

template <typename Real>
void silu_glu_backward(const Real* u, const Real* dz, int64_t n, int64_t F, Real* du) {
  // z = silu(g) * v with silu(g) = g * sigmoid(g); silu'(g) = sigmoid(g) * (1 + g * (1 - sigmoid(g))).
  for (int64_t r = 0; r < n; ++r) {
    const Real* g = u + r * 2 * F;
    const Real* v = g + F;
    Real* dg = du + r * 2 * F;
    Real* dv = dg + F;
    for (int64_t i = 0; i < F; ++i) {
      const Real sig = Real(1) / (Real(1) + std::exp(-g[i]));
      const Real grad = dz[r * F + i];
      dv[i] = grad * g[i] * sig;
      dg[i] = grad * v[i] * sig * (Real(1) + g[i] * (Real(1) - sig));
    }
  }
}

template <typename Real>
void softmax_backward(const Real* p, const Real* dp, int64_t n, Real* dx) {
  Real dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += p[i] * dp[i];
  for (int64_t i = 0; i < n; ++i) dx[i] = p[i] * (dp[i] - dot);
}

void rope_backward(const Rope& rope, float* dhead, int64_t pos) { rope.apply(dhead, -pos); }

template <typename Real>
void add_bias_backward(const Real* dy, int64_t T, int64_t d, Real* dbias) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < d; ++i) dbias[i] += dy[t * d + i];
}

template <typename Real>
double cross_entropy_backward(const Real* logits, int64_t V, int64_t target, double scale, Real* dlogits) {
  const double mx = double(*std::max_element(logits, logits + V));
  double sum = 0.0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t v = 0; v < V; ++v) dlogits[v] = Real(scale * std::exp(double(logits[v]) - lse));
  dlogits[target] -= Real(scale);
  return lse - double(logits[target]);
}

#define JETMOE_INSTANTIATE_BACKWARD(Real)                                                                              \
  template void matmul_backward_input<Real>(const Real*, int64_t, const Real*, int64_t, int64_t, Real*, ThreadPool&);  \
  template void matmul_backward_weight<Real>(const Real*, const Real*, int64_t, int64_t, int64_t, Real*, ThreadPool&); \
  template void rmsnorm_backward<Real>(const Real*, const Real*, double, int64_t, int64_t, const Real*, Real*, Real*); \
  template void silu_glu_backward<Real>(const Real*, const Real*, int64_t, int64_t, Real*);                            \
  template void softmax_backward<Real>(const Real*, const Real*, int64_t, Real*);                                      \
  template void add_bias_backward<Real>(const Real*, int64_t, int64_t, Real*);                                         \
  template double cross_entropy_backward<Real>(const Real*, int64_t, int64_t, double, Real*);

JETMOE_INSTANTIATE_BACKWARD(float)
JETMOE_INSTANTIATE_BACKWARD(double)
#undef JETMOE_INSTANTIATE_BACKWARD

}  // namespace jetmoe::kernels
