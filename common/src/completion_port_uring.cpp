// completion_port_uring.cpp — the completion-port layer on Linux io_uring,
// the closest thing Linux has to an I/O completion port.
//
// IOCP idea shown: io_uring *is* a completion model. The program hands the
// kernel a request together with its buffer, the kernel does the I/O in the
// background, and later a completion appears in a queue that the program
// reads. The pieces map almost one to one:
//
//   Windows IOCP                        io_uring (through liburing)
//   ----------------------------------  ------------------------------------------
//   CreateIoCompletionPort (new port)   io_uring_queue_init_params: a pair of rings
//                                       shared with the kernel, SQ and CQ
//   AcceptEx / WSARecv / WSASend        an SQE (submission queue entry), filled by
//                                       io_uring_prep_accept / _recv / _sendmsg and
//                                       handed over by io_uring_submit
//   the OVERLAPPED pointer              the SQE's 64-bit user_data, given back
//                                       untouched in the CQE
//   a completion packet                 a CQE (completion queue entry): user_data,
//                                       and res = bytes transferred or -errno
//   GetQueuedCompletionStatusEx         io_uring_wait_cqe_timeout, then
//                                       io_uring_peek_batch_cqe
//   PostQueuedCompletionStatus          an IORING_OP_NOP, which completes at once
//   CancelIoEx                          shutdown(SHUT_RDWR) (see cancel())
//
// The kernel tries a socket operation at once; if the socket is not ready it
// waits for readiness internally and retries (IORING_FEAT_FAST_POLL) — the
// same thing the epoll backend does in user space, done for us.
//
// What io_uring lacks, this file adds:
//   * Completion keys. A CQE carries only user_data, so the port remembers
//     each socket's key (associate) and copies it into the operation when
//     the operation starts; the completion reads it back from there.
//   * Whole sends. The kernel may write fewer bytes than asked. The contract
//     says a send completes when every byte is written, so a short send is
//     resubmitted here from where it stopped, and only the last CQE becomes a
//     completion.
//   * Receives that hold no buffer while they wait. A recv SQE pins its
//     buffer until data comes, for ever on an idle connection. So a receive
//     is a POLL_ADD for POLLIN (the zero-byte WSARecv of IOCP servers), and
//     only when that completes is a buffer taken from the pool and the data
//     read with a non-blocking recv (read_ready).
//   * Operations that outlive their thread. The kernel finishes a socket
//     operation that had to wait in the context of the thread that started
//     it; if that thread has exited, recent kernels (seen on 6.18) cancel it
//     instead: ECANCELED, no data moved (a send reports what it had already
//     written). IOCP does not (since Windows Vista), and a thread that starts
//     a receive and ends is allowed, so such an operation is started again
//     here, from the thread that reaped its CQE. (This backend never asks
//     io_uring to cancel anything, so ECANCELED has no other meaning here.)
//   * Many threads on one queue. IOCP lets any number of threads start
//     operations and wait on one port. An io_uring's two rings are plain
//     shared memory, each with a single producer and a single consumer on
//     the program's side, so:
//       - submission_lock_ is held around get_sqe / prep / submit;
//       - reaper_lock_, a lock with a timeout, lets one thread at a time
//         read the CQ and sleep in the kernel for more; the other waiters
//         queue for the lock, each with its own timeout (leader/followers).
//         The holder turns CQEs into at most out.size() completions, marks
//         those CQEs seen and lets go, so each completion reaches exactly
//         one thread.
//     One ring for the whole port, not one per worker: that keeps IOCP's
//     promise that any thread may start an operation and any worker may
//     receive its completion, with no per-thread bookkeeping.
//   * Starts that never wait. WSARecv and WSASend return at once; here a
//     start is a submission, which the kernel may refuse for a while
//     (EAGAIN; EBUSY on Linux 5.x while completions overflow the CQ). A
//     refused start stays queued in the port (the SQ, then deferred_) and
//     goes to the kernel with the next submission, or from the reaper
//     before it sleeps. Nobody sleeps and retries: the reaper restarts
//     operations itself (above), and waiting there for the CQ to drain
//     would be waiting for itself. For the same reason the reaper marks the
//     CQEs of a batch seen before it restarts anything.
//
// user_data layout (64 bits), as this file writes it:
//   kPostedTag (= 1)   a posted completion: its key and byte count wait in
//                      posted_ (FIFO); each such NOP takes one entry.
//   anything else      the address of the Operation (aligned to 8 bytes, so
//                      never 1) — the OVERLAPPED pointer of this backend.
//
// Needs Linux 5.11 or newer (IORING_FEAT_NODROP: completions that overflow
// the CQ are kept, not dropped; IORING_FEAT_EXT_ARG: a timed wait that does
// not touch the SQ) and liburing 2.2 or newer (Debian 12: liburing-dev 2.3).
// Where io_uring cannot start — an older kernel, or a container whose
// seccomp profile blocks io_uring_setup — open_uring_port() throws, and
// `--backend auto` falls back to epoll.
//
// Test with: ctest --test-dir build/linux -L common   (the socket tests run on
// every compiled backend, this one included).
#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <unordered_map>
#include <utility>

