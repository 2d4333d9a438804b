// Buffers one forward pass reuses from layer to layer (the backward's grow-only buffers,
// sublayer_backward.h, use scratch_floats too). Prefill's per-layer activations are tens
// of megabytes (the MoE's up-projection alone is T x k x 2F floats); allocating them per layer
// costs page faults and zeroing on the calling thread while the pool's other threads wait.
#pragma once

#include <cstdint>
#include <vector>

namespace jetmoe {

struct ExpertProductScratch {
  std::vector<float> gathered;  // a mixture's input rows in expert order
  std::vector<float> produced;  // expert_matmul's products, before they go back to token order
};

struct ForwardScratch {
  std::vector<float> kv, q, heads, projected;  // mixture of attention
  std::vector<float> up, act, down;            // mixture of experts
  ExpertProductScratch experts;
};

// v's storage for n floats, contents unspecified: grows when too small, never shrinks, so a
// buffer reused at the same size is neither reallocated nor zeroed.
inline float* scratch_floats(std::vector<float>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(size_t(n));
  return v.data();
}

}  // namespace jetmoe
