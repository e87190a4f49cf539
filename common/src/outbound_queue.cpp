// outbound_queue.cpp — the two-buffer outbound queue (see the header): append
// while a gathered send is in flight, swap when the next one starts.
#include "iocp_chat/outbound_queue.hpp"

#include <utility>

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

void OutboundQueue::append(std::span<const std::byte> bytes) {
  if (!pending_) pending_ = std::make_shared<std::vector<std::byte>>();
  pending_->insert(pending_->end(), bytes.begin(), bytes.end());
}

// [outbound-swap]
void OutboundQueue::start_send(SendOperation& send) {
  send.clear();
  send.add(pending_);  // the operation holds it until send_completed()
  in_flight_bytes_ = pending_->size();
  std::swap(pending_, in_flight_);  // new frames go to the other buffer
}

void OutboundQueue::send_completed(SendOperation& send) noexcept {
  send.clear();
  in_flight_bytes_ = 0;
  if (has_pending()) {
    recycle(in_flight_);  // busy: the next send will want it
  } else {
    // Idle: hold no buffer at all. An idle connection then costs no outbound
    // memory, and after a burst the heap has no small buffers scattered
    // across it that would keep the burst's pages from going back to the OS.
    pending_.reset();
    in_flight_.reset();
  }
}
// [outbound-swap]

void OutboundQueue::drop_pending() noexcept { recycle(pending_); }

}  // namespace iocp_chat
