// Backward of the mixture of attention (mixture_of_attention.cc), steps in reverse order.
#include <algorithm>
#include <cmath>

#include "kernels/backward_products.h"
#include "kernels/ref/backward_ops.h"
#include "model/sublayer_backward.h"

namespace jetmoe {
namespace {

// Backward of causal attention from position 0 (attend() with an empty cache). Probabilities are
// recomputed from the queries and keys exactly as the forward computed them.
// q, dheads, dq: [T*k, H*D]; keys, values, dkeys, dvalues: [T, H*D]. Query head j of every slot
// reads KV head j (tile mapping), so splitting the work by j keeps the dkeys/dvalues sums private.
void attend_backward(const float* q, const float* keys, const float* values, const float* dheads, int64_t T, int64_t k,
                     int64_t H, int64_t D, float* dq, float* dkeys, float* dvalues, ThreadPool& pool) {
  const int64_t HD = H * D;
  const float scale = 1.0f / std::sqrt(float(D));
  std::fill(dkeys, dkeys + T * HD, 0.0f);
  std::fill(dvalues, dvalues + T * HD, 0.0f);
  pool.parallel_for(H, [&](int64_t head_begin, int64_t head_end) {
    std::vector<float> probs(static_cast<size_t>(T)), dprobs(static_cast<size_t>(T)), dscores(static_cast<size_t>(T));
    for (int64_t j = head_begin; j < head_end; ++j) {
      for (int64_t a = 0; a < T * k; ++a) {
        const int64_t n_keys = a / k + 1;  // causal: positions 0 .. t
        const float* qh = q + a * HD + j * D;
        const float* dout = dheads + a * HD + j * D;
        for (int64_t p = 0; p < n_keys; ++p) {
          const float* kh = keys + p * HD + j * D;
          float s = 0.0f;
          for (int64_t i = 0; i < D; ++i) s += qh[i] * kh[i];
          probs[size_t(p)] = s * scale;
        }
        kernels::softmax(probs.data(), n_keys);
        // out = sum_p probs_p * v_p
        for (int64_t p = 0; p < n_keys; ++p) {
          const float* vh = values + p * HD + j * D;
          float* dvh = dvalues + p * HD + j * D;
          float dot = 0.0f;
          for (int64_t i = 0; i < D; ++i) {
            dot += dout[i] * vh[i];
            dvh[i] += probs[size_t(p)] * dout[i];
          }
          dprobs[size_t(p)] = dot;
        }
        kernels::softmax_backward(probs.data(), dprobs.data(), n_keys, dscores.data());
        // scores_p = scale * q · k_p
        float* dqh = dq + a * HD + j * D;
        std::fill(dqh, dqh + D, 0.0f);
        for (int64_t p = 0; p < n_keys; ++p) {
          const float ds = dscores[size_t(p)] * scale;
          const float* kh = keys + p * HD + j * D;
          float* dkh = dkeys + p * HD + j * D;
          for (int64_t i = 0; i < D; ++i) {
            dqh[i] += ds * kh[i];
            dkh[i] += ds * qh[i];
          }
        }
      }
    }
  });
}

}  // namespace

void mixture_of_attention_backward(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope,
                                   const AttentionTape& tape, const float* h, const float* dy, const float* router_grad,
                                   LayerGradients& g, float* dh, ThreadPool& pool) {
  const Routing& r = tape.routing;
  const int64_t T = r.num_tokens, d = c.hidden_size, k = c.top_k, H = c.num_kv_heads, D = c.head_dim;
  const int64_t HD = c.kv_proj_size();

  // y = sum_s gate_s * projected_s + bias
  kernels::add_bias_backward(dy, T, d, g.attn_bias);
  std::vector<float> dprojected(size_t(T * k * d)), dgate(size_t(T * k));
  combine_gated_backward(r, tape.projected.data(), dy, d, dprojected.data(), dgate.data());

  // projected = Wo[e] · heads
  std::vector<float> dheads(size_t(T * k * HD), 0.0f);
  expert_matmul_backward(r, tape.heads.data(), HD, /*per_assignment=*/true, w.attn_o, dprojected.data(), dheads.data(),
                         g.attn_o, pool);

  // heads = causal attention of the post-RoPE queries over the shared keys and values
  std::vector<float> dq(size_t(T * k * HD)), dkv(size_t(T * 2 * HD));
  std::vector<float> dkeys(size_t(T * HD)), dvalues(size_t(T * HD));
  attend_backward(tape.queries.data(), tape.keys.data(), tape.values.data(), dheads.data(), T, k, H, D, dq.data(),
                  dkeys.data(), dvalues.data(), pool);

  // RoPE on every query head and every key head (positions 0 .. T-1)
  for (int64_t a = 0; a < T * k; ++a)
    for (int64_t j = 0; j < H; ++j) kernels::rope_backward(rope, dq.data() + a * HD + j * D, a / k);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < H; ++j) kernels::rope_backward(rope, dkeys.data() + t * HD + j * D, t);

  // queries = Wq[e] · h   (both slots of a token read the same h row)
  std::fill(dh, dh + T * d, 0.0f);
  expert_matmul_backward(r, h, d, /*per_assignment=*/false, w.attn_q, dq.data(), dh, g.attn_q, pool);

  // [K | V] = kv_proj · h
  for (int64_t t = 0; t < T; ++t) {
    std::copy(dkeys.data() + t * HD, dkeys.data() + (t + 1) * HD, dkv.data() + t * 2 * HD);
    std::copy(dvalues.data() + t * HD, dvalues.data() + (t + 1) * HD, dkv.data() + t * 2 * HD + HD);
  }
  ops::matmul_backward_weight(dkv.data(), h, T, 2 * HD, d, g.kv_proj, pool);
  const Fp32Weight kv_proj(w.kv_proj);
  std::vector<float> dh_kv(size_t(T * d));
  ops::matmul_backward_input(dkv.data(), T, kv_proj.data(), 2 * HD, d, dh_kv.data(), pool);
  for (int64_t i = 0; i < T * d; ++i) dh[i] += dh_kv[size_t(i)];

  router_backward(r, dgate.data(), router_grad, h, w.attn_router, g.attn_router, dh, pool);
}

}  // namespace jetmoe