#include "backends.hpp"
#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/os_error.hpp"
#include "iocp_chat/sync.hpp"

namespace iocp_chat::detail {
namespace {

using Clock = std::chrono::steady_clock;

/// SQ size. Every start submits at once, so the SQ is almost always empty;
/// the room is for bursts from many threads.
constexpr unsigned kSubmissionEntries = 4096;
/// CQ size: room for the receives, sends and accepts of thousands of
/// clients finishing together. More still is kept by the kernel (NODROP).
constexpr unsigned kCompletionEntries = 4 * kSubmissionEntries;
/// Most CQEs looked at per io_uring_peek_batch_cqe call.
constexpr unsigned kPeekBatch = 64;
/// Longest sleep of the reaper while submissions the kernel refused wait
/// in the port: how soon they are offered again (see wait_many).
constexpr std::chrono::milliseconds kRetryTick{1};
/// The port whose starts on this thread are held for one submission (begin_batch); usually none.
thread_local const void* batching_port = nullptr;
/// user_data of the NOP that announces a posted completion (see the layout above).
constexpr std::uint64_t kPostedTag = 1;
static_assert(alignof(Operation) > 1, "an Operation's address must never equal kPostedTag");

/// When a wait of `timeout` ends; std::nullopt for kWaitForever (INFINITE)
/// or a timeout too long for the clock to represent.
std::optional<Clock::time_point> deadline_after(std::chrono::milliseconds timeout) {
  if (timeout == kWaitForever) return std::nullopt;
  const auto now = Clock::now();
  if (timeout > std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - now)) {
    return std::nullopt;
  }
  return now + std::max(timeout, std::chrono::milliseconds::zero());
}

/// A lock that can give up at a deadline (what std::timed_mutex offers),
/// built from a mutex and a condition variable. Written out because
/// std::timed_mutex waits with pthread_mutex_clocklock, which the
/// ThreadSanitizer of clang 14 cannot see, while it does see condition
/// variables. Works with std::unique_lock (lock, unlock, try_lock_until).
class TimedLock {
 public:
  /// Blocks until this thread holds the lock.
  void lock() {
    std::unique_lock guard(mutex_);
    released_.wait(guard, [this] { return !held_; });
    held_ = true;
  }
  /// Blocks until this thread holds the lock or `deadline` passes; true if it holds it.
  bool try_lock_until(Clock::time_point deadline) {
    std::unique_lock guard(mutex_);
    if (!released_.wait_until(guard, deadline, [this] { return !held_; })) return false;
    held_ = true;
    return true;
  }
  /// Lets the next waiting thread in.
  void unlock() {
    {
      const std::lock_guard guard(mutex_);
      held_ = false;
    }
    released_.notify_one();
  }

 private:
  std::mutex mutex_;                  ///< Guards held_.
  std::condition_variable released_;  ///< Signalled on unlock.
  bool held_ = false;                 ///< True while some thread holds the lock.
};

/// What the reaper keeps of a CQE: it marks the CQE seen before acting on
/// it, and from then on the kernel may reuse the slot.
struct SeenCqe {
  std::uint64_t user_data;  ///< The SQE's user_data, given back untouched.
  int res;                  ///< Bytes transferred, a new socket, or -errno.
};

/// A relative time in the kernel's own timespec, for io_uring_wait_cqe_timeout.
__kernel_timespec to_kernel_timespec(Clock::duration duration) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(duration);
  __kernel_timespec timespec{};
  timespec.tv_sec = seconds.count();
  timespec.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(duration - seconds).count();
  return timespec;
}

}  // namespace

