// heap.cpp — allocate_large_blocks_from_os(): mallopt(M_MMAP_THRESHOLD) on
// glibc, nothing elsewhere (see the header for why).
#include "iocp_chat/heap.hpp"

#include <climits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace iocp_chat {

void allocate_large_blocks_from_os(std::size_t bytes) noexcept {
#if defined(__GLIBC__)
  // Setting it also turns off glibc's habit of raising the threshold after
  // a large block is freed, which is what kept the burst's pages.
  ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes < INT_MAX ? bytes : INT_MAX));
#else
  static_cast<void>(bytes);
#endif
}

}  // namespace iocp_chat
