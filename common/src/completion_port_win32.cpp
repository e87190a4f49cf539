// completion_port_win32.cpp — the `iocp` backend: the real Windows I/O
// completion port, the thing every other backend imitates.
//
// IOCP ideas this file shows, in the order a server meets them:
//   * one kernel queue (CreateIoCompletionPort with no handle) that any number
//     of worker threads wait on;
//   * association: CreateIoCompletionPort(socket, port, key) makes every
//     completion of that socket carry `key` — a ULONG_PTR, wide enough for a
//     pointer;
//   * overlapped operations — AcceptEx, WSARecv, WSASend — each started with
//     an OVERLAPPED embedded in a per-operation context; the completion hands
//     the OVERLAPPED's address back and CONTAINING_RECORD recovers the context;
//   * AcceptEx is a Microsoft extension: its address is asked of the provider
//     with WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER), the accepted socket is
//     created beforehand, and SO_UPDATE_ACCEPT_CONTEXT finishes the accept;
//   * the zero-byte receive: a WSARecv with no buffer waits for data, and
//     only when it completes is a buffer taken from the pool and a second
//     WSARecv posted into it — so an idle client pins no memory (the
//     classic trick of servers with many quiet connections);
//   * GetQueuedCompletionStatusEx dequeues a batch of completions in one call;
//     a failed one carries its status in the OVERLAPPED, which
//     GetOverlappedResult turns into a Win32 error code;
//   * PostQueuedCompletionStatus queues a completion by hand — here also used
//     to report an operation that fails the moment it is started, so that
//     every started operation completes exactly once, through the queue;
//   * CancelIoEx makes a socket's pending operations complete (aborted), the
//     first step of closing a connection that still has I/O in flight — and
//     shutdown first, so that an operation started a moment later cannot
//     slip past the cancel and wait for ever.
//
// Written for Windows and checked under Wine 8.0 (how the tests run it here):
// see the notes in cancel() and, on error codes, in finish().

// Order matters: Winsock 2 first, then its Microsoft extensions (AcceptEx),
// then the rest of Win32. Separate blocks keep clang-format from sorting them.
#include <winsock2.h>

#include <mswsock.h>

#include <windows.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <unordered_map>

#include "backends.hpp"
#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/os_error.hpp"
#include "iocp_chat/sync.hpp"

namespace iocp_chat::detail {
namespace {

// [iocp-accept-address-length]
/// AcceptEx wants room for each address plus 16 bytes of its own.
constexpr DWORD kAcceptAddressLength = sizeof(sockaddr_storage) + 16;
// [iocp-accept-address-length]

/// How many completions one GetQueuedCompletionStatusEx call may dequeue.
constexpr std::size_t kBatchLimit = 64;

/// A Win32 handle for a socket: the handle-based calls (CreateIoCompletionPort,
/// CancelIoEx) accept a SOCKET, which is a kernel handle underneath.
HANDLE as_handle(NativeSocket socket) noexcept { return reinterpret_cast<HANDLE>(socket); }

/// A millisecond timeout as the DWORD that the wait calls take (INFINITE for kWaitForever).
DWORD to_wait_milliseconds(std::chrono::milliseconds timeout) noexcept {
  if (timeout == kWaitForever) return INFINITE;
  if (timeout.count() <= 0) return 0;
  constexpr auto kLongest = static_cast<std::chrono::milliseconds::rep>(INFINITE - 1);
  return static_cast<DWORD>(std::min(timeout.count(), kLongest));
}

/// A buffer length as the ULONG a WSABUF holds (buffers here never reach 4 GiB).
ULONG to_wsabuf_length(std::size_t length) noexcept {
  return static_cast<ULONG>(std::min<std::size_t>(length, std::numeric_limits<ULONG>::max()));
}

}  // namespace

/// The `iocp` backend: a Windows I/O completion port (see the file comment).
class IocpPort final : public CompletionPort {
 public:
  /// Takes ownership of a port handle made by CreateIoCompletionPort.
  explicit IocpPort(HANDLE port) noexcept : port_(port) {}
  /// CloseHandle on the port.
  ~IocpPort() override { ::CloseHandle(port_); }
  IocpPort(const IocpPort&) = delete;
  IocpPort& operator=(const IocpPort&) = delete;

  /// Always Backend::iocp.
  Backend backend() const noexcept override { return Backend::iocp; }

