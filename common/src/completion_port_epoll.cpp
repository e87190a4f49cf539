// completion_port_epoll.cpp — the completion-port layer on Linux epoll:
// readiness turned into completions.
//
// IOCP idea shown: a completion port can be emulated on top of a readiness
// API, which is how Wine runs IOCP programs on Linux and how Asio's reactor
// works. epoll tells "this socket can be read now"; this backend then
// *performs* the pending operation (accept4, recv, send) on the caller's
// buffer and reports it as a completion — so the server above sees exactly
// what IOCP would have given it.
//
// How it fits together:
//   * Each associated socket has a Registration: its key and its pending
//     operations (any number of accepts, at most one receive and one send),
//     under the registration's own mutex.
//   * Sockets are registered EPOLLONESHOT: an event goes to one thread and
//     disarms the socket until that thread re-arms it, so two workers never
//     perform I/O on the same socket at once — "each completion to exactly
//     one worker" holds without a global lock.
//   * Completions that are not produced inside wait (posted ones, a send
//     finished at once when it is started, extra events of a batch) go
//     into a ready queue; an eventfd, also one-shot, wakes one sleeping
//     worker to collect them.
//   * cancel() is shutdown(SHUT_RDWR): every pending operation then becomes
//     ready and fails or reads end-of-stream, and is reported through the
//     normal path.
//   * If re-arming a socket fails, epoll will never report it again, so its
//     pending operations complete at once with that error (see arm()):
//     "every started operation completes" holds even then.
//   * Registrations are recycled, never freed while the port lives. A worker
//     may hold an event for a socket that another worker has meanwhile
//     finished with and its owner has closed; that stale event then finds a
//     registration that is idle or serves a new socket, retries nothing or
//     gets EAGAIN — where freeing it would have been a use-after-free.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <deque>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "backends.hpp"
#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/os_error.hpp"

namespace iocp_chat::detail {
namespace {

/// Most epoll events taken by one epoll_wait call.
constexpr int kMaxEvents = 64;

/// The port whose send completions this thread holds back (begin_batch); usually none.
thread_local const void* batching_port = nullptr;
/// The completions held back meanwhile.
thread_local std::vector<Completion> batched_completions;

/// Milliseconds left until `deadline` for epoll_wait (-1 = forever), rounded up.
int remaining_ms(bool forever, std::chrono::steady_clock::time_point deadline) {
  if (forever) return -1;
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

}  // namespace

/// The epoll backend (see the file comment).
class EpollPort final : public CompletionPort {
 public:
  /// epoll_create1 and the wake-up eventfd; throws std::system_error.
  EpollPort();
  /// Closes epoll and the eventfd; frees the registrations still there.
  ~EpollPort() override;
  EpollPort(const EpollPort&) = delete;
  EpollPort& operator=(const EpollPort&) = delete;

  Backend backend() const noexcept override { return Backend::epoll; }
  void associate(const Socket& socket, CompletionKey key) override;
  void start_accept(const Socket& listener, AcceptOperation& operation) override;
  void start_receive(const Socket& socket, ReceiveOperation& operation) override;
  void start_send(const Socket& socket, SendOperation& operation) override;
  void cancel(const Socket& socket) override;
  void close(Socket& socket) override;
  void post(CompletionKey key, std::size_t bytes) override;
  std::size_t wait_many(std::span<Completion> out, std::chrono::milliseconds timeout) override;
  /// Sends finished at once on this thread hold their completions until end_batch().
  void begin_batch() override;
  /// Queues the held completions together.
  void end_batch() override;

 private:
  /// One associated socket: its key and the operations waiting for readiness.
  struct Registration {
    std::mutex mutex;       ///< Guards the pending operations below.
    int fd = -1;            ///< The socket.
    CompletionKey key = 0;  ///< Returned with each completion.
    /// Pre-posted accepts, in order (a vector: an empty std::deque would cost
    /// every connection's registration half a kilobyte).
    std::vector<AcceptOperation*> accepts;
    ReceiveOperation* receive = nullptr;  ///< The pending receive, if any.
    SendOperation* send = nullptr;        ///< The pending send, if any.
    bool cancelled = false;               ///< cancel() was called: receives take no more data.
  };

