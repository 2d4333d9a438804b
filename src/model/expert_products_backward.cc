// Backward of the routing, of the grouped expert products and of the gated combine (router.cc,
// expert_products.cc) over a stacked batch: gathers into expert order, the products each expert
// adds to a parallel pass, and the sums back onto tokens.
#include <algorithm>

#include "core/error.h"
#include "kernels/ref/backward_ops.h"
#include "model/row_ranges.h"
#include "model/sublayer_backward.h"

namespace jetmoe {

Fp32Weight::Fp32Weight(const TensorView& w) : data_(static_cast<const float*>(w.data)) {
  if (w.dtype != DType::F32) {
    copy_.resize(size_t(w.numel()));
    to_f32(w.dtype, w.data, copy_.data(), copy_.size());
    data_ = copy_.data();
  }
}

BackwardWeight::BackwardWeight(const TensorView& w) : view_(w) {
  if (w.dtype != DType::F32 && w.dtype != DType::BF16 && w.dtype != DType::F16) {
    copy_.resize(size_t(w.numel()));
    to_f32(w.dtype, w.data, copy_.data(), copy_.size());
    view_ = TensorView{DType::F32, w.shape, copy_.data()};
  }
}

std::vector<const float*> stacked_rows(const BatchRows& rows, std::span<const float* const> per_sequence, int64_t width,
                                       int64_t rows_per_token) {
  JM_CHECK(int64_t(per_sequence.size()) == rows.sequences());
  std::vector<const float*> out;
  out.reserve(size_t(rows.tokens() * rows_per_token));
  for (int64_t b = 0; b < rows.sequences(); ++b)
    for (int64_t r = 0; r < rows.length(b) * rows_per_token; ++r) out.push_back(per_sequence[size_t(b)] + r * width);
  return out;
}

std::vector<const float*> stacked_expert_rows(const BatchRows& rows, std::span<const float* const> per_sequence,
                                              std::span<const Routing* const> routings, int64_t width) {
  JM_CHECK(int64_t(per_sequence.size()) == rows.sequences() && routings.size() == per_sequence.size());
  std::vector<const float*> out;
  for (int64_t b = 0; b < rows.sequences(); ++b)
    for (int64_t i : routings[size_t(b)]->position) out.push_back(per_sequence[size_t(b)] + i * width);
  return out;
}

BatchRouting stack_routing(const BatchRows& rows, std::span<const Routing* const> routings) {
  JM_CHECK(!routings.empty() && int64_t(routings.size()) == rows.sequences());
  BatchRouting out;
  out.num_experts = routings[0]->num_experts;
  out.top_k = routings[0]->top_k;
  const int64_t E = out.num_experts, k = out.top_k;
  for (int64_t b = 0; b < rows.sequences(); ++b) {
    const Routing& r = *routings[size_t(b)];
    JM_CHECK(r.num_tokens == rows.length(b) && r.num_experts == E && r.top_k == k, "routing of sequence ", b);
    out.expert.insert(out.expert.end(), r.expert.begin(), r.expert.end());
    out.gate.insert(out.gate.end(), r.gate.begin(), r.gate.end());
  }
  out.offsets.assign(size_t(E + 1), 0);
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t b = 0; b < rows.sequences(); ++b) {
      const Routing& r = *routings[size_t(b)];
      const int64_t base = rows.first[size_t(b)] * k;
      for (int64_t i = r.offsets[size_t(e)]; i < r.offsets[size_t(e) + 1]; ++i)
        out.by_expert.push_back(base + r.by_expert[size_t(i)]);
    }
    out.offsets[size_t(e) + 1] = int64_t(out.by_expert.size());
  }
  out.position.resize(out.by_expert.size());
  for (size_t i = 0; i < out.by_expert.size(); ++i) out.position[size_t(out.by_expert[i])] = int64_t(i);
  return out;
}

void combine_gated_backward(const BatchRouting& r, const std::vector<const float*>& rows, const float* dy, int64_t d,
                            float* expert_dout, float* dgate, ThreadPool& pool) {
  const int64_t k = r.top_k;
  for_row_ranges(pool, r.assignments(), 2 * d, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t a = r.by_expert[size_t(i)];
      const float* g = dy + (a / k) * d;
      const float* row = rows[size_t(a)];
      const float gate = r.gate[size_t(a)];
      float* drow = expert_dout + i * d;
      float dot = 0.0f;
      for (int64_t j = 0; j < d; ++j) {
        drow[j] = gate * g[j];
        dot += g[j] * row[j];
      }
      dgate[a] = dot;
    }
  });
}

void gather_to_experts(const BatchRouting& r, const std::vector<const float*>& src, bool per_token, int64_t width,
                       float* out, ThreadPool& pool) {
  for_row_ranges(pool, r.assignments(), width, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t a = r.by_expert[size_t(i)];
      const float* row = src[size_t(per_token ? a / r.top_k : a)];
      std::copy(row, row + width, out + i * width);
    }
  });
}