  /// CreateIoCompletionPort(socket, port, key, 0).
  void associate(const Socket& socket, CompletionKey key) override;
  /// AcceptEx into a socket created here.
  void start_accept(const Socket& listener, AcceptOperation& operation) override;
  /// A zero-byte WSARecv; finish() follows it with a WSARecv into a buffer from the pool.
  void start_receive(const Socket& socket, ReceiveOperation& operation) override;
  /// WSASend of the operation's buffer (what is left of it after a short send).
  void start_send(const Socket& socket, SendOperation& operation) override;
  /// shutdown(SD_BOTH), then CancelIoEx on every pending operation of the socket.
  void cancel(const Socket& socket) override;
  /// closesocket.
  void close(Socket& socket) override;
  /// PostQueuedCompletionStatus with no OVERLAPPED.
  void post(CompletionKey key, std::size_t bytes) override;
  /// GetQueuedCompletionStatusEx.
  std::size_t wait_many(std::span<Completion> out, std::chrono::milliseconds timeout) override;

 private:
  /// The AcceptEx function of the listener's provider, asked for once.
  LPFN_ACCEPTEX accept_ex(NativeSocket listener, int& error);
  /// WSARecv: the zero-byte one while `operation.ready_` is false, else into a buffer taken now.
  void submit_receive(NativeSocket socket, ReceiveOperation& operation);
  /// WSASend of what `operation` has not sent yet (from `sent_` on).
  void submit_send(NativeSocket socket, SendOperation& operation);
  /// Reports an operation that could not even start: its completion goes
  /// through the queue like any other, carrying `error`.
  void complete_at_once(NativeSocket socket, Operation& operation, int error);
  /// Turns one dequeued entry into a Completion; false if the entry was
  /// handled internally (a short send resubmitted, a zero-byte receive
  /// followed by the real one) and must not be reported.
  bool finish(const OVERLAPPED_ENTRY& entry, Completion& out);

  HANDLE port_;                                    ///< The kernel's completion queue.
  std::atomic<LPFN_ACCEPTEX> accept_ex_{nullptr};  ///< Cached AcceptEx address.

