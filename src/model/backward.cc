#include "model/backward.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/backward_products.h"
#include "kernels/cross_entropy.h"
#include "kernels/ref/backward_ops.h"
#include "model/loss.h"
#include "model/router_losses.h"
#include "model/sublayer_backward.h"

namespace jetmoe {
namespace {

// The auxiliary losses of one router over the whole batch, and their gradient with respect to
// the router logits of every token, stacked ([N, E], BatchRows order).
struct RouterGrad {
  RouterAuxLoss loss;
  std::vector<float> grad;
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
  RouterGrad out;
  out.grad.resize(size_t(N * E));
  out.loss = router_aux_loss(logits.data(), experts.data(), N, E, k, options.aux_coef, options.z_coef, out.grad.data());
  return out;
}

int64_t count_scored(std::span<const int64_t> labels) {
  int64_t n = 0;
  for (size_t t = 1; t < labels.size(); ++t) n += labels[t] >= 0;
  return n;
}

// Buffers of the whole pass besides the sublayers' (N stacked tokens), kept across calls by the
// calling thread so that training steps reuse their pages.
struct PassBuffers {
  BackwardScratch sublayer;
  std::vector<float> dlogits;   // [rows of a head chunk, V]
  std::vector<double> row_nll;  // [N]
  std::vector<float> stacked;   // [N, d] final-norm output (the head's input)
  std::vector<float> dnorm;     // [N, d] gradient of a norm's output
  std::vector<float> dx;        // [N, d] gradient of the residual stream
  std::vector<float> dx_norm;   // [T, d] one sequence's norm input gradient
};

PassBuffers& pass_buffers() {
  thread_local PassBuffers buffers;
  return buffers;
}

// dx += rmsnorm backward of dy (through `weight`, eps) at input x for each sequence of the batch
// (x: per-sequence [T_b, d]; dy, dx stacked); dweight accumulates.
void add_rmsnorm_backward(const BatchRows& rows, std::span<const float* const> x, const TensorView& weight, double eps,
                          int64_t d, const float* dy, float* dweight, float* dx, std::vector<float>& dx_norm) {
  const Fp32Weight w(weight);
  for (int64_t b = 0; b < rows.sequences(); ++b) {
    const int64_t T = rows.length(b), first = rows.first[size_t(b)];
    float* tmp = scratch_floats(dx_norm, T * d);
    kernels::rmsnorm_backward(x[size_t(b)], w.data(), eps, T, d, dy + first * d, tmp, dweight);
    float* out = dx + first * d;
    for (int64_t i = 0; i < T * d; ++i) out[i] += tmp[i];
  }
}

// Labels must name a token of the vocabulary (negative ones are ignored); checked up front, on
// the calling thread.
void check_labels(std::span<const std::span<const int64_t>> labels, int64_t V) {
  for (const std::span<const int64_t> row : labels)
    for (size_t t = 1; t < row.size(); ++t)
      if (row[t] >= V) fail("target id ", row[t], " at position ", t, " is outside the vocabulary [0, ", V, ")");
}

// Cross-entropy of stacked rows [row0, row1) against their next-token labels: dlogits
// [row1 - row0, V] (rows without a label are zero) and each row's loss in row_nll[row].
void cross_entropy_rows(const BatchRows& rows, int64_t row0, int64_t row1, std::span<const FloatTensor> logits,
                        std::span<const std::span<const int64_t>> labels, int64_t V, double ce_scale, float* dlogits,
                        double* row_nll, ThreadPool& pool) {
  pool.parallel_for(row1 - row0, [&](int64_t begin, int64_t end) {
    int64_t b = 0;
    for (int64_t row = row0 + begin; row < row0 + end; ++row) {
      while (row >= rows.first[size_t(b) + 1]) ++b;
      const size_t t = size_t(row - rows.first[size_t(b)]);
      const std::span<const int64_t> row_labels = labels[size_t(b)];
      const int64_t target = t + 1 < row_labels.size() ? row_labels[t + 1] : -1;
      float* out = dlogits + (row - row0) * V;
      row_nll[row] = 0.0;
      if (target < 0) {
        std::fill(out, out + V, 0.0f);
        continue;
      }
      const float* row_logits = logits[size_t(b)].data() + int64_t(t) * V;
      row_nll[row] = ops::cross_entropy_backward(row_logits, V, target, ce_scale, out);
    }
  });
}

// The head's backward takes whole sequences at a time, as many as fit in this many rows (or one
// longer sequence alone): their logit gradients [rows, V] are the pass's largest buffer.
constexpr int64_t kHeadChunkRows = 1024;

}  // namespace

LossTerms backward(const JetMoeConfig& c, const ModelWeights& weights, std::span<const ForwardTape> tapes,
                   std::span<const FloatTensor> logits, std::span<const std::span<const int64_t>> labels,
                   const LossOptions& options, Gradients& grads, ThreadPool& pool, const ops::MatmulOptions& matmul) {
  const int64_t B = int64_t(tapes.size()), L = c.num_layers, E = c.num_experts, k = c.top_k;
  const int64_t d = c.hidden_size, V = c.vocab_size;
  if (B == 0) fail("backward: empty batch");
  if (logits.size() != tapes.size() || labels.size() != tapes.size())
    fail("backward: ", B, " tapes but ", logits.size(), " logits and ", labels.size(), " label rows");
  BatchRows rows;
  rows.first.push_back(0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t T = int64_t(tapes[size_t(b)].tokens.size());
    if (int64_t(labels[size_t(b)].size()) != T && int64_t(labels[size_t(b)].size()) != T + 1)
      fail("backward: sequence ", b, " has ", T, " tokens but ", labels[size_t(b)].size(), " labels");
    if (logits[size_t(b)].shape != Shape{T, V} || int64_t(tapes[size_t(b)].layers.size()) != L)
      fail("backward: sequence ", b, " was not recorded by a full training forward of this model");
    rows.first.push_back(rows.first.back() + T);
  }
  const int64_t N = rows.tokens();
  PassBuffers& buf = pass_buffers();

  LossTerms terms;
  for (const auto& row : labels) terms.scored_tokens += count_scored(row);
  const double ce_scale = terms.scored_tokens > 0 ? 1.0 / double(terms.scored_tokens) : 0.0;

  // Head and final norm: logits = rmsnorm(x) · head^T, a chunk of sequences at a time (the head's
  // gradient sums its chunks in order). dx [N, d] is the residual stream's gradient from here on.
  float* dx = scratch_floats(buf.dx, N * d);
  {
    check_labels(labels, V);
    if (int64_t(buf.row_nll.size()) < N) buf.row_nll.resize(size_t(N));
    float* final_norm = scratch_floats(buf.stacked, N * d);
    for (int64_t b = 0; b < B; ++b)
      std::copy(tapes[size_t(b)].final_norm.begin(), tapes[size_t(b)].final_norm.end(),
                final_norm + rows.first[size_t(b)] * d);
    float* dnorm = scratch_floats(buf.dnorm, N * d);
    const BackwardWeight head(weights.lm_head);
    for (int64_t b0 = 0, b1 = 0; b0 < B; b0 = b1) {
      for (b1 = b0 + 1; b1 < B && rows.first[size_t(b1) + 1] - rows.first[size_t(b0)] <= kHeadChunkRows;) ++b1;
      const int64_t row0 = rows.first[size_t(b0)], n = rows.first[size_t(b1)] - row0;
      float* dlogits = scratch_floats(buf.dlogits, n * V);
      cross_entropy_rows(rows, row0, row0 + n, logits, labels, V, ce_scale, dlogits, buf.row_nll.data(), pool);
      const ops::BackwardProduct products[] = {
          ops::weight_gradient(dlogits, V, final_norm + row0 * d, d, n, V, d, grads.lm_head),
          ops::input_gradient(dlogits, V, n, head.view(), dnorm + row0 * d, d)};
      ops::backward_products(products, pool, matmul);
    }
    double nll = 0.0;
    for (int64_t b = 0; b < B; ++b) {  // per sequence, then over sequences
      double sequence_nll = 0.0;
      for (int64_t row = rows.first[size_t(b)]; row < rows.first[size_t(b) + 1]; ++row)
        sequence_nll += buf.row_nll[size_t(row)];
      nll += sequence_nll;
    }
    terms.ce = nll * ce_scale;

    std::fill(dx, dx + N * d, 0.0f);
    std::vector<const float*> final_in;
    for (const ForwardTape& tape : tapes) final_in.push_back(tape.final_in.data());
    add_rmsnorm_backward(rows, final_in, weights.final_norm, c.rms_norm_eps, d, dnorm, grads.final_norm, dx,
                         buf.dx_norm);
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
  float* dh = scratch_floats(buf.dnorm, N * d);
  for (int64_t l = L - 1; l >= 0; --l) {
    const LayerWeights& w = weights.layers[size_t(l)];
    LayerGradients& g = grads.layers[size_t(l)];
    std::vector<const ExpertsTape*> mlp;
    std::vector<const AttentionTape*> attn;
    std::vector<const float*> mlp_in, mlp_norm, attn_in, attn_norm;
    for (const ForwardTape& tape : tapes) {
      const LayerTape& lt = tape.layers[size_t(l)];
      mlp.push_back(&lt.mlp);
      attn.push_back(&lt.attn);
      mlp_in.push_back(lt.mlp_in.data());
      mlp_norm.push_back(lt.mlp_norm.data());
      attn_in.push_back(lt.attn_in.data());
      attn_norm.push_back(lt.attn_norm.data());
    }
    mixture_of_experts_backward(w, c, rows, mlp, mlp_norm, dx, mlp_aux[size_t(l)].grad.data(), g, dh, buf.sublayer,
                                pool, matmul);
    add_rmsnorm_backward(rows, mlp_in, w.post_norm, JetMoeConfig::kBlockNormEps, d, dh, g.post_norm, dx, buf.dx_norm);
    mixture_of_attention_backward(w, c, rope, rows, attn, attn_norm, dx, attn_aux[size_t(l)].grad.data(), g, dh,
                                  buf.sublayer, pool, matmul);
    add_rmsnorm_backward(rows, attn_in, w.input_norm, JetMoeConfig::kBlockNormEps, d, dh, g.input_norm, dx,
                         buf.dx_norm);
  }

  // Embedding rows: x = embed[token] (the tied head's gradient is already in the same buffer).
  for (int64_t b = 0; b < B; ++b) {
    const ForwardTape& tape = tapes[size_t(b)];
    for (size_t t = 0; t < tape.tokens.size(); ++t) {
      float* row = grads.embed + int64_t(tape.tokens[t]) * d;
      const float* src = dx + (rows.first[size_t(b)] + int64_t(t)) * d;
      for (int64_t i = 0; i < d; ++i) row[i] += src[i];
    }
  }
  return terms;
}

namespace {

// What a training step's forwards record, kept across steps by the calling thread: each step's
// tapes, logits and caches reuse the previous step's memory (hundreds of megabytes a step,
// which would otherwise be faulted in and zeroed again).
struct StepRecords {
  std::vector<ForwardTape> tapes;
  std::vector<FloatTensor> logits;
  std::vector<KvCache> caches;
};

StepRecords& step_records() {
  thread_local StepRecords records;
  return records;
}

}  // namespace

LossTerms forward_backward(const Model& model, std::span<const TrainingSequence> batch, const LossOptions& options,
                           Gradients& grads, ThreadPool& pool) {
  const size_t B = batch.size();
  for (size_t b = 0; b < B; ++b)
    if (batch[b].labels.size() != batch[b].tokens.size() && batch[b].labels.size() != batch[b].tokens.size() + 1)
      fail("training sequence ", b, ": ", batch[b].tokens.size(), " tokens but ", batch[b].labels.size(), " labels");

  const JetMoeConfig& c = model.config();
  StepRecords& records = step_records();
  if (records.tapes.size() < B) records.tapes.resize(B);
  if (records.logits.size() < B) records.logits.resize(B);
  std::vector<std::span<const int64_t>> labels;
  for (size_t b = 0; b < B; ++b) {
    const int64_t T = std::max<int64_t>(1, int64_t(batch[b].tokens.size()));
    if (records.caches.size() <= b) records.caches.push_back(model.make_cache(T));
    KvCache& cache = records.caches[b];
    if (cache.capacity() < T || !cache.fits(c)) cache = model.make_cache(T);  // too short, or another model's
    cache.clear();
    model.forward(batch[b].tokens, cache, records.logits[b], pool, LogitsMode::All, nullptr, &records.tapes[b]);
    labels.push_back(batch[b].labels);
  }
  return backward(model.config(), model.weights(), std::span(records.tapes.data(), B),
                  std::span(records.logits.data(), B), labels, options, grads, pool, model.matmul_options());
}

}  // namespace jetmoe
