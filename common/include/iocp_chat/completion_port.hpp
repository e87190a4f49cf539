// completion_port.hpp — the completion-port layer: Windows IOCP's shape on
// every platform.
//
// The I/O completion port model, in five steps:
//   1. Associate each socket with the port and a completion key
//      (CreateIoCompletionPort). The key says *which connection*.
//   2. Start an operation — accept, receive, send — passing a per-operation
//      context that owns its buffer (AcceptEx / WSARecv / WSASend with an
//      OVERLAPPED). The call returns at once; the OS works in the background.
//   3. When the operation finishes, the OS queues a completion: key, byte
//      count, the operation's context and an error code.
//   4. Worker threads loop on wait() (GetQueuedCompletionStatus); each
//      completion goes to exactly one of them, which handles it and usually
//      starts the next operation.
//   5. post() (PostQueuedCompletionStatus) queues a completion by hand —
//      used to wake workers and to tell them to stop.
//
// Contract kept by every backend (the server relies on it):
//   * every started operation produces exactly one completion, even one that
//     fails at once — so "a connection lives while it has operations
//     outstanding" is a simple count;
//   * a send completes only when all its bytes are written (a short send is
//     resubmitted by the backend) or with an error;
//   * cancel() makes every outstanding operation of a socket complete soon
//     (CancelIoEx), *and* every operation started on that socket after it
//     fails at once — so a caller may decide to send under its lock and
//     start the send after releasing it, even if another thread cancels in
//     between; the socket is closed only after those completions;
//   * at most one receive and one send per socket are outstanding at a time
//     (any number of accepts on a listening socket);
//   * a receive completes with bytes > 0 (data), with 0 bytes only when the
//     peer closed (its FIN), or with an error. While it waits it holds no
//     buffer: the backend first waits for readiness — a zero-byte WSARecv
//     (iocp), an IORING_OP_POLL_ADD (uring), epoll — and only then takes a
//     buffer from the pool and reads. Those steps stay inside the backend:
//     the zero-byte WSARecv's own completion is never reported (its 0 bytes
//     would look like a FIN), and a wake-up that finds no data after all
//     waits again. So the one completion a caller sees keeps the meaning it
//     had when the buffer was posted with the receive.
//
// Backends, chosen at run time (see open_completion_port):
//   iocp  — Windows: the real thing (completion_port_win32.cpp);
//   uring — Linux io_uring: submission and completion queues (completion_port_uring.cpp);
//   epoll — Linux readiness: the operation is performed when the socket is
//           ready, then reported as completed, the way Wine and Asio emulate
//           IOCP (completion_port_epoll.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "iocp_chat/receive_buffer_pool.hpp"
#include "iocp_chat/shared_buffer.hpp"
#include "iocp_chat/socket.hpp"

#ifdef _WIN32
#include <windows.h>
#else
#include <sys/socket.h>  // sockaddr_storage, for AcceptOperation
#endif

namespace iocp_chat {

namespace detail {
class IocpPort;
class UringPort;
class EpollPort;
}  // namespace detail

/// Which engine produces the completions (`--backend auto|iocp|uring|epoll`).
enum class Backend : std::uint8_t {
  automatic,  ///< IOCP on Windows; io_uring on Linux, or epoll where io_uring cannot start.
  iocp,       ///< Windows I/O completion ports.
  uring,      ///< Linux io_uring.
  epoll,      ///< Linux epoll readiness turned into completions.
};

/// "auto", "iocp", "uring" or "epoll".
std::string_view to_string(Backend backend) noexcept;

/// Parses the --backend option; std::nullopt for an unknown name.
std::optional<Backend> parse_backend(std::string_view name) noexcept;

/// The backends compiled into this program, in order of preference (not "auto").
std::vector<Backend> compiled_backends();

// [completion-key]
/// The per-socket value given at association and returned with each of its
/// completions (ULONG_PTR in Win32: wide enough for a pointer on 64-bit —
/// the original program cast it to a 32-bit DWORD).
using CompletionKey = std::uintptr_t;
// [completion-key]

/// What kind of operation a completion reports.
enum class OperationKind : std::uint8_t {
  accept,   ///< AcceptEx: a new connection.
  receive,  ///< WSARecv: bytes arrived (0 bytes = the peer closed).
  send,     ///< WSASend: all bytes written.
  posted,   ///< PostQueuedCompletionStatus: a completion queued by hand.
};

/// Waits forever (INFINITE).
inline constexpr std::chrono::milliseconds kWaitForever = std::chrono::milliseconds::max();

// [operation]
/// The per-operation context: the OVERLAPPED idiom. Owned by the caller; it
/// must stay alive and untouched from the start of the operation until its
/// completion has been dequeued. The completion hands the same object back,
/// which is how a worker finds the operation's buffer.
class Operation {
 public:
  /// What this operation does.
  OperationKind kind() const noexcept { return kind_; }

  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;

 protected:
  /// Sets the kind; only the concrete operations below exist.
  explicit Operation(OperationKind kind) noexcept : kind_(kind) {}
  ~Operation() = default;

