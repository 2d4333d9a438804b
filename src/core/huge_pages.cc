#include "core/huge_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace jetmoe {

void advise_huge_pages(void* data, size_t bytes) {
  if (data == nullptr || bytes < kHugePageAdviceMinBytes) return;
  static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  // madvise wants page-aligned bounds; only pages wholly inside the buffer may be advised, since
  // the pages around it can belong to other allocations.
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace jetmoe