  Registration& registration_of(const Socket& socket);
  void arm(Registration& registration, std::vector<Completion>& failed);
  void on_ready(Registration& registration, std::uint32_t events, std::vector<Completion>& done);
  static bool try_send(int fd, SendOperation& operation, std::error_code& error);
  void enqueue(std::span<const Completion> completions);
  void wake_one();

  int epoll_fd_ = -1;  ///< The epoll instance every socket is registered with.
  int wake_fd_ = -1;   ///< eventfd that wakes a worker sleeping in epoll_wait.

  std::shared_mutex table_mutex_;                     ///< Guards the three members below.
  std::unordered_map<int, Registration*> table_;      ///< fd → its registration.
  std::vector<std::unique_ptr<Registration>> owned_;  ///< Every registration ever made.
  std::vector<Registration*> idle_;                   ///< Closed ones, ready for reuse.

  std::mutex ready_mutex_;        ///< Guards ready_, sleepers_ and wake_pending_.
  std::deque<Completion> ready_;  ///< Completions waiting for a worker.
  int sleepers_ = 0;              ///< Workers inside epoll_wait right now.
  bool wake_pending_ = false;     ///< The eventfd was written and not read yet: no need to write again.
};

EpollPort::EpollPort() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_os_error(last_os_error(), "epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const auto error = last_os_error();
    ::close(epoll_fd_);
    throw_os_error(error, "eventfd");
  }
  // data.ptr == nullptr marks the wake-up eventfd among the sockets.
  epoll_event event{};
  event.events = EPOLLIN | EPOLLONESHOT;
  event.data.ptr = nullptr;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
    const auto error = last_os_error();
    ::close(wake_fd_);
    ::close(epoll_fd_);
    throw_os_error(error, "epoll_ctl(eventfd)");
  }
}

EpollPort::~EpollPort() {
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

// CreateIoCompletionPort(socket, port, key): readiness I/O needs the socket
// non-blocking; it joins epoll disarmed until an operation is started.
void EpollPort::associate(const Socket& socket, CompletionKey key) {
  const int fd = socket.native();
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw_os_error(last_os_error(), "fcntl(O_NONBLOCK)");
  }
  const std::unique_lock lock(table_mutex_);
  Registration* registration = nullptr;
  if (idle_.empty()) {
    registration = owned_.emplace_back(std::make_unique<Registration>()).get();
  } else {
    registration = idle_.back();
    idle_.pop_back();
  }
  {
    // A stale event may be looking at a recycled registration: change it under its lock.
    const std::lock_guard registration_lock(registration->mutex);
    registration->fd = fd;
    registration->key = key;
    registration->cancelled = false;
  }
  epoll_event event{};
  event.events = EPOLLONESHOT;
  event.data.ptr = registration;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    const auto error = last_os_error();
    idle_.push_back(registration);
    throw_os_error(error, "epoll_ctl(ADD)");
  }
  table_[fd] = registration;
}

EpollPort::Registration& EpollPort::registration_of(const Socket& socket) {
  const std::shared_lock lock(table_mutex_);
  const auto found = table_.find(socket.native());
  if (found == table_.end()) {  // Also after close(): the owner broke the contract.
    throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                            "socket was not associated with the completion port");
  }
  return *found->second;
}

