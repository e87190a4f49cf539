// outbound_queue.hpp — one connection's bytes waiting to be sent, kept in two
// buffers: one the kernel is sending from, one that new frames are appended
// to meanwhile.
//
// IOCP idea shown: the buffer handed to WSASend belongs to the kernel until
// the send's completion is dequeued, so nothing may be appended to it. Two
// buffers per connection — "in flight" and "pending" — give one
// send per connection per batch instead of one send per message: every frame
// that arrives while a send is in flight is copied, back to back, into the
// pending buffer and leaves in the next send. Copying a 52-byte frame is far
// cheaper than one more system call, or one more reference count that all
// the server's threads would fight over for a shared frame. (Redis's client
// reply buffer and NATS's per-client outbound buffer work the same way.)
//
// The two buffers are kept from send to send while the connection is busy
// and given back when the server's sweep finds it idle: a busy connection
// allocates nothing per send, an idle one holds no outbound memory.
//
// Not thread-safe: the connection's lock guards it. What every queue of a
// server holds together is counted in one OutboundTotal (thread-safe), so
// that the server can bound the sum as well as each queue.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "iocp_chat/completion_port.hpp"

namespace iocp_chat {

// [outbound-total]
/// The bytes queued for every connection of one server together, and the
/// bound on that sum (`--max-total-queue-bytes`). Ten thousand clients that
/// stop reading would otherwise hold ten thousand per-client bounds: 80 GiB
/// at 8 MiB each. Safe to use from every thread.
class OutboundTotal {
 public:
  /// A total that should stay at or under `limit` bytes.
  explicit OutboundTotal(std::size_t limit) noexcept : limit_(limit) {}
  /// The bytes queued right now, pending and in flight, in every queue.
  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  /// The bound.
  std::size_t limit() const noexcept { return limit_; }
  /// True when the total has passed the bound: time to drop the largest queues.
  bool over() const noexcept { return bytes() > limit_; }
  /// Counts bytes a queue took in.
  void add(std::size_t count) noexcept { bytes_.fetch_add(count, std::memory_order_relaxed); }
  /// Counts bytes a queue let go (sent, dropped or freed).
  void remove(std::size_t count) noexcept { bytes_.fetch_sub(count, std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> bytes_{0};  ///< Sum over every queue that counts here.
  std::size_t limit_;                  ///< Fixed at construction.
};

/// A default for the total bound that fits the machine: a quarter of its
/// memory, at most 1 GiB (and at least 64 MiB).
std::size_t default_total_queue_bytes() noexcept;
// [outbound-total]

// [outbound-queue]
/// A connection's outbound bytes: pending (appended to) and in flight (being sent).
class OutboundQueue {
 public:
  /// A buffer at most this large is kept for the next send while the
  /// connection is busy; a larger one (after a burst) is freed at once.
  static constexpr std::size_t kKeptCapacity = 64 * 1024;

  /// A queue whose bytes also count in `total`, if given (the server's sum).
  explicit OutboundQueue(OutboundTotal* total = nullptr) noexcept : total_(total) {}
  /// Whatever is still queued stops counting in the total.
  ~OutboundQueue();
  OutboundQueue(const OutboundQueue&) = delete;
  OutboundQueue& operator=(const OutboundQueue&) = delete;

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
  /// Called by the server's sweep: a queue that is empty and took in nothing
  /// since the previous call gives its buffers back; a busy one keeps them.
  void release_if_idle() noexcept;
  /// Memory the buffers hold now (their capacity), queued or not.
  std::size_t held_bytes() const noexcept;

 private:
  using Buffer = std::shared_ptr<std::vector<std::byte>>;

  OutboundTotal* total_;             ///< The server's sum this queue counts in, or null.
  Buffer pending_;                   ///< Appended to; null until the first byte.
  Buffer in_flight_;                 ///< Given to the send in flight, or free for the next swap.
  std::size_t in_flight_bytes_ = 0;  ///< Size of the send in flight (0 = none).
  bool used_ = false;                ///< Something was appended since the last release_if_idle().
};
// [outbound-queue]

}  // namespace iocp_chat
