// Mixture of attention heads (spec §1.4): per-expert query and output projections, one shared
// K/V projection, RoPE, causal attention over the KV cache with the tile mapping of P1.
#pragma once

#include "kernels/ops.h"
#include "model/kv_cache.h"
#include "model/router.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

// h: [T, d] normalised input at positions cache.length() .. + T - 1; appends K/V of those
// positions to cache layer `layer` (the caller advances the cache after the last layer).
// y: [T, d] output (assigned). Returns the routing. With a tape, also keeps what the backward
// needs (the tape's routing is left to the caller, which owns the returned one). `matmul` sets
// how the projections treat activations (the router always runs in fp32).
Routing mixture_of_attention(const LayerWeights& w, const JetMoeConfig& config, const kernels::Rope& rope,
                             const float* h, int64_t T, KvCache& cache, int64_t layer, float* y, ThreadPool& pool,
                             AttentionTape* tape = nullptr, const ops::MatmulOptions& matmul = {});

}  // namespace jetmoe
