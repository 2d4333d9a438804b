// Backward of the mixture of GLU MLP experts (mixture_of_experts.cc), steps in reverse order.
#include "kernels/ref/backward_ops.h"
#include "model/sublayer_backward.h"

namespace jetmoe {

void mixture_of_experts_backward(const LayerWeights& w, const JetMoeConfig& c, const ExpertsTape& tape, const float* h,
                                 const float* dy, const float* router_grad, LayerGradients& g, float* dh,
                                 ThreadPool& pool) {
  const Routing& r = tape.routing;
  const int64_t T = r.num_tokens, d = c.hidden_size, F = c.intermediate_size, k = c.top_k;

  // y = sum_s gate_s * down_s + bias
  kernels::add_bias_backward(dy, T, d, g.mlp_bias);
  std::vector<float> ddown(size_t(T * k * d)), dgate(size_t(T * k));
  combine_gated_backward(r, tape.down.data(), dy, d, ddown.data(), dgate.data());

  // down = W_out[e] · act
  std::vector<float> dact(size_t(T * k * F), 0.0f);
  expert_matmul_backward(r, tape.act.data(), F, /*per_assignment=*/true, w.mlp_out, ddown.data(), dact.data(),
                         g.mlp_out, pool);

  // act = silu(up[:F]) * up[F:]
  std::vector<float> dup(size_t(T * k * 2 * F));
  kernels::silu_glu_backward(tape.up.data(), dact.data(), T * k, F, dup.data());

  // up = W_in[e] · h   (both slots of a token read the same h row)
  std::fill(dh, dh + T * d, 0.0f);
  expert_matmul_backward(r, h, d, /*per_assignment=*/false, w.mlp_in, dup.data(), dh, g.mlp_in, pool);

  router_backward(r, dgate.data(), router_grad, h, w.mlp_router, g.mlp_router, dh, pool);
}

}  // namespace jetmoe