/// The io_uring backend (see the file comment).
class UringPort final : public CompletionPort {
 public:
  /// CreateIoCompletionPort with no socket: sets up a ring of `entries` SQ
  /// slots and `cq_entries` CQ slots; throws std::system_error when io_uring
  /// cannot start or lacks what we need. `refuse_while_overflowed`: see
  /// open_uring_port_for_test.
  UringPort(unsigned entries, unsigned cq_entries, bool refuse_while_overflowed);
  /// CloseHandle(port): tears the ring down (the kernel cancels what is left).
  ~UringPort() override;
  UringPort(const UringPort&) = delete;
  UringPort& operator=(const UringPort&) = delete;

  /// Backend::uring.
  Backend backend() const noexcept override { return Backend::uring; }
  /// CreateIoCompletionPort(socket, port, key).
  void associate(const Socket& socket, CompletionKey key) override;
  /// AcceptEx.
  void start_accept(const Socket& listener, AcceptOperation& operation) override;
  /// WSARecv.
  void start_receive(const Socket& socket, ReceiveOperation& operation) override;
  /// WSASend.
  void start_send(const Socket& socket, SendOperation& operation) override;
  /// CancelIoEx.
  void cancel(const Socket& socket) override;
  /// closesocket.
  void close(Socket& socket) override;
  /// PostQueuedCompletionStatus.
  void post(CompletionKey key, std::size_t bytes) override;
  /// GetQueuedCompletionStatusEx.
  std::size_t wait_many(std::span<Completion> out, std::chrono::milliseconds timeout) override;
  /// Starts on this thread only prepare their SQEs until end_batch().
  void begin_batch() override;
  /// One io_uring_enter for every SQE prepared since begin_batch().
  void end_batch() override;

 private:
  /// Records `operation` as in flight on `socket` and gives it the socket's key.
  void begin(const Socket& socket, Operation& operation) EXCLUDES(table_lock_);
  /// True once cancel() was called on the socket (and it is not closed yet).
  bool was_cancelled(NativeSocket socket) EXCLUDES(table_lock_);
  /// Queues the SQE that starts (or restarts) `operation` and hands it to the kernel; never waits.
  void submit(Operation& operation) EXCLUDES(submission_lock_);
  /// Puts a start (`operation`; nullptr: a posted NOP) into a free SQE, or in deferred_ if none is free.
  void queue(Operation* operation) REQUIRES(submission_lock_);
  /// Fills `sqe` for `operation` (nullptr: a posted NOP).
  void prepare(io_uring_sqe& sqe, Operation* operation) REQUIRES(submission_lock_);
  /// Hands the kernel every queued SQE and deferred start; false if it refused some (they stay queued).
  bool hand_over() REQUIRES(submission_lock_);
  /// One io_uring_submit (or the refusal of an older kernel, in a test port).
  int kernel_submit() REQUIRES(submission_lock_);
  /// Turns waiting CQEs into completions; the caller holds reaper_lock_.
  std::size_t reap(std::span<Completion> out);
  /// One CQE → a completion in `out`; false if it yields none.
  bool complete(const SeenCqe& cqe, Completion& out);
  /// Reads the data of the receives whose poll completed; returns how many completions remain.
  std::size_t read_ready(std::span<Completion> out) EXCLUDES(submission_lock_);

  io_uring ring_{};  ///< The SQ and CQ, shared with the kernel.
  /// Tests only: answer submissions as Linux 5.x did under CQ overflow (kernel_submit).
  const bool refuse_while_overflowed_;

  /// The SQ side of ring_ has one writer at a time: whoever holds this.
  CriticalSection submission_lock_;
  /// Starts that found the SQ full while the kernel refused to take it
  /// (nullptr: a posted NOP), oldest first; they get SQEs as room appears.
  std::deque<Operation*> deferred_ GUARDED_BY(submission_lock_);
  /// The kernel refused a submission and something still waits to be handed
  /// over (in the SQ or in deferred_). Read without the lock by the reaper,
  /// which then retries before it sleeps, and sleeps at most kRetryTick.
  std::atomic<bool> refused_{false};

  /// The CQ side of ring_ has one reader at a time: the thread holding this
  /// (a timed lock, so a waiter with a timeout still returns on time).
  TimedLock reaper_lock_;

