#include "model/backward.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/backward_products.h"
#include "kernels/ref/backward_ops.h"
#include "model/loss.h"
#include "model/router_losses.h"
#include "model/sublayer_backward.h"

namespace jetmoe {
namespace {

// The auxiliary losses of one router over the whole batch, and their gradient with respect to
// each sequence's router logits ([T_b, E] per sequence).
struct RouterGrad {
  RouterAuxLoss loss;
  std::vector<std::vector<float>> per_sequence;
};

RouterGrad router_losses_over_batch(std::span<const ForwardTape> tapes, int64_t layer, bool attention, int64_t E,
                                    int64_t k, const LossOptions& options) {
  std::vector<float> logits;
  std::vector<int32_t> experts;
  for (const ForwardTape& tape : tapes) {
    const LayerTape& lt = tape.layers[size_t(layer)];
    const Routing& r = attention ? lt.attn.routing : lt.mlp.routing;
    logits.insert(logits.end(), r.logits.begin(), r.logits.end());
    experts.insert(experts.end(), r.expert.begin(), r.expert.end());
  }
  const int64_t N = int64_t(experts.size()) / k;
  std::vector<float> grad(size_t(N * E));
  RouterGrad out;
  out.loss = router_aux_loss(logits.data(), experts.data(), N, E, k, options.aux_coef, options.z_coef, grad.data());
  int64_t offset = 0;
  for (const ForwardTape& tape : tapes) {
    const int64_t T = int64_t(tape.tokens.size());
    out.per_sequence.emplace_back(grad.begin() + offset * E, grad.begin() + (offset + T) * E);
    offset += T;
  }
  return out;
}

int64_t count_scored(std::span<const int64_t> labels) {
  int64_t n = 0;
  for (size_t t = 1; t < labels.size(); ++t) n += labels[t] >= 0;
  return n;
}

// dx += rmsnorm backward of dy (through `weight`, eps) at input x; dweight accumulates.
void add_rmsnorm_backward(const float* x, const TensorView& weight, double eps, int64_t T, int64_t d, const float* dy,
                          float* dweight, float* dx) {
  const Fp32Weight w(weight);
  std::vector<float> dx_norm(size_t(T * d));
  kernels::rmsnorm_backward(x, w.data(), eps, T, d, dy, dx_norm.data(), dweight);
  for (int64_t i = 0; i < T * d; ++i) dx[i] += dx_norm[size_t(i)];
}

}  // namespace

LossTerms backward(const JetMoeConfig& c, const ModelWeights& weights, std::span<const ForwardTape> tapes,
                   std::span<const FloatTensor> logits, std::span<const std::span<const int64_t>> labels,
                   const LossOptions& options, Gradients& grads, ThreadPool& pool) {
  const int64_t B = int64_t(tapes.size()), L = c.num_layers, E = c.num_experts, k = c.top_k;
  const int64_t d = c.hidden_size, V = c.vocab_size;
  if (B == 0) fail("backward: empty batch");
  if (logits.size() != tapes.size() || labels.size() != tapes.size())
    fail("backward: ", B, " tapes but ", logits.size(), " logits and ", labels.size(), " label rows");
  for (int64_t b = 0; b < B; ++b) {
    const int64_t T = int64_t(tapes[size_t(b)].tokens.size());
    if (int64_t(labels[size_t(b)].size()) != T && int64_t(labels[size_t(b)].size()) != T + 1)
      fail("backward: sequence ", b, " has ", T, " tokens but ", labels[size_t(b)].size(), " labels");
    if (logits[size_t(b)].shape != Shape{T, V} || int64_t(tapes[size_t(b)].layers.size()) != L)
      fail("backward: sequence ", b, " was not recorded by a full training forward of this model");
  }

  LossTerms terms;
  for (const auto& row : labels) terms.scored_tokens += count_scored(row);
  const double ce_scale = terms.scored_tokens > 0 ? 1.0 / double(terms.scored_tokens) : 0.0;

  // Head and final norm: logits = rmsnorm(x) · head^T. dx[b] is the residual stream's gradient.
  std::vector<std::vector<float>> dx(static_cast<size_t>(B));
  {
    const Fp32Weight head(weights.lm_head);
    const ops::TransposedWeight head_t(head.data(), V, d, pool);  // shared by every sequence
    double nll = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      const ForwardTape& tape = tapes[size_t(b)];
      const int64_t T = int64_t(tape.tokens.size());
      FloatTensor dlogits;
      nll += next_token_nll_sum_backward(logits[size_t(b)], labels[size_t(b)], ce_scale, dlogits, nullptr);
      ops::matmul_backward_weight(dlogits.data(), tape.final_norm.data(), T, V, d, grads.lm_head, pool);
      std::vector<float> dnorm(size_t(T * d));
      ops::matmul_backward_input(dlogits.data(), T, head_t, dnorm.data(), pool);
      dx[size_t(b)].assign(size_t(T * d), 0.0f);
      add_rmsnorm_backward(tape.final_in.data(), weights.final_norm, c.rms_norm_eps, T, d, dnorm.data(),
                           grads.final_norm, dx[size_t(b)].data());
    }
    terms.ce = nll * ce_scale;
  }

