// step3_bounded_queues.hpp — ver.1, step 3 of 4: step 2
// (step2_safe_close.hpp) with one change. Every chunk of bytes a
// client sends goes to every client. The whole server is this file.
//
// IOCP ideas shown: worker threads (2 × hardware threads) looping on the
// port's wait (GetQueuedCompletionStatus); one accept (AcceptEx) kept posted;
// one receive (WSARecv, 1024 bytes) per client, whose completion key is the
// client's address; a std::list of clients under a CriticalSection, and an
// InterlockedCounter of them.
//
// Step 1 (one write in flight): each client has a queue and at most one
// overlapped send (WSASend) in flight; no blocking send under the lock.
// Step 2 (safe close): a client is freed only after its last outstanding
// operation completed: cancel (CancelIoEx), then wait for the completions.
//
// THIS STEP — bounded queues: a client whose queue would pass
// `max_queue_bytes` does not read; it is dropped alone (closed the step-2
// way, its queue freed at once), and the others go on. Without it, one
// stuck client makes the server hold every byte sent since, without bound
// (Step3Test, steps_test.cpp).
//
// Fixed, as they are not this step's lesson: the original's key was the
// SOCKET cast to a 32-bit DWORD (a socket fits; a pointer would not) — here it
// is the client's address, a full ULONG_PTR; it closed a leaving client's
// socket while another thread could be sending to it — here the client leaves
// the list under the lock every broadcast holds, and only then is it closed;
// its threads got copies of the shared state — here ChatServer cannot be
// copied. Added for the tests: stop() ends it cleanly.
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
#include "iocp_chat/shared_buffer.hpp"
#include "iocp_chat/socket.hpp"
#include "iocp_chat/sync.hpp"

namespace iocp_chat::step3 {

/// What the command line can change.
struct ServerConfig {
  std::string bind_address = "127.0.0.1";  ///< Loopback (the original listened on every address).
  std::uint16_t port = 42006;              ///< The original's port; 0 picks a free one.
  Backend backend = Backend::automatic;    ///< --backend.
  unsigned threads = 0;                    ///< Worker threads; 0 = 2 × hardware threads.
  std::size_t max_queue_bytes = 8 << 20;   ///< A client whose queue would pass this is dropped.
};

/// One connected client: its socket, its one receive, its one send and its queue.
struct Client {
  /// Takes the accepted socket.
  explicit Client(Socket accepted) : socket(std::move(accepted)) {}
  Socket socket;                   ///< Closed only once the client has left the list.
  ReceiveOperation receive{1024};  ///< The outstanding WSARecv and the original's 1024-byte buffer.
  SendOperation send;              ///< The one WSASend in flight, while `sending`.
  std::vector<std::byte> queued;   ///< Bytes waiting for that send to complete (under the lock).
  bool sending = false;            ///< `send` is outstanding (under the lock).
  int outstanding = 0;             ///< Operations started, not yet completed (under the lock).
  bool closing = false;            ///< The server decided to close it (under the lock).
};

/// The server of step 3. start() returns once it listens; stop() ends it.
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