  CriticalSection table_lock_;  ///< Guards keys_.
  /// What the port knows of an associated socket.
  struct SocketEntry {
    CompletionKey key = 0;   ///< Returned with each of its completions.
    bool cancelled = false;  ///< cancel() was called: receives take no more data.
  };
  /// Socket → its key (what CreateIoCompletionPort records) and cancel mark.
  std::unordered_map<NativeSocket, SocketEntry> keys_ GUARDED_BY(table_lock_);
  /// How many entries of keys_ are marked cancelled: while none is, a
  /// receive needs no look at the table (the busy server's usual case).
  std::atomic<std::size_t> cancelled_sockets_{0};

  CriticalSection posted_lock_;  ///< Guards posted_.
  /// Posted completions (key, bytes), oldest first; one kPostedTag NOP each.
  std::deque<std::pair<CompletionKey, std::size_t>> posted_ GUARDED_BY(posted_lock_);
};

UringPort::UringPort(unsigned entries, unsigned cq_entries, bool refuse_while_overflowed)
    : refuse_while_overflowed_(refuse_while_overflowed) {
  // Our CQ size, clamped to the kernel's limit. Not SINGLE_ISSUER,
  // DEFER_TASKRUN or COOP_TASKRUN: those assume that the thread that submits
  // also comes back to the ring to finish the work, and here any thread may
  // submit, then block somewhere else or exit.
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
  params.cq_entries = cq_entries;
  if (const int result = io_uring_queue_init_params(entries, &ring_, &params); result < 0) {
    throw_os_error(os_error(-result), "io_uring_setup");
  }

  // Started is not enough: check for each feature and operation this file
  // uses, so that `--backend auto` falls back to epoll instead of failing later.
  const char* missing = nullptr;
  if ((params.features & IORING_FEAT_NODROP) == 0) {
    missing = "IORING_FEAT_NODROP";
  } else if ((params.features & IORING_FEAT_EXT_ARG) == 0) {
    missing = "IORING_FEAT_EXT_ARG";
  } else if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_); probe == nullptr) {
    missing = "IORING_REGISTER_PROBE";
  } else {
    for (const auto& [opcode, name] :
         {std::pair{IORING_OP_NOP, "IORING_OP_NOP"}, std::pair{IORING_OP_ACCEPT, "IORING_OP_ACCEPT"},
          std::pair{IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD"},
          std::pair{IORING_OP_SENDMSG, "IORING_OP_SENDMSG"}}) {
      if (io_uring_opcode_supported(probe, opcode) == 0) {
        missing = name;
        break;
      }
    }
    io_uring_free_probe(probe);
  }
  if (missing != nullptr) {
    io_uring_queue_exit(&ring_);
    throw_os_error(os_error(ENOSYS),
                   std::string("io_uring lacks ") + missing + " (needs Linux 5.11 or newer)");
  }
}

UringPort::~UringPort() { io_uring_queue_exit(&ring_); }

// CreateIoCompletionPort(socket, port, key). io_uring needs no per-socket
// registration; only the key is remembered. The socket keeps its blocking
// mode: io_uring never blocks on it either way.
void UringPort::associate(const Socket& socket, CompletionKey key) {
  const CriticalSectionLock lock(table_lock_);
  SocketEntry& entry = keys_[socket.native()];
  if (entry.cancelled)
    cancelled_sockets_.fetch_sub(1, std::memory_order_relaxed);  // a number reused unclosed
  entry = SocketEntry{key, false};
}

// The start of every operation: the key given at association and the socket
// go into the operation (the CQE will only give the operation back; the
// socket is needed to start it again: the rest of a short send, or an
// operation cancelled because its thread exited). A socket never associated, or already closed, is
// the caller's bug, reported at once as the epoll backend does.
void UringPort::begin(const Socket& socket, Operation& operation) {
  const CriticalSectionLock lock(table_lock_);
  const auto found = keys_.find(socket.native());
  if (found == keys_.end()) {
    throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                            "socket was not associated with the completion port");
  }
  operation.key_ = found->second.key;
  operation.socket_ = socket.native();
}

// AcceptEx.
void UringPort::start_accept(const Socket& listener, AcceptOperation& operation) {
  begin(listener, operation);
  operation.listener_ = listener.native();
  operation.accepted_.close();
  submit(operation);
}

// WSARecv, the zero-byte way: what goes to the kernel is a POLL_ADD for
// POLLIN, which holds no buffer; read_ready() reads once it completes.
void UringPort::start_receive(const Socket& socket, ReceiveOperation& operation) {
  begin(socket, operation);
  operation.release_buffer();  // the caller is done with the last completion's bytes
  operation.ready_ = false;
  submit(operation);
}