  /// Guards keys_; held only for a lookup or an update.
  CriticalSection lock_;
  /// Each associated socket's key. Windows keeps the key inside the kernel
  /// and has no call to read it back, but complete_at_once must post with it.
  std::unordered_map<NativeSocket, CompletionKey> keys_ GUARDED_BY(lock_);
};

// [iocp-associate]
void IocpPort::associate(const Socket& socket, CompletionKey key) {
  // The same call that created the port, now with a handle: from here on
  // every completion of this socket is queued on port_ with `key`. The last
  // argument (concurrency) is ignored when a port already exists.
  if (::CreateIoCompletionPort(as_handle(socket.native()), port_, key, 0) == nullptr) {
    throw_os_error(last_os_error(), "CreateIoCompletionPort (associate a socket)");
  }
  const CriticalSectionLock lock(lock_);
  keys_[socket.native()] = key;
}
// [iocp-associate]

// [iocp-accept-ex-load]
LPFN_ACCEPTEX IocpPort::accept_ex(NativeSocket listener, int& error) {
  // AcceptEx is a Microsoft extension that belongs to the socket's service
  // provider, not to Winsock's core API: the documented way to call it is to
  // ask the provider for its address, by GUID, at run time. Asked once.
  LPFN_ACCEPTEX function = accept_ex_.load(std::memory_order_acquire);
  if (function != nullptr) return function;
  GUID guid = WSAID_ACCEPTEX;
  DWORD returned = 0;
  if (::WSAIoctl(listener, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &function, sizeof function,
                 &returned, nullptr, nullptr) == SOCKET_ERROR) {
    error = ::WSAGetLastError();
    return nullptr;
  }
  accept_ex_.store(function, std::memory_order_release);  // two threads may both ask: same answer
  return function;
}
// [iocp-accept-ex-load]

void IocpPort::start_accept(const Socket& listener, AcceptOperation& operation) {
  operation.overlapped_ = {};
  operation.immediate_error_ = 0;
  operation.listener_ = listener.native();
  operation.accepted_.close();

  int error = 0;
  const LPFN_ACCEPTEX accept = accept_ex(listener.native(), error);
  if (accept == nullptr) return complete_at_once(listener.native(), operation, error);

  // [iocp-accept-socket]
  // Unlike accept(), AcceptEx does not make the new socket: it fills one made
  // beforehand, of the listener's address family and overlapped-capable.
  sockaddr_storage local{};
  int length = sizeof local;
  if (::getsockname(listener.native(), reinterpret_cast<sockaddr*>(&local), &length) == SOCKET_ERROR) {
    return complete_at_once(listener.native(), operation, ::WSAGetLastError());
  }
  operation.accepted_ =
      Socket(::WSASocketW(local.ss_family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED));
  if (!operation.accepted_.is_open()) {
    return complete_at_once(listener.native(), operation, ::WSAGetLastError());
  }
  // [iocp-accept-socket]

  // [iocp-accept-call]
  // Receive length 0: complete as soon as a client connects, without waiting
  // for its first bytes (a client that connects and stays silent would
  // otherwise hold the accept). The addresses land in addresses_.
  DWORD received = 0;
  if (!accept(listener.native(), operation.accepted_.native(), operation.addresses_, 0, kAcceptAddressLength,
              kAcceptAddressLength, &received, &operation.overlapped_)) {
    const int start_error = ::WSAGetLastError();
    if (start_error != ERROR_IO_PENDING) {
      operation.accepted_.close();
      complete_at_once(listener.native(), operation, start_error);
    }
  }
  // TRUE or ERROR_IO_PENDING: either way the completion will be queued,
  // because the socket is not in FILE_SKIP_COMPLETION_PORT_ON_SUCCESS mode.
  // [iocp-accept-call]
}

// [iocp-receive]
void IocpPort::start_receive(const Socket& socket, ReceiveOperation& operation) {
  // The zero-byte receive: first a WSARecv with no buffer, which completes
  // when data (or the FIN) is waiting and pins no memory meanwhile — an
  // idle client costs no buffer. finish() then takes one and receives for
  // real. The caller is done with the last completion's bytes: give them back.
  operation.release_buffer();
  operation.ready_ = false;
  operation.socket_ = socket.native();  // the second WSARecv is started from finish()
  submit_receive(socket.native(), operation);
}

void IocpPort::submit_receive(NativeSocket socket, ReceiveOperation& operation) {
  operation.overlapped_ = {};
  operation.immediate_error_ = 0;
  WSABUF piece{0, nullptr};  // the zero-byte WSARecv: wait for data, hold nothing
  if (operation.ready_) {
    std::byte* buffer = nullptr;
    try {
      buffer = operation.take_buffer();  // data is waiting: now a buffer is worth holding
    } catch (const std::bad_alloc&) {
      return complete_at_once(socket, operation, WSAENOBUFS);
    }
    piece = WSABUF{to_wsabuf_length(operation.capacity_), reinterpret_cast<CHAR*>(buffer)};
  }
  DWORD flags = 0;
  // lpNumberOfBytesRecvd is null: with an OVERLAPPED the count comes with
  // the completion, even when the data was already there.
  if (::WSARecv(socket, &piece, 1, nullptr, &flags, &operation.overlapped_, nullptr) == SOCKET_ERROR) {
    const int error = ::WSAGetLastError();
    if (error != WSA_IO_PENDING) complete_at_once(socket, operation, error);
  }
}
// [iocp-receive]

void IocpPort::start_send(const Socket& socket, SendOperation& operation) {
  // Remembered in the operation: a short send is resubmitted when its
  // completion, which names only the key, is dequeued.
  operation.socket_ = socket.native();
  submit_send(socket.native(), operation);
}

void IocpPort::submit_send(NativeSocket socket, SendOperation& operation) {
  operation.overlapped_ = {};
  operation.immediate_error_ = 0;

  // One WSABUF for the part not yet sent (all of it, until a short send is
  // resubmitted). It may live on the stack: WSASend copies the WSABUF array
  // before it returns, even when the send completes later; only the bytes
  // it points to must stay, and the operation holds them.
  const std::span<const std::byte> unsent = operation.unsent();
  if (unsent.empty()) {
    return complete_at_once(socket, operation, 0);  // nothing to send: done at once
  }
  auto* bytes = const_cast<std::byte*>(unsent.data());  // WSABUF's pointer is not const
  WSABUF piece{to_wsabuf_length(unsent.size()), reinterpret_cast<CHAR*>(bytes)};

  if (::WSASend(socket, &piece, 1, nullptr, 0, &operation.overlapped_, nullptr) == SOCKET_ERROR) {
    const int error = ::WSAGetLastError();
    if (error != WSA_IO_PENDING) complete_at_once(socket, operation, error);
  }
}

// [iocp-complete-at-once]
void IocpPort::complete_at_once(NativeSocket socket, Operation& operation, int error) {
  // A start call that fails with anything but "pending" queues nothing. The
  // contract promises one completion per started operation, so post it
  // ourselves, with the operation's own OVERLAPPED: the worker that dequeues
  // it cannot tell it from a completion the kernel queued.
  {
    const CriticalSectionLock lock(lock_);
    const auto found = keys_.find(socket);
    operation.key_ = found != keys_.end() ? found->second : 0;
  }
  operation.immediate_error_ = error;
  if (!::PostQueuedCompletionStatus(port_, 0, operation.key_, &operation.overlapped_)) {
    throw_os_error(last_os_error(), "PostQueuedCompletionStatus (report a failed start)");
  }
}
// [iocp-complete-at-once]

// [iocp-cancel]
void IocpPort::cancel(const Socket& socket) {
  // Two calls, because CancelIoEx alone only reaches operations that are
  // already pending. A server that decides to send under a lock and calls
  // WSASend after releasing it can lose this race: another thread cancels
  // in between, finds nothing pending, and the WSASend is issued afterwards.
  // If the peer has stopped reading, that send never completes and the
  // connection can never be freed (the classic CancelIoEx mistake).
  //
  // 1. shutdown(SD_BOTH) closes the socket to new work: from now on WSASend
  //    and WSARecv fail at once (WSAESHUTDOWN), and complete_at_once turns
  //    that into a completion. On a listening socket it fails
  //    (WSAENOTCONN), which does no harm: only the CancelIoEx matters there.
  ::shutdown(socket.native(), SD_BOTH);
  // 2. CancelIoEx with no OVERLAPPED asks the kernel to cancel every pending
  //    operation that this process started on the handle, from any thread
  //    (CancelIo would cancel only the calling thread's). It is asynchronous:
  //    each cancelled operation completes later, through the queue, with
  //    ERROR_OPERATION_ABORTED (995); a send reports the bytes it wrote
  //    before it was stopped, and one that had already finished completes
  //    successfully. Checked under Wine 8.0: a pending WSARecv, AcceptEx and
  //    a large WSASend all complete at once with 995, whichever thread calls
  //    this. (shutdown alone is no substitute: under Wine it leaves a pending
  //    WSARecv pending.) ERROR_NOT_FOUND — nothing was pending — is not an
  //    error here.
  ::CancelIoEx(as_handle(socket.native()), nullptr);
}
// [iocp-cancel]

void IocpPort::close(Socket& socket) {
  // closesocket also removes the association: a handle leaves its port only
  // when it is closed.
  {
    const CriticalSectionLock lock(lock_);
    keys_.erase(socket.native());
  }
  socket.close();
}

// [iocp-post]
void IocpPort::post(CompletionKey key, std::size_t bytes) {
  // No OVERLAPPED: the worker sees operation == nullptr, a hand-made message.
  const auto count = static_cast<DWORD>(std::min<std::size_t>(bytes, std::numeric_limits<DWORD>::max()));
  if (!::PostQueuedCompletionStatus(port_, count, key, nullptr)) {
    throw_os_error(last_os_error(), "PostQueuedCompletionStatus");
  }
}
// [iocp-post]

std::size_t IocpPort::wait_many(std::span<Completion> out, std::chrono::milliseconds timeout) {
  if (out.empty()) return 0;
  const bool forever = timeout == kWaitForever;
  const auto deadline =
      forever ? std::chrono::steady_clock::time_point::max() : std::chrono::steady_clock::now() + timeout;
  std::array<OVERLAPPED_ENTRY, kBatchLimit> entries{};
  const auto wanted = static_cast<ULONG>(std::min(out.size(), entries.size()));

  for (;;) {
    DWORD wait_ms = INFINITE;
    if (!forever) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      wait_ms = to_wait_milliseconds(left);
    }
    // [iocp-dequeue]
    // The batch form of GetQueuedCompletionStatus: up to `wanted` entries
    // (key, OVERLAPPED*, byte count) in one call. Unlike the single form it
    // returns TRUE even for failed operations; their status is read below.
    ULONG removed = 0;
    if (!::GetQueuedCompletionStatusEx(port_, entries.data(), wanted, &removed, wait_ms, FALSE)) {
      const DWORD error = ::GetLastError();
      if (error == WAIT_TIMEOUT) return 0;
      throw_os_error(os_error(static_cast<int>(error)), "GetQueuedCompletionStatusEx");
    }
    // [iocp-dequeue]
    std::size_t count = 0;
    for (ULONG i = 0; i < removed; ++i) {
      if (finish(entries[i], out[count])) ++count;
    }
    // Every entry was internal — a short send that went back to the kernel,
    // or a zero-byte WSARecv followed by the real one: keep waiting, so
    // that the caller only ever sees finished operations.
    if (count > 0) return count;
    if (!forever && std::chrono::steady_clock::now() >= deadline) return 0;
  }
}

