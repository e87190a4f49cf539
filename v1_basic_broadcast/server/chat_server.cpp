// chat_server.cpp — ver.1's broadcast server on the completion-port layer.
//
// Read it in this order: start() and run_worker() (the original's worker
// loop, made correct), then on_accept, on_receive and broadcast/deliver
// (how one chunk reaches everyone without blocking on anyone), on_send, and
// last the closing path (begin_close_locked → completed_locked → finish),
// which is where the original freed sockets that other threads still used.
#include "chat_server.hpp"

#include <algorithm>
#include <chrono>
#include <string>

#include "iocp_chat/log.hpp"

namespace iocp_chat::v1 {
namespace {

/// Pause before re-posting an accept that failed: if the process is out of
/// file descriptors, the listener stays ready and an immediate retry would
/// spin a worker at 100% CPU without ever succeeding.
constexpr std::chrono::milliseconds kAcceptRetryPause{100};

std::string clients_text(std::int64_t count) {
  return std::to_string(count) + (count == 1 ? " client" : " clients");
}

}  // namespace

ChatServer::ChatServer(ServerConfig config) : config_(std::move(config)) {}

ChatServer::~ChatServer() { stop(); }

// [start]
void ChatServer::start() {
  std::string backend_note;
  port_object_ = open_completion_port(config_.backend, &backend_note);
  listener_ = open_listener(config_.bind_address, config_.port);
  port_ = local_port(listener_);
  port_object_->associate(listener_, 0);

  {
    const CriticalSectionLock lock(accepting_lock_);
    accepting_ = true;
  }
  for (unsigned i = 0; i < std::max(1U, config_.pre_posted_accepts); ++i) {
    accepts_.push_back(std::make_unique<AcceptOperation>());
    accepts_alive_.increment();
    port_object_->start_accept(listener_, *accepts_.back());
  }

  const unsigned threads =
      config_.threads != 0 ? config_.threads : std::max(2U, 2 * std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { run_worker(); });
  started_ = true;

  log_line(backend_note);
  log_line("listening on " + config_.bind_address + ":" + std::to_string(port_) + " with " +
           std::to_string(threads) + " worker threads");
}
// [start]

// [worker-loop]
// The worker loop: wait for the next completion, hand it to its handler,
// repeat — until a posted (quit) completion arrives.
void ChatServer::run_worker() {
  for (;;) {
    const std::optional<Completion> completion = port_object_->wait(kWaitForever);
    if (completion->kind() == OperationKind::posted) return;  // stop() says quit
    dispatch(*completion);
  }
}
// [worker-loop]

// [dispatch]
void ChatServer::dispatch(const Completion& completion) {
  switch (completion.kind()) {
    case OperationKind::accept:
      on_accept(*static_cast<AcceptOperation*>(completion.operation), completion);
      break;
    case OperationKind::receive:
      // The key is the connection's address, given at association.
      on_receive(*reinterpret_cast<Connection*>(completion.key), completion);
      break;
    case OperationKind::send:
      on_send(*reinterpret_cast<Connection*>(completion.key), completion);
      break;
    case OperationKind::posted:
      break;
  }
}
// [dispatch]

// Re-posts an accept unless stop() has begun; under accepting_lock_ so that
// stop()'s cancel of the listener cannot slip between the check and the post.
bool ChatServer::repost_accept(AcceptOperation& accept) {
  {
    const CriticalSectionLock lock(accepting_lock_);
    if (accepting_) {
      port_object_->start_accept(listener_, accept);
      return true;
    }
  }
  accepts_alive_.decrement();
  notify_drained();
  return false;
}

// [on-accept]
void ChatServer::on_accept(AcceptOperation& accept, const Completion& completion) {
  Socket socket = accept.take_socket();
  if (completion.error) {
    bool accepting = false;
    {
      const CriticalSectionLock lock(accepting_lock_);
      accepting = accepting_;
    }
    if (accepting) {
      log_line("accept failed: " + completion.error.message() + "; retrying shortly");
      std::this_thread::sleep_for(kAcceptRetryPause);
    }
    repost_accept(accept);
    return;
  }
  // Keep the listener stocked before spending time on the new client.
  repost_accept(accept);
  admit(std::move(socket));
}
// [on-accept]

// [admit]
// A new client joins the list and gets its first receive.
void ChatServer::admit(Socket socket) {
  auto connection = std::make_shared<Connection>(std::move(socket));
  connection->name = peer_name(connection->socket);
  // Chat lines are small: send each at once instead of letting Nagle's
  // algorithm hold it back until the previous one is acknowledged.
  set_no_delay(connection->socket);
  // Associate before the connection is visible to broadcasts, which may start a send on it.
  port_object_->associate(connection->socket, reinterpret_cast<CompletionKey>(connection.get()));

  std::int64_t count = 0;
  std::string refusal;
  {
    const CriticalSectionLock lock(clients_lock_);
    if (stopping_) {
      refusal = "server shutting down";
    } else if (client_count_.value() >= static_cast<std::int64_t>(config_.max_clients)) {
      refusal = "server full (" + std::to_string(config_.max_clients) + " clients)";
    } else {
      connection->place = clients_.insert(clients_.end(), connection);
      count = client_count_.increment();
    }
  }
  if (!refusal.empty()) {
    log_line("client " + connection->name + " refused: " + refusal);
    port_object_->close(connection->socket);
    return;
  }
  log_line("client " + connection->name + " connected (" + clients_text(count) + ")");

  bool done = false;
  {
    const CriticalSectionLock lock(connection->lock);
    if (!connection->closing) {
      ++connection->outstanding;
      port_object_->start_receive(connection->socket, connection->receive);
    }
    done = completed_locked(*connection);
  }
  if (done) finish(*connection);
}
// [admit]

// [on-receive]
// Bytes arrived from one client: copy them once, broadcast, receive again.
void ChatServer::on_receive(Connection& connection, const Completion& completion) {
  SharedBuffer chunk;
  bool done = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (!connection.closing) {
      if (completion.error) {
        begin_close_locked(connection, "receive failed: " + completion.error.message());
      } else if (completion.bytes == 0) {
        // End of stream: the client will send no more, but it may still be
        // reading — its own last line's echo may be queued. Flush, then close.
        connection.flush_then_close = true;
        if (!connection.sending) begin_close_locked(connection, "client closed the connection");
      } else {
        chunk = make_shared_buffer(connection.receive.received(completion.bytes));
      }
    }
    if (!chunk) {
      --connection.outstanding;
      done = completed_locked(connection);
    }
  }
  if (!chunk) {
    if (done) finish(connection);
    return;
  }

