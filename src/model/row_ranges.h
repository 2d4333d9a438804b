// Row-wise work of the forward pass (norms, residual adds, the gated combine, RoPE) shared among
// the pool's threads. Small enough per layer to leave on one thread when decoding, but at
// prefill sizes one thread doing it alone leaves the others idle for a tenth of the time.
#pragma once

#include <cstdint>

#include "core/parallel.h"

namespace jetmoe {

// fn(begin, end) over [0, rows): split among the pool when rows x values_per_row is worth a
// wake-up of the pool (about 10 us), else inline.
template <class Fn>
void for_row_ranges(ThreadPool& pool, int64_t rows, int64_t values_per_row, const Fn& fn) {
  constexpr int64_t kParallelValues = 1 << 16;
  if (rows * values_per_row < kParallelValues) fn(int64_t{0}, rows);
  else pool.parallel_for(rows, fn);
}

}  // namespace jetmoe
