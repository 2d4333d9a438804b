// attention_backward-inl.h compiled for every ISA level (as backward_gemm.cc does), and the
// driver: one work item per head, taken from a shared counter by the pool threads.
#include "kernels/attention_backward.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation, which its own
// -Wuninitialized then reports at every inlined use; the vectors are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace jetmoe::kernels::cpu::attention_backward_scalar {
// clang-format off: the vectors first, then the templates written over them
#include "kernels/cpu/simd_scalar-inl.h"
#include "kernels/cpu/attention_backward-inl.h"
// clang-format on
}  // namespace jetmoe::kernels::cpu::attention_backward_scalar

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace jetmoe::kernels::cpu::attention_backward_avx2 {
// clang-format off: the vectors first, then the templates written over them
#include "kernels/cpu/simd_avx2-inl.h"
#include "kernels/cpu/attention_backward-inl.h"
// clang-format on
}  // namespace jetmoe::kernels::cpu::attention_backward_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
namespace jetmoe::kernels::cpu::attention_backward_avx512 {
// clang-format off: the vectors first, then the templates written over them
#include "kernels/cpu/simd_avx512-inl.h"
#include "kernels/cpu/attention_backward-inl.h"
// clang-format on
}  // namespace jetmoe::kernels::cpu::attention_backward_avx512
#pragma GCC pop_options
#endif

namespace jetmoe::ops {
namespace {

using kernels::cpu::Isa;

struct HeadKernel {
  void (*run)(const AttentionBackwardHead&, float*);
  int64_t (*scratch_floats)(int64_t positions, int64_t head_dim);
};

HeadKernel kernel_for(Isa isa) {
  if (isa > kernels::cpu::hardware_isa())
    fail("this CPU cannot run the ", kernels::cpu::isa_name(isa), " kernels (it has ",
         kernels::cpu::isa_name(kernels::cpu::hardware_isa()), ")");
  namespace cpu = kernels::cpu;
#if defined(__x86_64__) || defined(__i386__)
  if (isa >= Isa::Avx512)
    return {cpu::attention_backward_avx512::attention_backward_head,
            cpu::attention_backward_avx512::attention_backward_scratch};
  if (isa == Isa::Avx2)
    return {cpu::attention_backward_avx2::attention_backward_head,
            cpu::attention_backward_avx2::attention_backward_scratch};
#endif
  return {cpu::attention_backward_scalar::attention_backward_head,
          cpu::attention_backward_scalar::attention_backward_scratch};
}

}  // namespace

void attention_backward(std::span<const AttentionBackwardHead> heads, ThreadPool& pool, Isa isa) {
  const HeadKernel kernel = kernel_for(isa);
  int64_t scratch_floats = 0;
  for (const AttentionBackwardHead& h : heads) {
    JM_CHECK(h.slots > 0 && h.head_dim > 0 && h.positions * h.slots >= h.rows, "attention backward head: ", h.rows,
             " rows, ", h.slots, " slots, ", h.positions, " positions");
    scratch_floats = std::max(scratch_floats, kernel.scratch_floats(h.positions, h.head_dim));
  }
  std::atomic<size_t> next{0};
  const auto take = [&] {
    // Kept by each thread across calls, so that a training step does not fault in fresh pages.
    thread_local std::vector<float> scratch;
    if (int64_t(scratch.size()) < scratch_floats) scratch.resize(size_t(scratch_floats));
    for (size_t i = next.fetch_add(1, std::memory_order_relaxed); i < heads.size();
         i = next.fetch_add(1, std::memory_order_relaxed))
      kernel.run(heads[i], scratch.data());
  };
  const int64_t workers = std::min<int64_t>(pool.num_threads(), int64_t(heads.size()));
  if (workers <= 1) return take();
  pool.parallel_for(workers, [&](int64_t, int64_t) { take(); });
}

}  // namespace jetmoe::ops