// WSASend: one buffer, written whole (complete() resubmits the rest of a short send).
void UringPort::start_send(const Socket& socket, SendOperation& operation) {
  begin(socket, operation);
  operation.sent_ = 0;
  submit(operation);
}

// Every start and restart of an operation comes here: at its start, and
// again when complete() finds it unfinished (then on the reaping thread).
void UringPort::submit(Operation& operation) {
  const CriticalSectionLock lock(submission_lock_);
  queue(&operation);
  // Inside a batch the SQE waits in the SQ for end_batch() (or for any
  // other thread's submission, which takes every SQE that is ready).
  if (batching_port != this) hand_over();
}

// [uring-batch]
void UringPort::begin_batch() { batching_port = this; }

void UringPort::end_batch() {
  batching_port = nullptr;
  const CriticalSectionLock lock(submission_lock_);
  hand_over();
}
// [uring-batch]

// A start gets an SQE in order: none while earlier ones wait in deferred_.
// The SQ fills only inside a long batch, or when the kernel has refused
// earlier submissions; handing those over makes room, and if the kernel
// still refuses, the start waits in deferred_ — it does not wait here.
void UringPort::queue(Operation* operation) {
  io_uring_sqe* sqe = deferred_.empty() ? io_uring_get_sqe(&ring_) : nullptr;
  if (sqe == nullptr && hand_over()) sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    deferred_.push_back(operation);
    refused_.store(true);
    return;
  }
  prepare(*sqe, operation);
}

// The one place an SQE is filled. user_data is the operation's address, or
// kPostedTag for a posted completion's NOP.
void UringPort::prepare(io_uring_sqe& sqe, Operation* operation) {
  if (operation == nullptr) {
    io_uring_prep_nop(&sqe);
    io_uring_sqe_set_data64(&sqe, kPostedTag);
    return;
  }
  const NativeSocket socket = operation->socket_;
  switch (operation->kind_) {
    case OperationKind::accept:
      // accept4(listener, SOCK_CLOEXEC) once a connection is there; the new
      // socket is blocking, like one from accept().
      io_uring_prep_accept(&sqe, socket, nullptr, nullptr, SOCK_CLOEXEC);
      break;
    // [uring-receive]
    case OperationKind::receive:
      // Not a recv with a buffer, which would pin that buffer for as long as
      // the client stays quiet: a one-shot poll for "readable" (data or the
      // FIN), this backend's zero-byte WSARecv. The read follows in
      // read_ready(), into a buffer taken at that moment.
      io_uring_prep_poll_add(&sqe, socket, POLLIN);
      break;
    // [uring-receive]
    case OperationKind::send: {
      auto& send = static_cast<SendOperation&>(*operation);
      const std::span<const std::byte> unsent = send.unsent();  // all of it, or a short send's rest
      if (unsent.empty()) {
        io_uring_prep_nop(&sqe);  // Nothing to send: complete at once with 0 bytes.
      } else {
        // MSG_NOSIGNAL: a peer that has gone is an EPIPE completion, not a SIGPIPE.
        io_uring_prep_send(&sqe, socket, unsent.data(), std::min<std::size_t>(unsent.size(), UINT32_MAX),
                           MSG_NOSIGNAL);
      }
      break;
    }
    case OperationKind::posted:
      io_uring_prep_nop(&sqe);  // Never an Operation's kind.
      break;
  }
  io_uring_sqe_set_data(&sqe, operation);
}

// Hands every queued SQE to the kernel (io_uring_enter), refilling the SQ
// from deferred_ as room appears. Once the kernel has taken an SQE it always
// answers with exactly one CQE, even for an error such as a bad socket —
// which is how "every started operation completes exactly once" holds here.
//
// It never waits. The kernel may refuse (EAGAIN: short of memory; EBUSY:
// older kernels, while completions that overflowed the CQ wait for the
// program to drain it). Sleeping and retrying here, as this file once did,
// is a trap: the reaping thread restarts operations through this function,
// and it would wait for a drain that only it could do. So what is refused
// stays queued, refused_ says so, and it is handed over by the next
// submission of any thread, or by the reaper before it sleeps (wait_many).
bool UringPort::hand_over() {
  for (;;) {
    while (!deferred_.empty()) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      prepare(*sqe, deferred_.front());
      deferred_.pop_front();
    }
    if (io_uring_sq_ready(&ring_) == 0) break;  // The kernel has taken everything.
    const int result = kernel_submit();
    if (result > 0 || result == -EINTR) continue;
    if (result == 0 || result == -EAGAIN || result == -EBUSY) {
      refused_.store(true);
      return false;
    }
    // EBADF, EFAULT, EINVAL...: the ring itself is broken, not one operation.
    throw_os_error(os_error(-result), "io_uring_submit");
  }
  refused_.store(false);
  return true;
}

