// server_2018.hpp — step one: the 2018 university project's chat server, its
// design kept, on this repository's completion-port layer. Every chunk of
// bytes a client sends goes to every client. The whole server is this file.
//
// IOCP ideas shown: worker threads (2 × hardware threads) looping on the
// port's wait (GetQueuedCompletionStatus); one accept (AcceptEx) kept posted;
// one receive (WSARecv, 1024 bytes) per client, whose completion key is the
// client's address; a std::list of clients under a CriticalSection, and an
// InterlockedCounter of them.
//
// THE FLAW, kept on purpose — the lesson of this step: broadcast() sends to
// every client with a *blocking* send while holding the critical section.
// One client that stops reading fills its socket buffers; the send to it then
// waits for ever, holding the lock. Every completion needs that lock, so every
// other worker soon waits too: nobody receives, nobody gets in, the chat
// freezes for everyone until that client leaves. tests/v1/server_2018_test.cpp
// shows and measures it; ver.1 (../server/) is the fix.
//
// Fixed, as they are not this step's lesson: the original's key was the
// SOCKET cast to a 32-bit DWORD (a socket fits; a pointer would not) — here it
// is the client's address, a full ULONG_PTR; it closed a leaving client's
// socket while another thread could be sending to it — here the client leaves
// the list under the lock every broadcast holds, and only then is it closed;
// its threads got copies of the shared state — here ChatServer cannot be
// copied. Added for the tests: stop() ends it cleanly, even during a stuck send.
// Kept: one pre-posted accept (a failed one is simply posted again), no
// framing (a line may arrive split or merged), no limit on clients.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <list>
#include <string>
#include <thread>
#include <vector>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"
#include "iocp_chat/sync.hpp"
#ifndef _WIN32
#include <poll.h>
#endif

namespace iocp_chat::original {

#ifdef _WIN32
using PollEntry = WSAPOLLFD;  ///< What WSAPoll watches.
using SendSize = int;         ///< Winsock's send takes an int length.
constexpr int kNoWait = 0;    ///< No MSG_DONTWAIT in Winsock: on_accept makes the socket non-blocking.
/// WSAPoll, under its Linux name.
inline int poll(PollEntry* entries, ULONG count, int ms) { return ::WSAPoll(entries, count, ms); }
/// The last send found the socket's buffer full.
inline bool would_block() { return ::WSAGetLastError() == WSAEWOULDBLOCK; }
#else
using PollEntry = pollfd;                             ///< What poll watches.
using SendSize = std::size_t;                         ///< send's length type.
constexpr int kNoWait = MSG_DONTWAIT | MSG_NOSIGNAL;  ///< Never block; a gone peer is an error, not SIGPIPE.
/// The last send found the socket's buffer full (or was interrupted).
inline bool would_block() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }
#endif

/// What the command line can change.
struct ServerConfig {
  std::string bind_address = "127.0.0.1";  ///< Loopback (the original listened on every address).
  std::uint16_t port = 42006;              ///< The original's port; 0 picks a free one.
  Backend backend = Backend::automatic;    ///< --backend.
  unsigned threads = 0;                    ///< Worker threads; 0 = 2 × hardware threads.
};

/// One connected client: its socket and its one receive.
struct Client {
  /// Takes the accepted socket.
  explicit Client(Socket accepted) : socket(std::move(accepted)) {}
  Socket socket;                   ///< Closed only once the client has left the list.
  ReceiveOperation receive{1024};  ///< The outstanding WSARecv and the original's 1024-byte buffer.
};

/// The 2018 server. start() returns once it listens; stop() ends it.
class ChatServer {
 public:
  /// Keeps the configuration; opens nothing yet.
  explicit ChatServer(ServerConfig config) : config_(std::move(config)) {}
  /// Calls stop().
  ~ChatServer() { stop(); }
  ChatServer(const ChatServer&) = delete;  // the original copied its state into each thread
  ChatServer& operator=(const ChatServer&) = delete;

  /// Opens the port and the listener, posts the accept, starts the workers; throws std::system_error.
  void start() {
    port_object_ = open_completion_port(config_.backend);
    listener_ = open_listener(config_.bind_address, config_.port);
    port_object_->associate(listener_, 0);
    accept_pending_ = true;
    port_object_->start_accept(listener_, accept_);
    const unsigned threads =
        config_.threads ? config_.threads : 2 * std::max(1U, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { run_worker(); });
    log_line(std::string(to_string(port_object_->backend())) + ": listening on port " +
             std::to_string(port()));
  }

  /// Ends a stuck send (the flag, seen within 100 ms), then, under the lock,
  /// cancels the accept and every receive; waits until their handlers have
  /// closed every client; then one quit per worker. Idempotent.
  void stop() {
    if (workers_.empty()) return;
    stopping_ = true;
    {
      const CriticalSectionLock lock(clients_lock_);
      port_object_->cancel(listener_);
      for (const Client& client : clients_) port_object_->cancel(client.socket);
    }
    while (accept_pending_ || client_count_.value() > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) port_object_->post(0);
    for (std::thread& worker : workers_) worker.join();
    workers_.clear();
    port_object_->close(listener_);
  }

