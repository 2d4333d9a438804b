// The backward of attention over many heads: one work item per head, taken from a shared counter
// by the pool threads, each running the per-ISA kernel of attention_backward-inl.h.
#include "kernels/attention_backward.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/kernel_table.h"

namespace jetmoe::ops {

using kernels::cpu::Isa;

void attention_backward(std::span<const AttentionBackwardHead> heads, ThreadPool& pool, Isa isa) {
  const kernels::cpu::KernelTable& kt = kernels::cpu::checked_kernel_table(isa);
  int64_t scratch_floats = 0;
  for (const AttentionBackwardHead& h : heads) {
    JM_CHECK(h.slots > 0 && h.head_dim > 0 && h.positions * h.slots >= h.rows, "attention backward head: ", h.rows,
             " rows, ", h.slots, " slots, ", h.positions, " positions");
    scratch_floats = std::max(scratch_floats, kt.attention_backward_scratch(h.positions, h.head_dim));
  }
  std::atomic<size_t> next{0};
  const auto take = [&] {
    // Kept by each thread across calls, so that a training step does not fault in fresh pages.
    thread_local std::vector<float> scratch;
    if (int64_t(scratch.size()) < scratch_floats) scratch.resize(size_t(scratch_floats));
    for (size_t i = next.fetch_add(1, std::memory_order_relaxed); i < heads.size();
         i = next.fetch_add(1, std::memory_order_relaxed))
      kt.attention_backward_head(heads[i], scratch.data());
  };
  const int64_t workers = std::min<int64_t>(pool.num_threads(), int64_t(heads.size()));
  if (workers <= 1) return take();
  pool.parallel_for(workers, [&](int64_t, int64_t) { take(); });
}

}  // namespace jetmoe::ops
