// Mixture of attention heads (spec §1.4): per-expert query and output projections, one shared
// K/V projection, RoPE, causal attention over the KV cache with the tile mapping of P1.
#pragma once

#include <span>

#include "kernels/ops.h"
#include "model/forward_scratch.h"
#include "model/kv_cache.h"
#include "model/router.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

// One sequence's rows in a stack of several sequences: the next `rows` rows of the stack, at
// positions cache->length() .. + rows - 1 of that sequence's own cache.
struct AttentionSegment {
  int64_t rows = 0;
  KvCache* cache = nullptr;
};

// h: [T, d] normalised input, the rows of every segment stacked in order (T = sum of rows).
// Every weight product (router, K/V, per-expert Wq and Wo) runs once over all T rows; only the
// attention core runs per segment, on that segment's cache. Appends each segment's K/V to its
// cache's layer `layer` (the caller advances the caches after the last layer).
// y: [T, d] output (assigned). Returns the routing of all T rows. With a tape (one segment from
// position 0), also keeps what the backward needs (the tape's routing is left to the caller,
// which owns the returned one) by moving its buffers out of `scratch`, so give a taped call a
// fresh scratch. `matmul` sets how the projections treat activations (the router always runs
// in fp32).
Routing mixture_of_attention(const LayerWeights& w, const JetMoeConfig& config, const kernels::Rope& rope,
                             const float* h, std::span<const AttentionSegment> segments, int64_t layer, float* y,
                             ThreadPool& pool, ForwardScratch& scratch, AttentionTape* tape = nullptr,
                             const ops::MatmulOptions& matmul = {});

}  // namespace jetmoe