  // The receive still counts as outstanding here, so the connection cannot be
  // finished under us; and the next receive starts only after this chunk is
  // in every queue, which is what keeps each sender's bytes in order.
  broadcast(chunk);

  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.closing) {
      --connection.outstanding;
      done = completed_locked(connection);
    } else {
      port_object_->start_receive(connection.socket, connection.receive);
    }
  }
  if (done) finish(connection);
}
// [on-receive]

// [broadcast]
// Copies the list under the lock (a few pointer copies), then delivers
// without it: the critical section is never held across I/O.
void ChatServer::broadcast(const SharedBuffer& chunk) {
  std::vector<std::shared_ptr<Connection>> recipients;
  {
    const CriticalSectionLock lock(clients_lock_);
    recipients.assign(clients_.begin(), clients_.end());
  }
  for (const auto& recipient : recipients) deliver(*recipient, chunk);
}
// [broadcast]

// [deliver]
// Queues a chunk for one client; starts a send if none is in flight. Never
// waits: a client whose queue would pass the bound is dropped instead.
void ChatServer::deliver(Connection& connection, const SharedBuffer& chunk) {
  bool done = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.closing || connection.flush_then_close)
      return;  // nothing new for a client that is leaving
    if (connection.queued_bytes + chunk->size() > config_.max_queue_bytes) {
      begin_close_locked(connection, "slow consumer: " + std::to_string(connection.queued_bytes) +
                                         " bytes waiting, limit " + std::to_string(config_.max_queue_bytes));
      done = completed_locked(connection);
    } else {
      connection.queued.push_back(chunk);
      connection.queued_bytes += chunk->size();
      if (!connection.sending) start_send_locked(connection);
    }
  }
  if (done) finish(connection);
}
// [deliver]