// [epoll-arm]
// Re-arms the one-shot registration for what its pending operations wait for.
// Called with registration.mutex held; `failed` receives the completions of
// the operations that can no longer wait (the caller queues them once it has
// let go of the registration).
void EpollPort::arm(Registration& registration, std::vector<Completion>& failed) {
  std::uint32_t interest = 0;
  if (!registration.accepts.empty() || registration.receive != nullptr) interest |= EPOLLIN | EPOLLRDHUP;
  if (registration.send != nullptr) interest |= EPOLLOUT;
  if (interest == 0) return;  // Nothing pending: stay disarmed.
  epoll_event event{};
  event.events = interest | EPOLLONESHOT;
  event.data.ptr = &registration;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, registration.fd, &event) == 0) return;

  // epoll will never report this socket again (its descriptor was closed
  // or replaced behind the port's back: ENOENT, EBADF; or the kernel is
  // short of memory: ENOMEM), so its pending operations would wait for
  // ever. Each completes now with the error instead — one completion per
  // started operation, through the queue like any other — and the owner
  // sees a failed operation and closes the connection.
  const std::error_code error = last_os_error();
  for (AcceptOperation* accept : registration.accepts) failed.push_back({registration.key, accept, 0, error});
  registration.accepts.clear();
  if (registration.receive != nullptr) failed.push_back({registration.key, registration.receive, 0, error});
  registration.receive = nullptr;
  if (registration.send != nullptr) {
    failed.push_back({registration.key, registration.send, registration.send->sent_, error});
  }
  registration.send = nullptr;
}
// [epoll-arm]

// AcceptEx: queued until the listener is readable.
void EpollPort::start_accept(const Socket& listener, AcceptOperation& operation) {
  Registration& registration = registration_of(listener);
  std::vector<Completion> failed;  // Empty (no allocation) unless arming fails.
  {
    const std::lock_guard lock(registration.mutex);
    operation.key_ = registration.key;
    operation.listener_ = listener.native();
    operation.accepted_.close();
    registration.accepts.push_back(&operation);
    arm(registration, failed);
  }
  enqueue(failed);  // Only once the registration is released, as in start_send.
}

// WSARecv: queued until the socket is readable, holding no buffer meanwhile
// (on_ready takes one when there is something to read).
void EpollPort::start_receive(const Socket& socket, ReceiveOperation& operation) {
  Registration& registration = registration_of(socket);
  operation.release_buffer();  // the caller is done with the last completion's bytes
  std::vector<Completion> failed;
  {
    const std::lock_guard lock(registration.mutex);
    operation.key_ = registration.key;
    registration.receive = &operation;
    arm(registration, failed);
  }
  enqueue(failed);
}

// WSASend: written at once when the socket can take it (the usual case), and
// completed through the queue; otherwise the rest waits for EPOLLOUT.
void EpollPort::start_send(const Socket& socket, SendOperation& operation) {
  Registration& registration = registration_of(socket);
  std::unique_lock lock(registration.mutex);
  operation.key_ = registration.key;
  operation.sent_ = 0;
  std::error_code error;
  if (!try_send(registration.fd, operation, error)) {
    registration.send = &operation;
    std::vector<Completion> failed;  // Empty (no allocation) unless arming fails.
    arm(registration, failed);
    lock.unlock();
    enqueue(failed);  // Like `done` below, only once the registration is released.
    return;
  }
  const Completion done{registration.key, &operation, operation.sent_, error};
  lock.unlock();

  // Delivered only after the registration is released: its owner may close
  // the socket as soon as it sees this completion. Inside a batch, the
  // completions wait for end_batch() and are queued together: one lock and
  // at most one wake-up for the whole batch.
  if (batching_port == this) {
    batched_completions.push_back(done);
  } else {
    enqueue(std::span(&done, 1));
  }
}

// [epoll-cancel]
// CancelIoEx: shutting the socket down makes every pending operation ready;
// each then fails and completes as usual. A receive ends without taking the
// bytes still queued, as a cancelled WSARecv does: read after the shutdown,
// they would leave the queue empty, so that the close sends a FIN, not a
// reset, while the kernel no longer opens the window for them (it does not
// after SHUT_RD) — and a peer still sending would wait on a zero window
// until the kernel gives up on the orphaned socket, a minute later.
void EpollPort::cancel(const Socket& socket) {
  {
    const std::shared_lock lock(table_mutex_);
    const auto found = table_.find(socket.native());
    if (found != table_.end()) {
      const std::lock_guard registration_lock(found->second->mutex);
      found->second->cancelled = true;
    }
  }
  ::shutdown(socket.native(), SHUT_RDWR);
}
// [epoll-cancel]