 private:
  friend class detail::IocpPort;
  friend class detail::UringPort;
  friend class detail::EpollPort;

#ifdef _WIN32
  /// What Windows fills in; a completion returns its address, and
  /// CONTAINING_RECORD(address, Operation, overlapped_) finds this object.
  OVERLAPPED overlapped_{};
#endif
  OperationKind kind_;                    ///< Fixed at construction.
  int immediate_error_ = 0;               ///< An error found while starting, reported through the queue.
  CompletionKey key_ = 0;                 ///< The key of the socket it was started on.
  NativeSocket socket_ = kInvalidSocket;  ///< That socket, to start the rest of a short send again.
};
// [operation]

/// Accepting one connection (AcceptEx). Several may wait on one listener at
/// once, so a burst of clients never finds nobody accepting.
class AcceptOperation final : public Operation {
 public:
  AcceptOperation() noexcept : Operation(OperationKind::accept) {}
  /// The new connection, after a successful completion (empty otherwise).
  Socket take_socket() noexcept { return std::move(accepted_); }

 private:
  friend class detail::IocpPort;
  friend class detail::UringPort;
  friend class detail::EpollPort;

  Socket accepted_;  ///< Windows: created before AcceptEx; Linux: filled at completion.
  NativeSocket listener_ = kInvalidSocket;  ///< For SO_UPDATE_ACCEPT_CONTEXT after completion.
#ifdef _WIN32
  /// AcceptEx writes the local and remote addresses here (each sockaddr + 16 bytes).
  std::byte addresses_[2 * (sizeof(sockaddr_storage) + 16)]{};
#endif
};

/// Receiving (WSARecv) into a buffer the operation borrows only while data
/// is there. While the receive waits, it holds no buffer: the backend waits
/// for readiness first (a zero-byte WSARecv, an io_uring POLL_ADD, epoll),
/// then takes a buffer from ReceiveBufferPool::shared() and reads into it at
/// once. The buffer stays with the operation until the next start_receive()
/// or release_buffer(), so received() is valid while the completion is
/// handled; an idle connection holds none.
class ReceiveOperation final : public Operation {
 public:
  /// A 4 KiB buffer, four times the original's 1024 bytes (the pool's size).
  static constexpr std::size_t kDefaultCapacity = ReceiveBufferPool::kBufferSize;
  /// Allocates nothing: the buffer is taken when data arrives.
  explicit ReceiveOperation(std::size_t capacity = kDefaultCapacity) noexcept
      : Operation(OperationKind::receive), capacity_(capacity) {}
  /// Gives a buffer still held back to the pool.
  ~ReceiveOperation() { release_buffer(); }
  /// The first `bytes` bytes of the buffer: what a completion reported
  /// (valid until the next start_receive or release_buffer).
  std::span<const std::byte> received(std::size_t bytes) const noexcept {
    if (buffer_ == nullptr) return {};
    return {buffer_, bytes < capacity_ ? bytes : capacity_};
  }
  /// The most one completion can report.
  std::size_t capacity() const noexcept { return capacity_; }
  /// True from a completion with data until the next start: an idle (waiting) receive holds none.
  bool holds_buffer() const noexcept { return buffer_ != nullptr; }
  /// Gives the buffer back to the pool now (start_receive does it anyway);
  /// for a caller that will not receive again for a while. Not while pending.
  void release_buffer() noexcept {
    ReceiveBufferPool::shared().give_back(buffer_, capacity_);
    buffer_ = nullptr;
  }

 private:
  friend class detail::IocpPort;
  friend class detail::UringPort;
  friend class detail::EpollPort;

  /// The buffer to read into, taken from the pool if none is held (backends, once data is there).
  std::byte* take_buffer() {
    if (buffer_ == nullptr) buffer_ = ReceiveBufferPool::shared().take(capacity_);
    return buffer_;
  }

  std::byte* buffer_ = nullptr;  ///< Borrowed from the pool while data is handled; null while idle.
  std::size_t capacity_;         ///< Size of the buffer taken.
  /// The readiness wait is over and the real read is next (the zero-byte
  /// WSARecv or the POLL_ADD completed); false while waiting for data.
  bool ready_ = false;
};

/// Sending one buffer (WSASend with one WSABUF; send on Linux). The
/// operation holds a reference to the buffer until clear(), so the bytes
/// outlive the send; the backend finishes short writes itself.
class SendOperation final : public Operation {
 public:
  SendOperation() noexcept : Operation(OperationKind::send) {}
  /// The bytes to send; replaces what was set before.
  void set(SharedBuffer buffer) noexcept {
    buffer_ = std::move(buffer);
    sent_ = 0;
  }
  /// Bytes to send in all.
  std::size_t size() const noexcept { return buffer_ ? buffer_->size() : 0; }
  /// True when there is nothing to send.
  bool empty() const noexcept { return size() == 0; }
  /// Lets go of the buffer (after a completion) so the operation can be reused.
  void clear() noexcept {
    buffer_.reset();
    sent_ = 0;
  }
  /// The bytes not written yet: all of them until a short write was resubmitted.
  std::span<const std::byte> unsent() const noexcept {
    return buffer_ ? std::span<const std::byte>(*buffer_).subspan(sent_) : std::span<const std::byte>();
  }

