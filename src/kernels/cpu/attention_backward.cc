// The backward of attention over many heads: one work item per head, shared among the pool
// threads (work_queue.h), each running the per-ISA kernel of attention_backward-inl.h.
#include "kernels/attention_backward.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/work_queue.h"

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
  kernels::cpu::for_each_item(pool, int64_t(heads.size()), scratch_floats,
                              [&](int64_t i, float* scratch) { kt.attention_backward_head(heads[size_t(i)], scratch); });
}

}  // namespace jetmoe::ops