bool IocpPort::finish(const OVERLAPPED_ENTRY& entry, Completion& out) {
  out = Completion{};
  out.key = entry.lpCompletionKey;
  out.bytes = entry.dwNumberOfBytesTransferred;
  if (entry.lpOverlapped == nullptr) return true;  // from post()

  // [iocp-containing-record]
  // The OVERLAPPED is a member of an Operation: step back from the member's
  // address to the object's (what CONTAINING_RECORD computes).
  Operation* operation = CONTAINING_RECORD(entry.lpOverlapped, Operation, overlapped_);
  out.operation = operation;
  // [iocp-containing-record]

  // [iocp-status]
  // The outcome. A start that failed at once carries its own error code
  // (complete_at_once). Otherwise the kernel left an NTSTATUS in the
  // OVERLAPPED, and GetOverlappedResult converts it to the Win32 code that
  // GetQueuedCompletionStatus would have set: 995 for an operation
  // cancelled by CancelIoEx, 64 (ERROR_NETNAME_DELETED) for a connection
  // reset. An operation aborted by closesocket reports 995 on Windows but
  // 676 under Wine (ERROR_HANDLES_CLOSED, from STATUS_HANDLES_CLOSED): the
  // code is for the log, never for deciding what happened. (With bWait =
  // FALSE the handle argument is not used: all is read from the OVERLAPPED.)
  if (operation->immediate_error_ != 0) {
    out.error = os_error(operation->immediate_error_);
    operation->immediate_error_ = 0;
  } else {
    DWORD transferred = 0;
    if (!::GetOverlappedResult(nullptr, entry.lpOverlapped, &transferred, FALSE)) {
      out.error = last_os_error();
    }
  }
  // [iocp-status]

  switch (operation->kind()) {
    // [iocp-accept-context]
    case OperationKind::accept: {
      auto& accept = static_cast<AcceptOperation&>(*operation);
      if (!out.error) {
        // Until this call the accepted socket does not know it belongs to the
        // listener: getpeername, shutdown and the listener's options would
        // not work on it.
        const NativeSocket listener = accept.listener_;
        if (::setsockopt(accept.accepted_.native(), SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                         reinterpret_cast<const char*>(&listener), sizeof listener) == SOCKET_ERROR) {
          out.error = last_socket_error();
        }
      }
      if (out.error) accept.accepted_.close();  // take_socket() returns an empty Socket
      return true;
    }
    // [iocp-accept-context]
    // [iocp-short-send]
    case OperationKind::send: {
      auto& send = static_cast<SendOperation&>(*operation);
      send.sent_ += out.bytes;
      if (!out.error && send.sent_ < send.size()) {
        // A short send: Windows reports one only in unusual cases (it
        // normally completes a stream send whole or fails it), but the
        // contract says a send completes when every byte is written, so the
        // rest goes back to the kernel and this completion stays internal.
        submit_send(send.socket_, send);
        return false;
      }
      out.bytes = send.sent_;  // the whole operation: size() on success
      return true;
    }
    // [iocp-short-send]
    // [iocp-zero-byte-receive]
    case OperationKind::receive: {
      auto& receive = static_cast<ReceiveOperation&>(*operation);
      if (!receive.ready_ && !out.error) {
        // The zero-byte WSARecv completed: data, or the FIN, is waiting.
        // Its 0 bytes mean neither "closed" nor anything else, so it stays
        // internal; a WSARecv into a buffer from the pool follows, and *its*
        // completion is the one reported — with the bytes, or 0 for the FIN.
        receive.ready_ = true;
        submit_receive(receive.socket_, receive);
        return false;
      }
      return true;  // the real WSARecv, or an error of either (a reset, a cancel)
    }
    // [iocp-zero-byte-receive]
    case OperationKind::posted:
      return true;
  }
  return true;
}

// [iocp-create]
std::unique_ptr<CompletionPort> open_iocp_port() {
  // INVALID_HANDLE_VALUE and no existing port: create a new, empty port.
  // Concurrency 0 lets as many threads run at once as there are processors;
  // more workers than that may wait, and the kernel wakes them in LIFO
  // order, so the busiest thread stays hot.
  HANDLE port = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
  if (port == nullptr) throw_os_error(last_os_error(), "CreateIoCompletionPort");
  return std::make_unique<IocpPort>(port);
}
// [iocp-create]

}  // namespace iocp_chat::detail