 private:
  friend class detail::IocpPort;
  friend class detail::UringPort;
  friend class detail::EpollPort;

  SharedBuffer buffer_;   ///< What to send.
  std::size_t sent_ = 0;  ///< Progress so far, for resubmitting a short send.
};

// [completion]
/// One finished operation, as GetQueuedCompletionStatus reports it.
struct Completion {
  CompletionKey key = 0;           ///< The socket's key, or the key given to post().
  Operation* operation = nullptr;  ///< The context passed when starting; null for posted.
  std::size_t bytes = 0;           ///< Bytes transferred (for posted: the value given).
  std::error_code error;           ///< Empty on success; the OS's code and message otherwise.

  /// The operation's kind; OperationKind::posted for a posted completion.
  OperationKind kind() const noexcept { return operation ? operation->kind() : OperationKind::posted; }
};
// [completion]

/// An I/O completion port. Create one with open_completion_port(); share it
/// by reference between the worker threads: every member is safe to call
/// from several threads at once.
class CompletionPort {
 public:
  virtual ~CompletionPort() = default;
  CompletionPort(const CompletionPort&) = delete;
  CompletionPort& operator=(const CompletionPort&) = delete;

  /// The backend in use (never Backend::automatic).
  virtual Backend backend() const noexcept = 0;

  // [port-interface]
  /// CreateIoCompletionPort(socket, port, key): the completions of this
  /// socket's operations will carry `key`. Once per socket, before any start.
  virtual void associate(const Socket& socket, CompletionKey key) = 0;

  /// AcceptEx: completes with a new connection in `operation.take_socket()`.
  virtual void start_accept(const Socket& listener, AcceptOperation& operation) = 0;

  /// WSARecv: completes with the bytes received (0 when the peer closed).
  /// Gives back the buffer the operation held from its last completion:
  /// until data arrives, a waiting receive holds none.
  virtual void start_receive(const Socket& socket, ReceiveOperation& operation) = 0;

  /// WSASend: completes when every byte of the operation's buffer is written.
  virtual void start_send(const Socket& socket, SendOperation& operation) = 0;

  /// CancelIoEx: every outstanding operation of the socket completes soon
  /// (with an error, or a 0-byte receive), and so does, at once, every
  /// operation started on it afterwards: CancelIoEx alone reaches only what
  /// is already pending, so every backend also shuts the socket down
  /// (shutdown(SD_BOTH) / SHUT_RDWR), which makes later sends and receives
  /// fail. A receive after the cancel takes none of the bytes still queued
  /// (so that the close resets a peer that is still sending, rather than
  /// leaving it waiting on a shut window). Cancelling ends the connection:
  /// it is closed next. The caller
  /// decides that the connection is closing by its own flag, never from
  /// those error codes: Windows reports 995 (or 64), Wine 676 or 10058,
  /// Linux ECANCELED, EPIPE or nothing at all.
  virtual void cancel(const Socket& socket) = 0;

  /// closesocket: forgets the association and closes the socket. Call it
  /// only when no operation of the socket is outstanding.
  virtual void close(Socket& socket) = 0;

  /// PostQueuedCompletionStatus: queues a completion with `key` and `bytes`
  /// and no operation; one waiting worker receives it.
  virtual void post(CompletionKey key, std::size_t bytes = 0) = 0;

  /// GetQueuedCompletionStatusEx: waits up to `timeout` for at least one
  /// completion and fills up to out.size() of them; returns how many
  /// (0 on timeout). Each completion goes to exactly one caller.
  virtual std::size_t wait_many(std::span<Completion> out, std::chrono::milliseconds timeout) = 0;

  /// GetQueuedCompletionStatus: one completion, or std::nullopt on timeout.
  std::optional<Completion> wait(std::chrono::milliseconds timeout = kWaitForever);
  // [port-interface]

  // [port-batch]
  /// Until end_batch(), the operations this thread starts may wait to reach
  /// the kernel, so that many go in one system call (io_uring: one
  /// io_uring_enter for a whole batch of sends), and the completions of
  /// sends that finish at once may wait to be queued together (epoll: one
  /// lock and one wake-up). IOCP starts each operation at once and ignores
  /// it. Keep the span short: nothing blocks between the two calls.
  virtual void begin_batch() {}
  /// Hands everything started since begin_batch() to the kernel, and queues the held completions.
  virtual void end_batch() {}
  // [port-batch]

 protected:
  CompletionPort() = default;
};

/// Opens a completion port on `requested` (CreateIoCompletionPort with no
/// socket). Backend::automatic picks IOCP on Windows and io_uring on Linux,
/// falling back to epoll when io_uring cannot start (e.g. blocked by a
/// container's seccomp profile); `note`, if given, receives a sentence to log
/// saying what was chosen and why. A backend this platform lacks, or one that
/// cannot start, throws std::system_error with the reason.
std::unique_ptr<CompletionPort> open_completion_port(Backend requested, std::string* note = nullptr);

}  // namespace iocp_chat
