// Backward of the routing and of the grouped expert products (router.cc, expert_products.cc).
#include <algorithm>

#include "core/error.h"
#include "kernels/backward_products.h"
#include "kernels/ref/backward_ops.h"
#include "model/sublayer_backward.h"

namespace jetmoe {

Fp32Weight::Fp32Weight(const TensorView& w) : data_(static_cast<const float*>(w.data)) {
  if (w.dtype != DType::F32) {
    copy_.resize(size_t(w.numel()));
    to_f32(w.dtype, w.data, copy_.data(), copy_.size());
    data_ = copy_.data();
  }
}

void router_backward(const Routing& r, const float* dgate, const float* aux_grad, const float* h, const TensorView& Wr,
                     float* dWr, float* dh, ThreadPool& pool) {
  const int64_t T = r.num_tokens, E = r.num_experts, k = r.top_k, d = Wr.shape[1];
  std::vector<float> dlogits(size_t(T * E), 0.0f);
  if (aux_grad) std::copy(aux_grad, aux_grad + T * E, dlogits.begin());
  std::vector<float> dtop(static_cast<size_t>(k));
  for (int64_t t = 0; t < T; ++t) {
    kernels::softmax_backward(r.gate.data() + t * k, dgate + t * k, k, dtop.data());
    for (int64_t s = 0; s < k; ++s) dlogits[size_t(t * E + r.expert[size_t(t * k + s)])] += dtop[size_t(s)];
  }
  const Fp32Weight w(Wr);
  ops::matmul_backward_weight(dlogits.data(), h, T, E, d, dWr, pool);
  std::vector<float> dh_router(size_t(T * d));
  ops::matmul_backward_input(dlogits.data(), T, w.data(), E, d, dh_router.data(), pool);
  for (int64_t i = 0; i < T * d; ++i) dh[i] += dh_router[size_t(i)];
}

void expert_matmul_backward(const Routing& r, const float* in, int64_t in_stride, bool per_assignment,
                            const TensorView& W, const float* dout, float* din, float* dW, ThreadPool& pool) {
  const int64_t out_dim = W.shape[1], in_dim = W.shape[2];
  std::vector<float> gathered_in, gathered_dout, gathered_din;
  for (int64_t e = 0; e < r.num_experts; ++e) {
    const int64_t n = r.count(e);
    if (n == 0) continue;
    const int64_t* assignments = r.by_expert.data() + r.offsets[size_t(e)];
    auto row_of = [&](int64_t a) { return (per_assignment ? a : a / r.top_k) * in_stride; };
    gathered_in.resize(size_t(n * in_dim));
    gathered_dout.resize(size_t(n * out_dim));
    gathered_din.resize(size_t(n * in_dim));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t a = assignments[i];
      std::copy(in + row_of(a), in + row_of(a) + in_dim, gathered_in.data() + i * in_dim);
      std::copy(dout + a * out_dim, dout + (a + 1) * out_dim, gathered_dout.data() + i * out_dim);
    }
    const Fp32Weight w(W.slice0(e));
    ops::matmul_backward_weight(gathered_dout.data(), gathered_in.data(), n, out_dim, in_dim,
                                dW + e * out_dim * in_dim, pool);
    ops::matmul_backward_input(gathered_dout.data(), n, w.data(), out_dim, in_dim, gathered_din.data(), pool);
    for (int64_t i = 0; i < n; ++i) {
      float* dst = din + row_of(assignments[i]);
      const float* src = gathered_din.data() + i * in_dim;
      for (int64_t j = 0; j < in_dim; ++j) dst[j] += src[j];
    }
  }
}

void combine_gated_backward(const Routing& r, const float* rows, const float* dy, int64_t d, float* drows,
                            float* dgate) {
  for (int64_t a = 0; a < r.num_tokens * r.top_k; ++a) {
    const float* g = dy + (a / r.top_k) * d;
    const float* row = rows + a * d;
    const float gate = r.gate[size_t(a)];
    float dot = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      drows[a * d + i] = gate * g[i];
      dot += g[i] * row[i];
    }
    dgate[a] = dot;
  }
}

}  // namespace jetmoe
