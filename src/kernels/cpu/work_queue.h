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

// At least `floats` floats private to the calling thread, kept from call to call (grown, never
// shrunk) so that hot loops do not fault in fresh pages. Its contents are whatever the thread's
// last user left.
inline float* thread_scratch(int64_t floats) {
  thread_local std::vector<float> scratch;
  if (int64_t(scratch.size()) < floats) scratch.resize(size_t(floats));
  return scratch.data();
}

// body(item, scratch) for every item in [0, n); scratch is thread_scratch(scratch_floats) of the
// thread running the item.
template <class Body>
void for_each_item(ThreadPool& pool, int64_t n, int64_t scratch_floats, const Body& body) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(pool.num_threads(), n);
  pool.parallel_for(workers, [&](int64_t, int64_t) {
    float* scratch = thread_scratch(scratch_floats);
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
         i = next.fetch_add(1, std::memory_order_relaxed))
      body(i, scratch);
  });
}

}  // namespace jetmoe::kernels::cpu