  // Auxiliary losses of every router over the whole batch (they only need the routing).
  std::vector<RouterGrad> attn_aux, mlp_aux;
  for (int64_t l = 0; l < L; ++l) {
    attn_aux.push_back(router_losses_over_batch(tapes, l, /*attention=*/true, E, k, options));
    mlp_aux.push_back(router_losses_over_batch(tapes, l, /*attention=*/false, E, k, options));
    for (const RouterGrad* r : {&attn_aux.back(), &mlp_aux.back()}) {
      terms.load_balance += r->loss.load_balance;
      terms.z_loss += r->loss.z_loss;
      terms.expert_fraction.push_back(r->loss.fraction);
    }
  }
  terms.total = terms.ce + options.aux_coef * terms.load_balance + options.z_coef * terms.z_loss;

  // Blocks in reverse: x_mid = x + MoA(norm_in(x)); x_out = x_mid + MoE(norm_post(x_mid)).
  const kernels::Rope rope(c.head_dim, c.rope_theta);
  for (int64_t l = L - 1; l >= 0; --l) {
    const LayerWeights& w = weights.layers[size_t(l)];
    LayerGradients& g = grads.layers[size_t(l)];
    for (int64_t b = 0; b < B; ++b) {
      const LayerTape& lt = tapes[size_t(b)].layers[size_t(l)];
      const int64_t T = int64_t(tapes[size_t(b)].tokens.size());
      float* dxb = dx[size_t(b)].data();
      std::vector<float> dh(size_t(T * d));
      mixture_of_experts_backward(w, c, lt.mlp, lt.mlp_norm.data(), dxb,
                                  mlp_aux[size_t(l)].per_sequence[size_t(b)].data(), g, dh.data(), pool);
      add_rmsnorm_backward(lt.mlp_in.data(), w.post_norm, JetMoeConfig::kBlockNormEps, T, d, dh.data(), g.post_norm,
                           dxb);
      mixture_of_attention_backward(w, c, rope, lt.attn, lt.attn_norm.data(), dxb,
                                    attn_aux[size_t(l)].per_sequence[size_t(b)].data(), g, dh.data(), pool);
      add_rmsnorm_backward(lt.attn_in.data(), w.input_norm, JetMoeConfig::kBlockNormEps, T, d, dh.data(), g.input_norm,
                           dxb);
    }
  }

  // Embedding rows: x = embed[token] (the tied head's gradient is already in the same buffer).
  for (int64_t b = 0; b < B; ++b) {
    const ForwardTape& tape = tapes[size_t(b)];
    for (size_t t = 0; t < tape.tokens.size(); ++t) {
      float* row = grads.embed + int64_t(tape.tokens[t]) * d;
      const float* src = dx[size_t(b)].data() + int64_t(t) * d;
      for (int64_t i = 0; i < d; ++i) row[i] += src[i];
    }
  }
  return terms;
}

LossTerms forward_backward(const Model& model, std::span<const TrainingSequence> batch, const LossOptions& options,
                           Gradients& grads, ThreadPool& pool) {
  std::vector<ForwardTape> tapes(batch.size());
  std::vector<FloatTensor> logits(batch.size());
  std::vector<std::span<const int64_t>> labels;
  for (size_t b = 0; b < batch.size(); ++b) {
    if (batch[b].labels.size() != batch[b].tokens.size() && batch[b].labels.size() != batch[b].tokens.size() + 1)
      fail("training sequence ", b, ": ", batch[b].tokens.size(), " tokens but ", batch[b].labels.size(), " labels");
    KvCache cache = model.make_cache(std::max<int64_t>(1, int64_t(batch[b].tokens.size())));
    model.forward(batch[b].tokens, cache, logits[b], pool, LogitsMode::All, nullptr, &tapes[b]);
    labels.push_back(batch[b].labels);
  }
  return backward(model.config(), model.weights(), tapes, logits, labels, options, grads, pool);
}

}  // namespace jetmoe
