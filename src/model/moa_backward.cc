// Backward of the mixture of attention (mixture_of_attention.cc) over a stacked batch, steps in
// reverse order. Two parallel passes of products: Wo's (with the router's), then Wq's with
// kv_proj's; causal attention in between, one work item per sequence and KV head (query head j
// of every slot reads KV head j, so each item writes only its own columns).
#include <algorithm>

#include "kernels/attention_backward.h"
#include "model/sublayer_backward.h"

namespace jetmoe {
namespace {

// Backward of RoPE (rotation by -pos, Rope::apply's arithmetic) on `heads` heads of D floats,
// head_stride apart, all at position pos: cos / sin computed once for them.
void rope_backward_heads(const kernels::Rope& rope, float* x, int64_t heads, int64_t head_stride, int64_t pos,
                         float* cos, float* sin) {
  const int64_t half = rope.half();
  rope.cos_sin(-pos, cos, sin);
  for (int64_t h = 0; h < heads; ++h) {
    float* head = x + h * head_stride;
    for (int64_t i = 0; i < half; ++i) {
      const float a = head[i], b = head[i + half];
      head[i] = a * cos[i] - b * sin[i];
      head[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

}  // namespace

void mixture_of_attention_backward(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope,
                                   const BatchRows& rows, std::span<const AttentionTape* const> tapes,
                                   std::span<const float* const> h, const float* dy, const float* router_grad,
                                   LayerGradients& g, float* dh, BackwardScratch& s, ThreadPool& pool,
                                   const ops::MatmulOptions& matmul) {
  const int64_t N = rows.tokens(), B = rows.sequences(), d = c.hidden_size, k = c.top_k;
  const int64_t H = c.num_kv_heads, D = c.head_dim, HD = c.kv_proj_size();
  std::vector<const Routing*> routings;
  std::vector<const float*> projected, heads;
  for (const AttentionTape* tape : tapes) {
    routings.push_back(&tape->routing);
    projected.push_back(tape->projected.data());
    heads.push_back(tape->heads.data());
  }
  const BatchRouting r = stack_routing(rows, routings);
  const int64_t NK = r.assignments();

  // y = sum_s gate_s * projected_s + bias
  const MixtureOutputGrads out = mixture_output_backward(rows, r, stacked_expert_rows(rows, projected, routings, d), h,
                                                        dy, router_grad, d, g.attn_bias, s, pool);
  const float* h_stacked = out.h_stacked;

  // projected = Wo[e] · heads;  router logits = Wr · h
  const OutputStackGrads stack =
      output_stack_backward(rows, r, out, w.attn_o, g.attn_o, stacked_rows(rows, heads, HD, k), HD, w.attn_router,
                            g.attn_router, d, s, pool, matmul);
  const float* dheads_e = stack.dmid_experts;

  // heads = causal attention of the post-RoPE queries over the shared keys and values
  float* dheads = scratch_floats(s.dheads, NK * HD);
  pool.parallel_for(NK, [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a)
      std::copy(dheads_e + r.position[size_t(a)] * HD, dheads_e + (r.position[size_t(a)] + 1) * HD, dheads + a * HD);
  });
  float* dq = scratch_floats(s.dq, NK * HD);
  float* dkv = scratch_floats(s.dkv, N * 2 * HD);
  std::vector<ops::AttentionBackwardHead> attention_heads;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < H; ++j) {
      const AttentionTape& tape = *tapes[size_t(b)];
      const int64_t row0 = rows.first[size_t(b)];
      ops::AttentionBackwardHead head;
      head.q = tape.queries.data() + j * D, head.q_stride = HD;
      head.dout = dheads + row0 * k * HD + j * D, head.dout_stride = HD;
      head.keys = tape.keys.data() + j * D, head.values = tape.values.data() + j * D, head.kv_stride = HD;
      head.dq = dq + row0 * k * HD + j * D, head.dq_stride = HD;
      head.dkeys = dkv + row0 * 2 * HD + j * D, head.dvalues = dkv + row0 * 2 * HD + HD + j * D;
      head.dkv_stride = 2 * HD;
      head.rows = rows.length(b) * k, head.slots = k, head.positions = rows.length(b), head.head_dim = D;
      attention_heads.push_back(head);
    }
  ops::attention_backward(attention_heads, pool);

  // RoPE on every query head and every key head (positions 0 .. T-1 of each sequence)
  pool.parallel_for(N, [&](int64_t begin, int64_t end) {
    std::vector<float> cos(size_t(rope.half())), sin(size_t(rope.half()));
    int64_t b = 0;
    for (int64_t row = begin; row < end; ++row) {
      while (row >= rows.first[size_t(b) + 1]) ++b;
      const int64_t pos = row - rows.first[size_t(b)];
      rope_backward_heads(rope, dq + row * k * HD, k * H, D, pos, cos.data(), sin.data());
      rope_backward_heads(rope, dkv + row * 2 * HD, H, D, pos, cos.data(), sin.data());
    }
  });

  // queries = Wq[e] · h (both slots of a token read the same h row);  [K | V] = kv_proj · h
  float* dq_e = scratch_floats(s.expert_dwide, NK * HD);
  std::vector<const float*> dq_rows(static_cast<size_t>(NK));
  for (int64_t a = 0; a < NK; ++a) dq_rows[size_t(a)] = dq + a * HD;
  gather_to_experts(r, dq_rows, /*per_token=*/false, HD, dq_e, pool);
  float* h_e = scratch_floats(s.expert_in, NK * d);
  gather_to_experts(r, stacked_rows(rows, h, d, 1), /*per_token=*/true, d, h_e, pool);
  float* dh_e = scratch_floats(s.expert_dh, NK * d);
  float* dh_kv = scratch_floats(s.dh_dense, N * d);
  const BackwardWeight kv_proj(w.kv_proj);
  std::vector<ops::BackwardProduct> products;
  add_expert_products(r, w.attn_q, dq_e, h_e, g.attn_q, dh_e, products);
  products.push_back(ops::weight_gradient(dkv, 2 * HD, h_stacked, d, N, 2 * HD, d, g.kv_proj));
  products.push_back(ops::input_gradient(dkv, 2 * HD, N, kv_proj.view(), dh_kv, d));
  ops::backward_products(products, pool, matmul);

  const float* base[] = {dh_kv, stack.dh_router};
  sum_token_gradients(r, base, dh_e, d, N, dh, pool);
}

}  // namespace jetmoe