// closesocket: retire the registration for reuse, then close.
void EpollPort::close(Socket& socket) {
  if (!socket.is_open()) return;
  {
    const std::unique_lock lock(table_mutex_);
    const auto found = table_.find(socket.native());
    if (found != table_.end()) {
      Registration* registration = found->second;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, socket.native(), nullptr);
      {
        const std::lock_guard registration_lock(registration->mutex);
        registration->fd = -1;
        registration->accepts.clear();
        registration->receive = nullptr;
        registration->send = nullptr;
      }
      table_.erase(found);
      idle_.push_back(registration);
    }
  }
  socket.close();
}

void EpollPort::begin_batch() { batching_port = this; }

void EpollPort::end_batch() {
  batching_port = nullptr;
  enqueue(batched_completions);
  batched_completions.clear();
}

// PostQueuedCompletionStatus.
void EpollPort::post(CompletionKey key, std::size_t bytes) {
  const Completion completion{key, nullptr, bytes, {}};
  enqueue(std::span(&completion, 1));
}

// [epoll-wake]
void EpollPort::enqueue(std::span<const Completion> completions) {
  if (completions.empty()) return;
  bool wake = false;
  {
    const std::lock_guard lock(ready_mutex_);
    ready_.insert(ready_.end(), completions.begin(), completions.end());
    // One wake-up at a time is enough: the woken worker passes the baton on.
    wake = sleepers_ > 0 && !wake_pending_;
    if (wake) wake_pending_ = true;
  }
  if (wake) wake_one();
}
// [epoll-wake]

void EpollPort::wake_one() {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: a wake-up is pending anyway.
  [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof one);
}

// Performs as much of a send as the socket takes now. Returns true when the
// operation is finished (every byte written, or `error` set).
bool EpollPort::try_send(int fd, SendOperation& operation, std::error_code& error) {
  while (!operation.unsent().empty()) {
    const std::span<const std::byte> unsent = operation.unsent();
    const ssize_t written = ::send(fd, unsent.data(), unsent.size(), MSG_NOSIGNAL);
    if (written >= 0) {
      operation.sent_ += static_cast<std::size_t>(written);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return false;
    } else {
      error = last_os_error();
      return true;
    }
  }
  return true;
}