// CancelIoEx. shutdown(SHUT_RDWR) makes everything the kernel holds for the
// socket finish: a pending receive's poll fires (and the receive then fails
// with ECANCELED), a pending send fails (EPIPE), a pending accept on a
// listener fails (EINVAL). Unlike an io_uring cancel request it also
// sticks: an operation started after it, by a worker that did not know yet,
// finishes at once the same way. (It sends the peer a FIN, which is fine:
// cancel() is how a connection ends.) A receive ends without taking the
// bytes still queued, as a cancelled WSARecv does (read_ready checks the
// mark): see the epoll backend's cancel() for the stuck peer that reading
// them would cause.
void UringPort::cancel(const Socket& socket) {
  {
    const CriticalSectionLock lock(table_lock_);
    const auto found = keys_.find(socket.native());
    if (found != keys_.end() && !found->second.cancelled) {
      found->second.cancelled = true;
      cancelled_sockets_.fetch_add(1, std::memory_order_release);
    }
  }
  ::shutdown(socket.native(), SHUT_RDWR);  // after the mark: the poll it wakes finds it
}

bool UringPort::was_cancelled(NativeSocket socket) {
  if (cancelled_sockets_.load(std::memory_order_acquire) == 0) return false;
  const CriticalSectionLock lock(table_lock_);
  const auto found = keys_.find(socket);
  return found != keys_.end() && found->second.cancelled;
}

// closesocket. The key is forgotten *before* the descriptor is closed: once
// closed, the number can be handed to a new connection at once, and
// erasing after that could erase the new connection's key.
void UringPort::close(Socket& socket) {
  if (!socket.is_open()) return;
  {
    const CriticalSectionLock lock(table_lock_);
    const auto found = keys_.find(socket.native());
    if (found != keys_.end()) {
      if (found->second.cancelled) cancelled_sockets_.fetch_sub(1, std::memory_order_relaxed);
      keys_.erase(found);
    }
  }
  socket.close();
}

// [uring-post]
// PostQueuedCompletionStatus. A CQE has no room for both a key and a byte
// count, so they wait in posted_, and a NOP tagged kPostedTag says "one is
// there" — its CQE also wakes a thread sleeping in the kernel.
void UringPort::post(CompletionKey key, std::size_t bytes) {
  {
    const CriticalSectionLock lock(posted_lock_);
    posted_.emplace_back(key, bytes);
  }
  const CriticalSectionLock lock(submission_lock_);
  queue(nullptr);
  hand_over();
}
// [uring-post]

