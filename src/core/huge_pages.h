// Transparent huge pages for large anonymous buffers.
//
// A training run zeroes gigabytes of fresh memory (fp32 masters, gradients, AdamW moments, tapes).
// With 4 KiB pages each of them costs a page fault: measured here on the mid model, a 4x512
// `jetmoe bench` training run spent 31% of its CPU time in the kernel clearing pages one fault at
// a time, and 2 MiB pages cut its wall time from 43-67 s to 30 s (and mid-model prefill ran 3-9%
// faster). Most kernels ship THP in "madvise" mode (Debian's default), so a buffer only gets
// huge pages when asked for them.
#pragma once

#include <cstddef>

namespace jetmoe {

// Buffers smaller than this are left alone: only a range of at least 4 MiB surely holds a whole
// aligned 2 MiB page.
inline constexpr size_t kHugePageAdviceMinBytes = size_t(4) << 20;

// Asks the kernel to back [data, data + bytes) with transparent huge pages where it can, before
// the range is first touched (madvise MADV_HUGEPAGE on the whole pages inside it). Advice only:
// does nothing for small ranges, and failures (no THP, THP "never") are ignored.
void advise_huge_pages(void* data, size_t bytes);

}  // namespace jetmoe
