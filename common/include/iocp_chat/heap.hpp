// heap.hpp — letting a server's memory go back to the operating system
// after a burst.
//
// Why a server needs this: a burst (10,000 logins, each announced to
// everyone already logged in) makes every client's outbound queue grow to
// tens of kilobytes and then empty again. glibc's malloc serves such blocks
// from its heap and, after the first large ones are freed, raises its own
// threshold for asking the OS directly — so the burst's pages stay in the
// process, pinned by the small objects that were allocated between them,
// and the resident size stays where the burst left it (measured: 75 KB per
// idle connection after 10,000 ver.2 logins, against 8 KB with this call).
// A fixed threshold makes every block of a page or more a private mapping
// that goes back to the OS the moment it is freed. (On Windows the process
// heap already hands large blocks to VirtualAlloc, so there it does nothing.)
//
// The price: each such free is a munmap, and the kernel must then interrupt
// every core that runs a thread of the process to drop the mapping from its
// TLB. Freed once per send, that took over half of the server's CPU
// (measured 2026-12-05, bench/results/2026-12-05-buffer-reuse.md). So large
// blocks must live long: the outbound queue keeps its buffers while the
// connection is busy and gives them back only when the sweep finds it idle.
#pragma once

#include <cstddef>

namespace iocp_chat {

/// Blocks of at least `bytes` come straight from the OS and return to it when freed (glibc:
/// M_MMAP_THRESHOLD).
void allocate_large_blocks_from_os(std::size_t bytes) noexcept;

}  // namespace iocp_chat
