// The jetmoe binary's global operator new: malloc, plus transparent huge pages for allocations
// of 4 MiB or more (core/huge_pages.h says why). Every std::vector of the program goes through
// here, so the masters, gradients, optimizer moments, tapes and KV caches all get huge pages
// without each owner asking. libstdc++'s array, nothrow and default deletes forward to these.
//
// Left out of sanitizer builds: ASan and friends bring their own operator new, which checks
// new/delete pairing.
#include <cstdlib>
#include <new>

#include "core/huge_pages.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define JETMOE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define JETMOE_SANITIZED 1
#endif
#endif

#ifndef JETMOE_SANITIZED

void* operator new(std::size_t bytes) {
  for (;;) {
    if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) {
      jetmoe::advise_huge_pages(p, bytes);
      return p;
    }
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

#endif