// GetQueuedCompletionStatusEx. One thread at a time holds reaper_lock_: it
// takes what the CQ holds, or sleeps in the kernel until a CQE arrives or
// its time is up. Everyone else waits for the lock until their own deadline.
std::size_t UringPort::wait_many(std::span<Completion> out, std::chrono::milliseconds timeout) {
  if (out.empty()) return 0;
  const std::optional<Clock::time_point> deadline = deadline_after(timeout);

  std::unique_lock reaper(reaper_lock_, std::defer_lock);
  if (!deadline) {
    reaper.lock();
  } else if (!reaper.try_lock_until(*deadline)) {
    return 0;
  }

  for (;;) {
    const std::size_t count = reap(out);

    // Submissions the kernel refused wait in the port. The CQ has just been
    // drained, which is what an older kernel waited for: hand them over now,
    // since the reaper may be the only thread left to do it (everyone else
    // may be waiting for completions). If the kernel still refuses, sleep
    // at most kRetryTick, so that they are retried soon; never for ever
    // with operations the kernel has not even seen.
    bool left_waiting = false;
    if (refused_.load()) {
      const CriticalSectionLock lock(submission_lock_);
      left_waiting = !hand_over();
    }
    if (count > 0) {
      // The reads of ready receives happen outside the CQ lock, so that
      // another worker can reap meanwhile.
      reaper.unlock();
      const std::size_t finished = read_ready(out.first(count));
      if (finished > 0) return finished;
      // Every one was a wake-up with nothing to read, now polled again:
      // the caller still waits for a completion, until its deadline.
      if (!deadline) {
        reaper.lock();
      } else if (Clock::now() >= *deadline || !reaper.try_lock_until(*deadline)) {
        return 0;
      }
      continue;
    }

    io_uring_cqe* cqe = nullptr;
    int result = 0;
    if (!deadline && !left_waiting) {
      result = io_uring_wait_cqe(&ring_, &cqe);
    } else {
      Clock::duration left = deadline ? *deadline - Clock::now() : Clock::duration(kRetryTick);
      if (left <= Clock::duration::zero()) return 0;
      if (left_waiting) left = std::min<Clock::duration>(left, kRetryTick);
      __kernel_timespec timespec = to_kernel_timespec(left);
      result = io_uring_wait_cqe_timeout(&ring_, &cqe, &timespec);
    }
    // 0: a CQE is there. ETIME: time is up (the loop looks once more, then
    // returns 0). EINTR: a signal, e.g. Ctrl+C. EAGAIN, EBUSY: the kernel
    // wants the CQ drained first. All of these mean: look again.
    if (result < 0 && result != -ETIME && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
      throw_os_error(os_error(-result), "io_uring_enter (wait)");
    }
  }
}

// Turns CQEs into up to out.size() completions; the caller holds
// reaper_lock_. Some CQEs yield none (an operation started again), so this
// may consume more CQEs than it returns completions, never more
// completions than out has room for.
std::size_t UringPort::reap(std::span<Completion> out) {
  std::size_t filled = 0;
  while (filled < out.size()) {
    io_uring_cqe* cqes[kPeekBatch];
    const auto wanted = static_cast<unsigned>(std::min<std::size_t>(out.size() - filled, kPeekBatch));
    const unsigned count = io_uring_peek_batch_cqe(&ring_, cqes, wanted);
    if (count == 0) break;

    // Copy what matters of each CQE, then mark them seen *before* acting on
    // any: acting may restart an operation, which is a submission, and a
    // kernel that wants the CQ drained first (see hand_over) must find
    // these slots free — nobody else will free them while we hold the CQ.
    SeenCqe seen[kPeekBatch];
    for (unsigned i = 0; i < count; ++i) seen[i] = {io_uring_cqe_get_data64(cqes[i]), cqes[i]->res};
    io_uring_cq_advance(&ring_, count);  // The kernel may reuse the slots now.

    // Handoff: the threads that started these operations wrote to them,
    // then submitted under submission_lock_. Taking it once, after the CQEs
    // are seen, orders their writes before our reads in the C++ memory model
    // (and for ThreadSanitizer), which cannot see the kernel's own ordering.
    { const CriticalSectionLock handoff(submission_lock_); }

    for (unsigned i = 0; i < count; ++i) {
      if (complete(seen[i], out[filled])) ++filled;
    }
  }
  return filled;
}

