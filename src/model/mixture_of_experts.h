// Mixture of GLU MLP experts (spec §1.5): y = sum_s g_s · W_out[e_s] · (silu(u_gate) * u_up) + b.
#pragma once

#include "kernels/ops.h"
#include "model/forward_scratch.h"
#include "model/kv_cache.h"
#include "model/router.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

// h: [T, d] normalised input; y: [T, d] output (assigned, not accumulated). Returns the routing.
// With a tape, also keeps what the backward needs (the routing is left to the caller) by moving
// its buffers out of `scratch`, so give a taped call a fresh scratch.
Routing mixture_of_experts(const LayerWeights& w, const JetMoeConfig& config, const float* h, int64_t T, float* y,
                           ThreadPool& pool, ForwardScratch& scratch, ExpertsTape* tape = nullptr,
                           const ops::MatmulOptions& matmul = {});

}  // namespace jetmoe
