// Top-k routing shared by the mixture of attention and the mixture of MLP experts (spec §1.3):
// router logits in fp32, the k largest per token (slot 0 = largest), gates = softmax over the
// selected logits only (P4). Assignments are also grouped by expert so that each expert runs
// one product over a contiguous gather of its tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"

namespace jetmoe {

struct Routing {
  int64_t num_tokens = 0, num_experts = 0, top_k = 0;
  std::vector<float> logits;        // [T, E] full router logits (kept for the auxiliary losses)
  std::vector<int32_t> expert;      // [T, k] chosen expert per slot, slots by descending logit
  std::vector<float> gate;          // [T, k]
  // Assignment a = t * k + s. by_expert lists assignments grouped by expert (token order kept
  // inside a group); expert e owns by_expert[offsets[e] .. offsets[e + 1]).
  std::vector<int64_t> by_expert;
  std::vector<int64_t> offsets;     // [E + 1]
  std::vector<int64_t> position;    // [T, k] where assignment a sits in by_expert

  int64_t count(int64_t e) const { return offsets[size_t(e) + 1] - offsets[size_t(e)]; }
};

// h: [T, d] normalised hidden states; router_weight: [E, d].
Routing route(const float* h, int64_t T, const TensorView& router_weight, int64_t top_k, ThreadPool& pool);

}  // namespace jetmoe