  /// Under the lock, cancels the accept and every client; waits until their
  /// handlers have closed every client; then one quit per worker. Idempotent.
  void stop() {
    if (workers_.empty()) return;
    stopping_ = true;
    {
      const CriticalSectionLock lock(clients_lock_);
      port_object_->cancel(listener_);
      for (Client& client : clients_) {
        client.closing = true;
        port_object_->cancel(client.socket);
      }
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
  // The worker: GetQueuedCompletionStatus, then act on what completed.
  void run_worker() {
    for (;;) {
      const Completion done = *port_object_->wait();
      const OperationKind kind = done.kind();     // read first: a handler may free the operation
      if (kind == OperationKind::posted) return;  // stop() says quit
      if (kind == OperationKind::accept) on_accept(done);
      // The key is the client's address, given when its socket was associated.
      if (kind == OperationKind::receive) on_receive(*reinterpret_cast<Client*>(done.key), done);
      if (kind == OperationKind::send) on_send(*reinterpret_cast<Client*>(done.key), done);
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
      ++client.outstanding;
      port_object_->start_receive(client.socket, client.receive);
      log_line("joined: " + peer_name(client.socket) +
               ", clients: " + std::to_string(client_count_.increment()));
    }
    port_object_->start_accept(listener_, accept_);  // the next client
  }

  void on_receive(Client& client, const Completion& completion) {
    const CriticalSectionLock lock(clients_lock_);
    if (!completion.error && completion.bytes > 0 && !client.closing && !stopping_) {
      broadcast(client.receive.received(completion.bytes));        // the receive still counts meanwhile
      port_object_->start_receive(client.socket, client.receive);  // and the next one takes its place
      return;
    }
    --client.outstanding;
    close(client);  // it left (0 bytes), failed, or stop() cancelled its receive
  }

  // [safe-close]
  // THE FIX: closing is decided once, and cancels every outstanding
  // operation; the completion that brings the count to 0 frees the client.
  void close(Client& client) REQUIRES(clients_lock_) {
    if (!client.closing) {
      client.closing = true;
      port_object_->cancel(client.socket);  // its send, if any, completes soon
    }
    if (client.outstanding > 0) return;  // a completion is still to come
    log_line("left: " + peer_name(client.socket) + ", clients: " + std::to_string(client_count_.decrement()));
    port_object_->close(client.socket);
    std::erase_if(clients_, [&client](const Client& each) { return &each == &client; });
  }
  // [safe-close]

  // [broadcast-step1]
  // Under the lock, only append to each client's queue and, if no send to
  // it is in flight, start one. start_send returns at once.
  void broadcast(std::span<const std::byte> bytes) REQUIRES(clients_lock_) {
    for (Client& client : clients_) {
      if (client.closing) continue;
      if (client.queued.size() + bytes.size() > config_.max_queue_bytes) {
        // THE FIX: it does not read. Its queue goes now; the client goes
        // once its operations have completed (its receive is outstanding,
        // so close() cannot free it here, inside this loop).
        log_line("dropped, its queue is full: " + peer_name(client.socket));
        client.queued = {};
        close(client);
        continue;
      }
      client.queued.insert(client.queued.end(), bytes.begin(), bytes.end());
      if (!client.sending) start_send(client);
    }
  }

  // Everything queued goes in one send; the send keeps its own copy of it.
  void start_send(Client& client) REQUIRES(clients_lock_) {
    client.send.set(make_shared_buffer(client.queued));
    client.queued.clear();
    client.sending = true;
    ++client.outstanding;
    port_object_->start_send(client.socket, client.send);
  }

  // A send completed: the next one takes what was queued meanwhile. A send
  // that failed, or one to a client that is closing, closes it.
  void on_send(Client& client, const Completion& completion) {
    const CriticalSectionLock lock(clients_lock_);
    --client.outstanding;
    client.send.clear();
    client.sending = false;
    if (completion.error || client.closing) return close(client);
    if (!client.queued.empty()) start_send(client);
  }
  // [broadcast-step1]

  ServerConfig config_;                                  ///< As given.
  std::unique_ptr<CompletionPort> port_object_;          ///< The completion port.
  Socket listener_;                                      ///< The listening socket.
  AcceptOperation accept_;                               ///< The one pre-posted AcceptEx.
  std::atomic<bool> accept_pending_{false};              ///< accept_ is outstanding (stop() waits for it).
  std::atomic<bool> stopping_{false};                    ///< stop() has begun.
  std::vector<std::thread> workers_;                     ///< Threads looping on the port.
  CriticalSection clients_lock_;                         ///< Guards the list and every client's queue.
  std::list<Client> clients_ GUARDED_BY(clients_lock_);  ///< Every connected client.
  InterlockedCounter client_count_;                      ///< The original's interlocked client count.
};

}  // namespace iocp_chat::step3
