// receive_buffer_pool.hpp — receive buffers lent only while data is there.
//
// IOCP idea shown: the zero-byte receive. A WSARecv started with a buffer
// pins that buffer for as long as the receive waits — for an idle client,
// for ever. A server with 10,000 quiet clients then holds 10,000 buffers
// that hold nothing. The classic fix (Windows servers have used it since
// NT 4) waits first with a zero-length WSARecv, takes a buffer only when
// that completes — data is waiting — and reads into it at once. Every
// backend here does the same thing its own way (the zero-byte WSARecv, an
// io_uring POLL_ADD, epoll readiness); this pool is where the buffer comes
// from at that moment and goes back to when the next receive starts.
//
// A busy server takes and returns a buffer per receive, so the pool keeps a
// bounded number of spares: at most kMaxSpare buffers wait here for the next
// receive, and any returned beyond that go back to the heap. The bound caps
// what the pool itself can hold (256 x 4 KiB = 1 MiB) after a burst.
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

#include "iocp_chat/sync.hpp"

namespace iocp_chat {

/// The process's spare receive buffers (see the file comment); every member is thread-safe.
class ReceiveBufferPool {
 public:
  /// The size the pool keeps spares of: a receive's default buffer, four times the original's 1024 bytes.
  static constexpr std::size_t kBufferSize = 4096;
  /// At most this many spare buffers wait in the pool; more go back to the heap.
  static constexpr std::size_t kMaxSpare = 256;

  /// The one pool every ReceiveOperation uses (never destroyed: an operation may outlive main's locals).
  static ReceiveBufferPool& shared();

  /// A buffer of `capacity` bytes: a spare one if the size is kBufferSize and one waits, else new[].
  std::byte* take(std::size_t capacity);
  /// Gives back a buffer from take() with the same `capacity`: kept as a spare, or deleted.
  void give_back(std::byte* buffer, std::size_t capacity) noexcept;

  /// Buffers taken and not given back yet, from this pool (what receives with data hold now).
  std::size_t lent() const noexcept { return lent_.load(std::memory_order_relaxed); }
  /// Spare buffers waiting in the pool now.
  std::size_t spare() const;

  ReceiveBufferPool(const ReceiveBufferPool&) = delete;
  ReceiveBufferPool& operator=(const ReceiveBufferPool&) = delete;

 private:
  /// Reserves room for kMaxSpare pointers once, so give_back never allocates.
  ReceiveBufferPool();
  ~ReceiveBufferPool() = default;

  mutable CriticalSection lock_;                     ///< Guards spare_; held for a push or a pop only.
  std::vector<std::byte*> spare_ GUARDED_BY(lock_);  ///< Spare buffers of kBufferSize bytes.
  std::atomic<std::size_t> lent_{0};                 ///< Buffers out, for tests and the curious.
};

}  // namespace iocp_chat
