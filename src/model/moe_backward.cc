// Backward of the mixture of GLU MLP experts (mixture_of_experts.cc) over a stacked batch, steps
// in reverse order. Two parallel passes of products: W_out's (with the router's), then W_in's.

#include "kernels/ops.h"
#include "model/sublayer_backward.h"

namespace jetmoe {

void mixture_of_experts_backward(const LayerWeights& w, const JetMoeConfig& c, const BatchRows& rows,
                                 std::span<const ExpertsTape* const> tapes, std::span<const float* const> h,
                                 const float* dy, const float* router_grad, LayerGradients& g, float* dh,
                                 BackwardScratch& s, ThreadPool& pool, const ops::MatmulOptions& matmul) {
  const int64_t N = rows.tokens(), d = c.hidden_size, F = c.intermediate_size;
  std::vector<const Routing*> routings;
  std::vector<const float*> down, act, up;
  for (const ExpertsTape* tape : tapes) {
    routings.push_back(&tape->routing);
    down.push_back(tape->down.data());
    act.push_back(tape->act.data());
    up.push_back(tape->up.data());
  }
  const BatchRouting r = stack_routing(rows, routings);
  const int64_t NK = r.assignments();

  // y = sum_s gate_s * down_s + bias
  const MixtureOutputGrads out = mixture_output_backward(rows, r, stacked_expert_rows(rows, down, routings, d), h, dy,
                                                        router_grad, d, g.mlp_bias, s, pool);

  // down = W_out[e] · act;  router logits = Wr · h
  const OutputStackGrads stack = output_stack_backward(rows, r, out, w.mlp_out, g.mlp_out,
                                                       stacked_expert_rows(rows, act, routings, F), F, w.mlp_router,
                                                       g.mlp_router, d, s, pool, matmul);
  const float* dact = stack.dmid_experts;

  // act = silu(up[:F]) * up[F:]
  float* up_e = scratch_floats(s.expert_wide, NK * 2 * F);
  gather_to_experts(r, stacked_expert_rows(rows, up, routings, 2 * F), /*per_token=*/false, 2 * F, up_e, pool);
  float* dup = scratch_floats(s.expert_dwide, NK * 2 * F);
  ops::silu_glu_backward(up_e, dact, NK, F, dup, pool);

  // up = W_in[e] · h   (both slots of a token read the same h row)
  float* h_e = scratch_floats(s.expert_in, NK * d);
  gather_to_experts(r, stacked_rows(rows, h, d, 1), /*per_token=*/true, d, h_e, pool);
  float* dh_e = scratch_floats(s.expert_dh, NK * d);
  std::vector<ops::BackwardProduct> products;
  add_expert_products(r, w.mlp_in, dup, h_e, g.mlp_in, dh_e, products);
  ops::backward_products(products, pool, matmul);

  const float* base[] = {stack.dh_router};
  sum_token_gradients(r, base, dh_e, d, N, dh, pool);
}

}  // namespace jetmoe
