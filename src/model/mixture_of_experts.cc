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

  float* up = scratch_floats(scratch.up, T * k * 2 * F);  // [T*k, 2F] per assignment
  expert_matmul(routing, h, d, /*per_assignment=*/false, w.mlp_in, up, pool, matmul, scratch.experts);
  float* act = scratch_floats(scratch.act, T * k * F);     // [T*k, F]
  ops::silu_glu(up, T * k, F, act, pool);
  float* down = scratch_floats(scratch.down, T * k * d);   // [T*k, d]
  expert_matmul(routing, act, F, /*per_assignment=*/true, w.mlp_out, down, pool, matmul, scratch.experts);

  combine_gated(routing, down, d, w.mlp_bias, y, pool);  // the bias once, after the gated sum (P7)
  if (tape) {
    tape->up = std::move(scratch.up);
    tape->act = std::move(scratch.act);
    tape->down = std::move(scratch.down);
  }
  return routing;
}

}  // namespace jetmoe
