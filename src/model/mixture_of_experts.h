// Mixture of GLU MLP experts (spec §1.5): y = sum_s g_s · W_out[e_s] · (silu(u_gate) * u_up) + b.
#pragma once

#include "kernels/ops.h"
#include "model/kv_cache.h"
#include "model/router.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

// h: [T, d] normalised input; y: [T, d] output (assigned, not accumulated). Returns the routing.
// With a tape, also keeps what the backward needs (the routing is left to the caller).
Routing mixture_of_experts(const LayerWeights& w, const JetMoeConfig& config, const float* h, int64_t T, float* y,
                           ThreadPool& pool, ExpertsTape* tape = nullptr, const ops::MatmulOptions& matmul = {});

}  // namespace jetmoe
