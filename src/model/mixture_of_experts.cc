#include "model/mixture_of_experts.h"

#include <algorithm>

#include "kernels/ops.h"
#include "model/expert_products.h"

namespace jetmoe {

Routing mixture_of_experts(const LayerWeights& w, const JetMoeConfig& c, const float* h, int64_t T, float* y,
                           ThreadPool& pool, ExpertsTape* tape,
                           const ops::MatmulOptions& matmul) {
  const int64_t d = c.hidden_size, F = c.intermediate_size, k = c.top_k;
  Routing routing = route(h, T, w.mlp_router, k, pool);

  std::vector<float> up(size_t(T * k * 2 * F));  // [T*k, 2F] per assignment
  expert_matmul(routing, h, d, /*per_assignment=*/false, w.mlp_in, up.data(), pool, matmul);
  std::vector<float> act(size_t(T * k * F));     // [T*k, F]
  ops::silu_glu(up.data(), T * k, F, act.data(), pool);
  std::vector<float> down(size_t(T * k * d));    // [T*k, d]
  expert_matmul(routing, act.data(), F, /*per_assignment=*/true, w.mlp_out, down.data(), pool, matmul);

  std::fill(y, y + T * d, 0.0f);
  combine_gated(routing, down.data(), d, y);
  ops::add_bias(y, T, d, w.mlp_bias);  // once, after the gated sum (P7)
  if (tape) {
    tape->up = std::move(up);
    tape->act = std::move(act);
    tape->down = std::move(down);
  }
  return routing;
}

}  // namespace jetmoe