// [send]
// Moves everything queued into the send operation: one gathered WSASend.
void ChatServer::start_send_locked(Connection& connection) {
  connection.send.clear();
  for (SharedBuffer& chunk : connection.queued) connection.send.add(std::move(chunk));
  connection.queued.clear();
  connection.sending = true;
  ++connection.outstanding;
  port_object_->start_send(connection.socket, connection.send);
}
// [send]

// [on-send]
// The send finished (the layer completes short writes itself); start the
// next one if more piled up meanwhile.
void ChatServer::on_send(Connection& connection, const Completion& completion) {
  bool done = false;
  {
    const CriticalSectionLock lock(connection.lock);
    --connection.outstanding;
    connection.sending = false;
    connection.queued_bytes -= std::min(connection.queued_bytes, connection.send.size());
    connection.send.clear();
    if (!connection.closing) {
      if (completion.error) {
        begin_close_locked(connection, "send failed: " + completion.error.message());
      } else if (!connection.queued.empty()) {
        start_send_locked(connection);
      } else if (connection.flush_then_close) {
        begin_close_locked(connection, "client closed the connection");  // its queue is flushed
      }
    }
    done = completed_locked(connection);
  }
  if (done) finish(connection);
}
// [on-send]

// [close]
// The one place that decides a connection is closing: set the flag, drop
// what was queued, and cancel the outstanding operations (CancelIoEx). Their
// completions arrive as usual; the flag, not their error codes, tells the
// handlers what is going on.
void ChatServer::begin_close_locked(Connection& connection, std::string reason) {
  if (connection.closing) return;
  connection.closing = true;
  connection.close_reason = std::move(reason);
  connection.queued.clear();
  port_object_->cancel(connection.socket);
}
// [close]

// [completed]
// True exactly once: when the connection is closing and its last operation
// has completed. Only then may it be freed.
bool ChatServer::completed_locked(Connection& connection) {
  if (!connection.closing || connection.outstanding != 0 || connection.finished) return false;
  connection.finished = true;
  return true;
}
// [completed]

// [finish]
// Leaves the list, closes the socket, logs. Called once per connection, with
// no operation of it outstanding.
void ChatServer::finish(Connection& connection) {
  std::shared_ptr<Connection> keep;  // the list's reference, released at the end of this function
  {
    const CriticalSectionLock lock(clients_lock_);
    keep = *connection.place;
    clients_.erase(connection.place);
  }
  std::string reason;
  {
    const CriticalSectionLock lock(connection.lock);
    reason = connection.close_reason;
  }
  port_object_->close(connection.socket);
  const std::int64_t count = client_count_.decrement();
  log_line("client " + connection.name + " disconnected: " + reason + " (" + clients_text(count) + ")");
  notify_drained();
}
// [finish]

void ChatServer::notify_drained() {
  { const std::lock_guard lock(drained_mutex_); }
  drained_.notify_all();
}

// [stop]
void ChatServer::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;

  // 1. Stop accepting: no accept is re-posted, the pending ones are cancelled.
  {
    const CriticalSectionLock lock(accepting_lock_);
    accepting_ = false;
    port_object_->cancel(listener_);
  }
  // 2. Close every client.
  std::vector<std::shared_ptr<Connection>> everyone;
  {
    const CriticalSectionLock lock(clients_lock_);
    stopping_ = true;
    everyone.assign(clients_.begin(), clients_.end());
  }
  for (const auto& connection : everyone) {
    bool done = false;
    {
      const CriticalSectionLock lock(connection->lock);
      begin_close_locked(*connection, "server shutting down");
      done = completed_locked(*connection);
    }
    if (done) finish(*connection);
  }
  everyone.clear();
  // 3. Drain: the workers handle the cancelled operations' completions until
  //    no connection and no accept is left.
  {
    std::unique_lock lock(drained_mutex_);
    drained_.wait(lock, [this] { return client_count_.value() == 0 && accepts_alive_.value() == 0; });
  }
  // 4. One quit completion per worker, then join them.
  for (std::size_t i = 0; i < workers_.size(); ++i) port_object_->post(0);
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  port_object_->close(listener_);
  log_line("server stopped");
}
// [stop]

}  // namespace iocp_chat::v1
