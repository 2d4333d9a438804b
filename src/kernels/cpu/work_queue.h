// Dynamic work sharing on top of ThreadPool::parallel_for: every pool thread takes the next
// untaken item from one shared counter until none is left. Items of uneven cost (MoE experts
// with different token counts, causal attention blocks with more keys further down) still end
// together, which a static split into equal ranges does not give.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "core/parallel.h"

namespace jetmoe::kernels::cpu {

// body(item, scratch) for every item in [0, n); scratch is `scratch_floats` floats private to
// the calling thread (allocated once per thread per call).
template <class Body>
void for_each_item(ThreadPool& pool, int64_t n, int64_t scratch_floats, const Body& body) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(pool.num_threads(), n);
  pool.parallel_for(workers, [&](int64_t, int64_t) {
    std::vector<float> scratch(static_cast<size_t>(scratch_floats));
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
         i = next.fetch_add(1, std::memory_order_relaxed))
      body(i, scratch.data());
  });
}

}  // namespace jetmoe::kernels::cpu
