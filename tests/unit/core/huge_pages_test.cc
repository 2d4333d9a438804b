#include "core/huge_pages.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace jetmoe {
namespace {

constexpr size_t kHuge = size_t(2) << 20;

// The kernel's THP mode: "always", "madvise" or "never" ("" where THP is not built in).
std::string thp_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  const size_t open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

// AnonHugePages of the mapping holding `address`, in KiB, from /proc/self/smaps.
int64_t anon_huge_kib(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t a = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream fields(line);
    if (fields >> std::hex >> begin >> dash >> end && dash == '-') {  // "begin-end perms ..." opens a mapping
      inside = begin <= a && a < end;
    } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
      return std::stoll(line.substr(std::strlen("AnonHugePages:")));
    }
  }
  return -1;
}

// An anonymous mapping holding `bytes` from a 2 MiB boundary, so that huge pages can back it.
struct AlignedMapping {
  explicit AlignedMapping(size_t bytes) : size(bytes + kHuge) {
    base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) base = nullptr;
    data = base ? reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) / kHuge * kHuge) : nullptr;
  }
  ~AlignedMapping() {
    if (base) ::munmap(base, size);
  }
  size_t size;
  void* base = nullptr;
  char* data = nullptr;
};

TEST(HugePages, AdvisedBufferIsBackedByHugePages) {
  if (thp_mode() != "madvise" && thp_mode() != "always") GTEST_SKIP() << "THP is off on this kernel";
  AlignedMapping m(8 << 20);
  ASSERT_NE(m.data, nullptr);
  advise_huge_pages(m.data, 8 << 20);
  std::memset(m.data, 1, 8 << 20);
  EXPECT_GE(anon_huge_kib(m.data), 2048);
}

TEST(HugePages, SmallBuffersAreLeftAlone) {
  if (thp_mode() != "madvise") GTEST_SKIP() << "only observable when THP waits for advice";
  AlignedMapping m(kHugePageAdviceMinBytes - 4096);
  ASSERT_NE(m.data, nullptr);
  advise_huge_pages(m.data, kHugePageAdviceMinBytes - 4096);
  std::memset(m.data, 1, kHugePageAdviceMinBytes - 4096);
  EXPECT_EQ(anon_huge_kib(m.data), 0);
}

TEST(HugePages, UnalignedAndNullBuffersAreSafe) {
  advise_huge_pages(nullptr, size_t(64) << 20);
  AlignedMapping m(8 << 20);
  ASSERT_NE(m.data, nullptr);
  advise_huge_pages(m.data + 123, (8 << 20) - 123);  // rounded inward to whole pages
  std::memset(m.data, 1, 8 << 20);
  if (thp_mode() == "madvise" || thp_mode() == "always") {
    EXPECT_GE(anon_huge_kib(m.data + (4 << 20)), 2048);
  }
}

}  // namespace
}  // namespace jetmoe
