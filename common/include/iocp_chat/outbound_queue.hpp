// outbound_queue.hpp — one connection's bytes waiting to be sent, kept in two
// buffers: one the kernel is sending from, one that new frames are appended
// to meanwhile.
//
// IOCP idea shown: the buffer handed to WSASend belongs to the kernel until
// the send's completion is dequeued, so nothing may be appended to it. Two
// buffers per connection — "in flight" and "pending" — give one gathered
// send per connection per batch instead of one send per message: every frame
// that arrives while a send is in flight is copied, back to back, into the
// pending buffer and leaves in the next send. Copying a 52-byte frame is far
// cheaper than one more system call, or one more reference count that all
// the server's threads would fight over for a shared frame. (Redis's client
// reply buffer and NATS's per-client outbound buffer work the same way.)
//
// Not thread-safe: the connection's lock guards it.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "iocp_chat/completion_port.hpp"

namespace iocp_chat {

// [outbound-queue]
/// A connection's outbound bytes: pending (appended to) and in flight (being sent).
class OutboundQueue {
 public:
  /// A buffer at most this large is kept for the next send; a larger one
  /// (after a burst) is freed, so idle connections stay small.
  static constexpr std::size_t kKeptCapacity = 4 * 1024;

  /// Appends bytes after the ones already pending.
  void append(std::span<const std::byte> bytes);
  /// Bytes pending or in flight: what a connection's bound is measured on.
  std::size_t size() const noexcept { return (pending_ ? pending_->size() : 0) + in_flight_bytes_; }
  /// True when bytes wait for the next send.
  bool has_pending() const noexcept { return pending_ && !pending_->empty(); }
  /// True while a send started by start_send() has not completed.
  bool in_flight() const noexcept { return in_flight_bytes_ != 0; }

  /// Hands every pending byte to `send` as one buffer; those bytes are in
  /// flight until send_completed(). Call only with has_pending() and
  /// nothing in flight.
  void start_send(SendOperation& send);
  /// The send's completion was dequeued: its buffer may be reused.
  void send_completed(SendOperation& send) noexcept;
  /// Drops the pending bytes (a client that is closed, or dropped as a slow
  /// consumer); bytes in flight stay until their completion.
  void drop_pending() noexcept;

 private:
  using Buffer = std::shared_ptr<std::vector<std::byte>>;

  Buffer pending_;                   ///< Appended to; null until the first byte.
  Buffer in_flight_;                 ///< Given to the send in flight, or free for the next swap.
  std::size_t in_flight_bytes_ = 0;  ///< Size of the send in flight (0 = none).
};
// [outbound-queue]

}  // namespace iocp_chat