  /// The port listened on (the one picked, with port 0).
  std::uint16_t port() const { return local_port(listener_); }
  /// Clients connected now.
  std::int64_t client_count() const noexcept { return client_count_.value(); }

 private:
  // [worker-2018]
  // The original's worker: GetQueuedCompletionStatus, then act on what completed.
  void run_worker() {
    for (;;) {
      const Completion done = *port_object_->wait();
      if (done.kind() == OperationKind::posted) return;  // stop() says quit
      if (done.kind() == OperationKind::accept) on_accept(done);
      // The key is the client's address, given when its socket was associated.
      if (done.kind() == OperationKind::receive) on_receive(*reinterpret_cast<Client*>(done.key), done);
    }
  }
  // [worker-2018]

  void on_accept(const Completion& completion) {
    Socket socket = accept_.take_socket();
    const CriticalSectionLock lock(clients_lock_);  // stop() cannot cancel between the check and the re-post
    accept_pending_ = !stopping_;                   // stop() waits until this is false
    if (!accept_pending_) return;                   // stopping: the socket, if any, closes as it goes
    if (!completion.error) {
      Client& client = clients_.emplace_back(std::move(socket));
      port_object_->associate(client.socket, reinterpret_cast<CompletionKey>(&client));
#ifdef _WIN32
      u_long non_blocking = 1;  // so that blocking_send can wait in WSAPoll; overlapped I/O ignores it
      ::ioctlsocket(client.socket.native(), static_cast<long>(FIONBIO), &non_blocking);
#endif
      port_object_->start_receive(client.socket, client.receive);
      log_line("joined: " + peer_name(client.socket) +
               ", clients: " + std::to_string(client_count_.increment()));
    }
    port_object_->start_accept(listener_, accept_);  // the next client
  }

  void on_receive(Client& client, const Completion& completion) {
    const CriticalSectionLock lock(clients_lock_);
    if (!completion.error && completion.bytes > 0 && !stopping_) {
      broadcast(client.receive.received(completion.bytes));
      port_object_->start_receive(client.socket, client.receive);
      return;
    }
    // It left (0 bytes), failed, or stop() cancelled its receive. It leaves the
    // list under the lock every broadcast holds, so no thread is sending to it:
    // only now may its socket be closed.
    log_line("left: " + peer_name(client.socket) + ", clients: " + std::to_string(client_count_.decrement()));
    port_object_->close(client.socket);
    std::erase_if(clients_, [&client](const Client& each) { return &each == &client; });
  }

  // [broadcast-2018]
  // THE FLAW: a blocking send to every client, with the critical section held.
  // (A send that fails needs no handling: that client's receive fails too.)
  void broadcast(std::span<const std::byte> bytes) REQUIRES(clients_lock_) {
    for (const Client& client : clients_) blocking_send(client.socket, bytes);
  }

  // The original's send() blocked until every byte was in the socket's
  // buffer. This layer's sockets may be non-blocking (epoll makes them so), so
  // the wait is written out: wait for room, send what fits, repeat. Its one
  // difference: every 100 ms it checks whether stop() has begun.
  bool blocking_send(const Socket& socket, std::span<const std::byte> bytes) const {
    while (!bytes.empty()) {
      PollEntry room{socket.native(), POLLOUT, 0};
      while (poll(&room, 1, 100) == 0) {
        if (stopping_) return false;
      }
      const auto sent = ::send(socket.native(), reinterpret_cast<const char*>(bytes.data()),
                               static_cast<SendSize>(bytes.size()), kNoWait);
      if (sent < 0 && !would_block()) return false;  // the client is gone
      if (sent > 0) bytes = bytes.subspan(static_cast<std::size_t>(sent));
    }
    return true;
  }
  // [broadcast-2018]

  ServerConfig config_;                                  ///< As given.
  std::unique_ptr<CompletionPort> port_object_;          ///< The completion port.
  Socket listener_;                                      ///< The listening socket.
  AcceptOperation accept_;                               ///< The one pre-posted AcceptEx.
  std::atomic<bool> accept_pending_{false};              ///< accept_ is outstanding (stop() waits for it).
  std::atomic<bool> stopping_{false};                    ///< stop() has begun: a stuck send gives up.
  std::vector<std::thread> workers_;                     ///< Threads looping on the port.
  CriticalSection clients_lock_;                         ///< The original's critical section.
  std::list<Client> clients_ GUARDED_BY(clients_lock_);  ///< Every connected client.
  InterlockedCounter client_count_;                      ///< The original's interlocked client count.
};

}  // namespace iocp_chat::original
