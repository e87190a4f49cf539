// outbound_queue.cpp — the two-buffer outbound queue (see the header): append
// while a send is in flight, swap when the next one starts.
#include "iocp_chat/outbound_queue.hpp"

#include <algorithm>
#include <utility>

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace iocp_chat {
namespace {

/// Empties a buffer for reuse, or frees it if a burst made it large.
void recycle(std::shared_ptr<std::vector<std::byte>>& buffer) noexcept {
  if (!buffer) return;
  if (buffer->capacity() > OutboundQueue::kKeptCapacity) {
    buffer.reset();
  } else {
    buffer->clear();
  }
}

}  // namespace

std::size_t default_total_queue_bytes() noexcept {
  constexpr std::size_t kMost = std::size_t{1} << 30;
  constexpr std::size_t kLeast = std::size_t{64} << 20;
  std::size_t memory = 0;
#ifdef _WIN32
  MEMORYSTATUSEX status{};
  status.dwLength = sizeof status;
  if (::GlobalMemoryStatusEx(&status)) memory = static_cast<std::size_t>(status.ullTotalPhys);
#else
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0)
    memory = static_cast<std::size_t>(pages) * static_cast<std::size_t>(page_size);
#endif
  if (memory == 0) return kMost;
  return std::clamp(memory / 4, kLeast, kMost);
}

OutboundQueue::~OutboundQueue() {
  if (total_ != nullptr) total_->remove(size());
}

void OutboundQueue::append(std::span<const std::byte> bytes) {
  if (!pending_) pending_ = std::make_shared<std::vector<std::byte>>();
  pending_->insert(pending_->end(), bytes.begin(), bytes.end());
  if (total_ != nullptr) total_->add(bytes.size());  // after the insert: a failed one counts nothing
  used_ = true;
}

// [outbound-swap]
void OutboundQueue::start_send(SendOperation& send) {
  send.set(pending_);  // the operation holds it until send_completed()
  in_flight_bytes_ = pending_->size();
  std::swap(pending_, in_flight_);  // new frames go to the other buffer
}

void OutboundQueue::send_completed(SendOperation& send) noexcept {
  send.clear();
  if (total_ != nullptr) total_->remove(in_flight_bytes_);
  in_flight_bytes_ = 0;
  // Kept for the next send: a connection that is sending now will most
  // likely send again soon, and a buffer allocated and freed for every send
  // costs far more than the copy (with blocks of a page or more mapped
  // straight from the OS, each free is a munmap that interrupts every core
  // running the server). An idle connection gives it back in the sweep.
  recycle(in_flight_);
}
// [outbound-swap]

// Idle: hold no buffer at all. An idle connection then costs no outbound
// memory, and after a burst the heap has no small buffers scattered across
// it that would keep the burst's pages from going back to the OS.
void OutboundQueue::release_if_idle() noexcept {
  if (std::exchange(used_, false) || in_flight() || has_pending()) return;
  pending_.reset();
  in_flight_.reset();
}

std::size_t OutboundQueue::held_bytes() const noexcept {
  return (pending_ ? pending_->capacity() : 0) + (in_flight_ ? in_flight_->capacity() : 0);
}

void OutboundQueue::drop_pending() noexcept {
  if (total_ != nullptr && pending_) total_->remove(pending_->size());
  recycle(pending_);
}

}  // namespace iocp_chat