// One CQE → at most one completion. Decodes user_data (see the layout in the
// file comment); returns false when the CQE does not end its operation.
bool UringPort::complete(const SeenCqe& cqe, Completion& out) {
  if (cqe.user_data == kPostedTag) {
    const CriticalSectionLock lock(posted_lock_);
    out = Completion{posted_.front().first, nullptr, posted_.front().second, {}};
    posted_.pop_front();
    return true;
  }

  // [uring-user-data]
  // The OVERLAPPED pointer coming back: this backend's CONTAINING_RECORD.
  Operation& operation = *reinterpret_cast<Operation*>(static_cast<std::uintptr_t>(cqe.user_data));
  const int result = cqe.res;  // bytes transferred, a new socket, or -errno
  // [uring-user-data]

  // Not finished yet? Then start the rest, and report nothing.
  bool unfinished = result == -ECANCELED;  // its thread exited: see the file comment
  if (operation.kind_ == OperationKind::send && result > 0) {
    auto& send = static_cast<SendOperation&>(operation);
    send.sent_ += static_cast<std::size_t>(result);
    unfinished = send.sent_ < send.size();  // a short send
  }
  std::error_code restart_error;
  if (unfinished) {
    // The CQE is already marked seen, so a failure to restart must become
    // this operation's completion, or it would never complete at all.
    try {
      submit(operation);
      return false;
    } catch (const std::system_error& error) {
      restart_error = error.code();
    } catch (const std::bad_alloc&) {
      restart_error = std::make_error_code(std::errc::not_enough_memory);
    }
  }

  out = Completion{operation.key_, &operation, 0, {}};
  if (result < 0) out.error = os_error(-result);  // strerror's words, e.g. "Connection reset by peer"
  if (restart_error) out.error = restart_error;
  switch (operation.kind_) {
    case OperationKind::accept:
      if (result >= 0) static_cast<AcceptOperation&>(operation).accepted_ = Socket(result);
      break;
    case OperationKind::receive:
      // The poll fired (result: its event mask): data or the FIN is there.
      // The read itself is read_ready()'s, after the CQ lock is let go.
      if (result >= 0) static_cast<ReceiveOperation&>(operation).ready_ = true;
      break;
    case OperationKind::send: {
      auto& send = static_cast<SendOperation&>(operation);
      if (result == 0 && send.sent_ < send.size()) {
        // A stream socket never writes 0 bytes of a non-empty send; were it
        // to, resubmitting would spin forever. Report an I/O error instead.
        out.error = os_error(EIO);
      }
      out.bytes = send.sent_;  // all of it, unless out.error says otherwise
      break;
    }
    case OperationKind::posted:
      break;  // Never an Operation's kind.
  }
  return true;
}

// [uring-read-ready]
// The second half of a receive: its poll completed, so a buffer is taken
// from the pool and the data read without waiting (MSG_DONTWAIT). 0 bytes
// is the FIN, as a recv's CQE would have said. A poll can fire with nothing
// left to read; then the buffer goes back and the poll is submitted again,
// and that entry is dropped from `out` — the caller sees one completion per
// receive, with data, the FIN or an error. Returns how many remain.
std::size_t UringPort::read_ready(std::span<Completion> out) {
  std::size_t kept = 0;
  for (Completion& completion : out) {
    if (completion.kind() == OperationKind::receive) {
      auto& receive = static_cast<ReceiveOperation&>(*completion.operation);
      if (receive.ready_) {
        receive.ready_ = false;
        ssize_t received = -1;
        int read_errno = ENOMEM;  // if even the buffer cannot be had: the receive fails
        if (was_cancelled(receive.socket_)) {
          read_errno = ECANCELED;  // see cancel(): the queued bytes stay unread
        } else {
          try {
            std::byte* buffer = receive.take_buffer();
            do {
              received = ::recv(receive.socket_, buffer, receive.capacity_, MSG_DONTWAIT);
            } while (received < 0 && errno == EINTR);
            read_errno = errno;
          } catch (const std::bad_alloc&) {
          }
        }
        if (received >= 0) {
          completion.bytes = static_cast<std::size_t>(received);
        } else if (read_errno == EAGAIN || read_errno == EWOULDBLOCK) {
          receive.release_buffer();  // nothing after all: wait again, holding nothing
          try {
            submit(receive);
            continue;  // no completion yet
          } catch (const std::system_error& error) {
            completion.error = error.code();
          } catch (const std::bad_alloc&) {
            completion.error = std::make_error_code(std::errc::not_enough_memory);
          }
        } else {
          completion.error = os_error(read_errno);
        }
      }
    }
    out[kept++] = completion;
  }
  return kept;
}
// [uring-read-ready]

// io_uring_submit. A port made by open_uring_port_for_test first answers as
// Linux 5.x did while completions overflowed the CQ: it moves what fits of
// the overflow into the CQ (an io_uring_enter with GETEVENTS does that on
// every kernel) and refuses with EBUSY, taking nothing, if some is left.
// Newer kernels accept the submission instead, so without this a test could
// never reach the refusal.
int UringPort::kernel_submit() {
  if (refuse_while_overflowed_ && io_uring_cq_has_overflow(&ring_)) {
    io_uring_get_events(&ring_);
    if (io_uring_cq_has_overflow(&ring_)) return -EBUSY;
  }
  return io_uring_submit(&ring_);
}

std::unique_ptr<CompletionPort> open_uring_port() {
  return std::make_unique<UringPort>(kSubmissionEntries, kCompletionEntries, false);
}

std::unique_ptr<CompletionPort> open_uring_port_for_test(unsigned entries) {
  return std::make_unique<UringPort>(entries, 2 * entries, true);
}

}  // namespace iocp_chat::detail