void add_expert_products(const BatchRouting& r, const TensorView& W, const float* dout, const float* in, float* dW,
                         float* din, std::vector<ops::BackwardProduct>& products) {
  JM_CHECK(W.shape.size() == 3 && W.shape[0] == r.num_experts, "expert stack ", shape_str(W.shape));
  const int64_t out_dim = W.shape[1], in_dim = W.shape[2];
  for (int64_t e = 0; e < r.num_experts; ++e) {
    const int64_t n = r.count(e), first = r.offsets[size_t(e)];
    if (n == 0) continue;
    const float* dout_e = dout + first * out_dim;
    products.push_back(ops::weight_gradient(dout_e, out_dim, in + first * in_dim, in_dim, n, out_dim, in_dim,
                                            dW + e * out_dim * in_dim));
    products.push_back(ops::input_gradient(dout_e, out_dim, n, W.slice0(e), din + first * in_dim, in_dim));
  }
}

MixtureOutputGrads mixture_output_backward(const BatchRows& rows, const BatchRouting& r,
                                           const std::vector<const float*>& expert_out,
                                           std::span<const float* const> h,
                                           const float* dy, const float* aux_grad, int64_t d, float* dbias,
                                           BackwardScratch& s, ThreadPool& pool) {
  const int64_t N = rows.tokens(), NK = r.assignments();
  kernels::add_bias_backward(dy, N, d, dbias);
  float* dexpert_out = scratch_floats(s.expert_dout, NK * d);
  float* dgate = scratch_floats(s.dgate, NK);
  combine_gated_backward(r, expert_out, dy, d, dexpert_out, dgate, pool);
  // The router's logits: gates (softmax over the chosen k) and auxiliary losses.
  float* dlogits = scratch_floats(s.router_dlogits, N * r.num_experts);
  router_logits_backward(r, dgate, aux_grad, dlogits);
  float* h_stacked = scratch_floats(s.stacked_in, N * d);
  for (int64_t b = 0; b < rows.sequences(); ++b)
    std::copy(h[size_t(b)], h[size_t(b)] + rows.length(b) * d, h_stacked + rows.first[size_t(b)] * d);
  return {dexpert_out, dlogits, h_stacked};
}

OutputStackGrads output_stack_backward(const BatchRows& rows, const BatchRouting& r, const MixtureOutputGrads& out,
                                       const TensorView& W_out, float* dW_out, const std::vector<const float*>& mid,
                                       int64_t mid_width, const TensorView& W_router, float* dW_router, int64_t d,
                                       BackwardScratch& s, ThreadPool& pool, const ops::MatmulOptions& matmul) {
  const int64_t N = rows.tokens(), NK = r.assignments(), E = r.num_experts;
  const BackwardWeight router(W_router);
  float* dh_router = scratch_floats(s.dh_router, N * d);
  float* mid_e = scratch_floats(s.expert_mid, NK * mid_width);
  gather_to_experts(r, mid, /*per_token=*/false, mid_width, mid_e, pool);
  float* dmid_e = scratch_floats(s.expert_dmid, NK * mid_width);
  std::vector<ops::BackwardProduct> products;
  add_expert_products(r, W_out, out.dexpert_out, mid_e, dW_out, dmid_e, products);
  products.push_back(ops::weight_gradient(out.dlogits, E, out.h_stacked, d, N, E, d, dW_router));
  products.push_back(ops::input_gradient(out.dlogits, E, N, router.view(), dh_router, d));
  ops::backward_products(products, pool, matmul);
  return {dmid_e, dh_router};
}

void router_logits_backward(const BatchRouting& r, const float* dgate, const float* aux_grad, float* dlogits) {
  const int64_t E = r.num_experts, k = r.top_k, N = r.assignments() / k;
  if (aux_grad)
    std::copy(aux_grad, aux_grad + N * E, dlogits);
  else
    std::fill(dlogits, dlogits + N * E, 0.0f);
  std::vector<float> dtop(static_cast<size_t>(k));
  for (int64_t t = 0; t < N; ++t) {
    kernels::softmax_backward(r.gate.data() + t * k, dgate + t * k, k, dtop.data());
    for (int64_t s = 0; s < k; ++s) dlogits[t * E + r.expert[size_t(t * k + s)]] += dtop[size_t(s)];
  }
}

void sum_token_gradients(const BatchRouting& r, std::span<const float* const> base, const float* expert_dh, int64_t d,
                         int64_t tokens, float* dh, ThreadPool& pool) {
  const int64_t k = r.top_k;
  for_row_ranges(pool, tokens, (int64_t(base.size()) + k) * d, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* out = dh + t * d;
      if (base.empty())
        std::fill(out, out + d, 0.0f);
      else
        std::copy(base[0] + t * d, base[0] + (t + 1) * d, out);
      for (size_t p = 1; p < base.size(); ++p) {
        const float* src = base[p] + t * d;
        for (int64_t j = 0; j < d; ++j) out[j] += src[j];
      }
      for (int64_t s = 0; s < k; ++s) {
        const float* src = expert_dh + r.position[size_t(t * k + s)] * d;
        for (int64_t j = 0; j < d; ++j) out[j] += src[j];
      }
    }
  });
}

}  // namespace jetmoe
