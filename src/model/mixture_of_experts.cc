#include "model/mixture_of_experts.h"

#include <algorithm>

#include "kernels/ops.h"
#include "model/expert_products.h"

namespace jetmoe {

Routing mixture_of_experts(const LayerWeights& w, const JetMoeConfig& c, const float* h, int64_t T, float* y,
                           ThreadPool& pool, ForwardScratch& scratch, ExpertsTape* tape,
                           const ops::MatmulOptions& matmul) {
  const int64_t d = c.hidden_size, F = c.intermediate_size, k = c.top_k;
  Routing routing = route(h, T, w.mlp_router, k, pool);

  // Every activation stays in expert order from the gather of h to the gated combine.
  const int64_t NK = T * k;
  float* h_e = scratch_floats(scratch.experts.gathered, NK * d);
  gather_to_expert_order(routing, h, d, /*per_assignment=*/false, d, h_e, pool);
  float* up = scratch_floats(scratch.up, NK * 2 * F);  // [T*k, 2F]
  expert_products(routing, h_e, w.mlp_in, up, pool, matmul);
  float* act = scratch_floats(scratch.act, NK * F);     // [T*k, F]
  ops::silu_glu(up, NK, F, act, pool);
  float* down = scratch_floats(scratch.down, NK * d);   // [T*k, d]
  expert_products(routing, act, w.mlp_out, down, pool, matmul);

  combine_gated(routing, down, d, w.mlp_bias, y, pool);  // the bias once, after the gated sum (P7)
  if (tape) {
    tape->up = std::move(scratch.up);
    tape->act = std::move(scratch.act);
    tape->down = std::move(scratch.down);
  }
  return routing;
}

}  // namespace jetmoe