// The heart of the emulation: the socket is ready, so perform what is pending
// and turn each finished operation into a completion.
void EpollPort::on_ready(Registration& registration, std::uint32_t events, std::vector<Completion>& done) {
  const std::lock_guard lock(registration.mutex);
  if (registration.fd < 0) return;  // A stale event for a closed socket.
  const bool readable = (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
  const bool writable = (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0;

  // Accept as many pre-posted accepts as there are connections waiting.
  while (readable && !registration.accepts.empty()) {
    AcceptOperation& operation = *registration.accepts.front();
    const int fd = ::accept4(registration.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
    if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    registration.accepts.erase(registration.accepts.begin());
    if (fd >= 0) {
      operation.accepted_ = Socket(fd);
      done.push_back({registration.key, &operation, 0, {}});
    } else {
      // Out of descriptors (EMFILE) or a shut-down listener (EINVAL): report it
      // on one accept and let the owner decide when to try again.
      done.push_back({registration.key, &operation, 0, last_os_error()});
      break;
    }
  }

  // [epoll-receive]
  if (readable && registration.receive != nullptr) {
    // Readiness is this backend's zero-byte receive: only now, with data (or
    // the FIN) waiting, does the operation take a buffer from the pool.
    ReceiveOperation& operation = *registration.receive;
    ssize_t received = -1;
    int read_errno = ENOMEM;  // if even the buffer cannot be had: the receive fails, the worker goes on
    std::byte* buffer = nullptr;
    if (registration.cancelled) {
      read_errno = ECANCELED;  // see cancel(): the queued bytes stay unread
    } else {
      try {
        buffer = operation.take_buffer();
      } catch (const std::bad_alloc&) {
      }
    }
    if (buffer != nullptr) {
      do {
        received = ::recv(registration.fd, buffer, operation.capacity_, 0);
      } while (received < 0 && errno == EINTR);
      read_errno = errno;
    }
    if (received >= 0) {
      registration.receive = nullptr;
      done.push_back({registration.key, &operation, static_cast<std::size_t>(received), {}});
    } else if (read_errno == EAGAIN || read_errno == EWOULDBLOCK) {
      operation.release_buffer();  // a wake-up with nothing to read: wait again, holding nothing
    } else {
      registration.receive = nullptr;
      done.push_back({registration.key, &operation, 0, os_error(read_errno)});
    }
  }
  // [epoll-receive]

  if (writable && registration.send != nullptr) {
    SendOperation& operation = *registration.send;
    std::error_code error;
    if (try_send(registration.fd, operation, error)) {
      registration.send = nullptr;
      done.push_back({registration.key, &operation, operation.sent_, error});
    }
  }

  arm(registration, done);  // If it fails, the operations still pending join `done`.
}

// GetQueuedCompletionStatusEx: first what is already queued; otherwise one
// thread's epoll_wait turns ready sockets into completions.
std::size_t EpollPort::wait_many(std::span<Completion> out, std::chrono::milliseconds timeout) {
  if (out.empty()) return 0;
  const bool forever = timeout == kWaitForever;
  const auto deadline =
      forever ? std::chrono::steady_clock::time_point::max() : std::chrono::steady_clock::now() + timeout;
  thread_local std::vector<Completion> done;

  for (;;) {
    {
      const std::lock_guard lock(ready_mutex_);
      if (!ready_.empty()) {
        const std::size_t count = std::min(out.size(), ready_.size());
        std::copy_n(ready_.begin(), count, out.begin());
        ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(count));
        // Pass the baton: if more are waiting, wake another sleeper for them.
        if (!ready_.empty() && sleepers_ > 0 && !wake_pending_) {
          wake_pending_ = true;
          wake_one();
        }
        return count;
      }
      // Counted as a sleeper before the lock is released, so an enqueue that
      // happens from now on knows to wake someone: no lost wake-up.
      ++sleepers_;
    }

    epoll_event events[kMaxEvents];
    const int count = ::epoll_wait(epoll_fd_, events, kMaxEvents, remaining_ms(forever, deadline));
    const int wait_errno = errno;
    {
      const std::lock_guard lock(ready_mutex_);
      --sleepers_;
    }
    if (count < 0 && wait_errno != EINTR) throw_os_error(os_error(wait_errno), "epoll_wait");

    done.clear();
    for (int i = 0; i < count; ++i) {
      if (events[i].data.ptr == nullptr) {
        // The wake-up eventfd: reset it and re-arm it; the loop rechecks the queue.
        std::uint64_t value = 0;
        [[maybe_unused]] const auto read = ::read(wake_fd_, &value, sizeof value);
        {
          const std::lock_guard lock(ready_mutex_);
          wake_pending_ = false;
        }
        epoll_event event{};
        event.events = EPOLLIN | EPOLLONESHOT;
        event.data.ptr = nullptr;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, wake_fd_, &event);
        continue;
      }
      on_ready(*static_cast<Registration*>(events[i].data.ptr), events[i].events, done);
    }

    if (!done.empty()) {
      const std::size_t taken = std::min(out.size(), done.size());
      std::copy_n(done.begin(), taken, out.begin());
      enqueue(std::span(done).subspan(taken));
      return taken;
    }
    if (!forever && std::chrono::steady_clock::now() >= deadline) {
      // One last look, so a completion queued during the final wait is not missed.
      const std::lock_guard lock(ready_mutex_);
      if (ready_.empty()) return 0;
    }
  }
}

std::unique_ptr<CompletionPort> open_epoll_port() { return std::make_unique<EpollPort>(); }

}  // namespace iocp_chat::detail
