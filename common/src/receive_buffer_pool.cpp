// receive_buffer_pool.cpp — the bounded pool of spare receive buffers (see
// the header for why receives borrow their buffers).
#include "iocp_chat/receive_buffer_pool.hpp"

namespace iocp_chat {

ReceiveBufferPool& ReceiveBufferPool::shared() {
  // Made once and never destroyed: a ReceiveOperation in a static object, or
  // one a detached thread still holds at exit, may give its buffer back
  // after main returns. The spares stay reachable, so no leak is reported.
  static ReceiveBufferPool* const pool = new ReceiveBufferPool;
  return *pool;
}

ReceiveBufferPool::ReceiveBufferPool() {
  const CriticalSectionLock lock(lock_);
  spare_.reserve(kMaxSpare);
}

std::byte* ReceiveBufferPool::take(std::size_t capacity) {
  std::byte* buffer = nullptr;
  if (capacity == kBufferSize) {
    const CriticalSectionLock lock(lock_);
    if (!spare_.empty()) {
      buffer = spare_.back();
      spare_.pop_back();
    }
  }
  // Outside the lock: new[] may take long (a fresh page from the OS).
  if (buffer == nullptr) buffer = new std::byte[capacity];
  lent_.fetch_add(1, std::memory_order_relaxed);
  return buffer;
}

void ReceiveBufferPool::give_back(std::byte* buffer, std::size_t capacity) noexcept {
  if (buffer == nullptr) return;
  lent_.fetch_sub(1, std::memory_order_relaxed);
  if (capacity == kBufferSize) {
    const CriticalSectionLock lock(lock_);
    if (spare_.size() < kMaxSpare) {  // reserved: push_back does not allocate
      spare_.push_back(buffer);
      return;
    }
  }
  delete[] buffer;  // past the bound (or an odd size): back to the heap
}

std::size_t ReceiveBufferPool::spare() const {
  const CriticalSectionLock lock(lock_);
  return spare_.size();
}

}  // namespace iocp_chat
