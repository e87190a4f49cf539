// chat_server.cpp — ver.1's broadcast server on the completion-port layer.
//
// Read it in this order: start() and run_worker() (the original's worker
// loop, made correct), then on_accept, on_receive and broadcast/deliver
// (how one chunk reaches everyone without blocking on anyone), on_send, and
// last the closing path (begin_close_locked → completed_locked → finish),
// which is where the original freed sockets that other threads still used.
#include "chat_server.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <string>

#include "iocp_chat/log.hpp"

namespace iocp_chat::v1 {
namespace {

/// Pause before re-posting an accept that failed: if the process is out of
/// file descriptors, the listener stays ready and an immediate retry would
/// spin a worker at 100% CPU without ever succeeding.
constexpr std::chrono::milliseconds kAcceptRetryPause{100};

// [scheduled-sends]
/// Most completions a worker takes from the port at once.
constexpr std::size_t kCompletionBatch = 64;

/// The connections whose sends this thread starts when its batch of
/// completions is handled; null on a thread that is not a worker (stop()),
/// which starts each send at once.
thread_local std::vector<std::shared_ptr<Connection>>* scheduled_sends = nullptr;
// [scheduled-sends]

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
// The worker loop: take a batch of completions (GetQueuedCompletionStatusEx),
// hand each to its handler, then start the sends the batch made necessary —
// one gathered send per client however many chunks it got — and repeat,
// until a posted (quit) completion arrives.
void ChatServer::run_worker() {
  std::vector<std::shared_ptr<Connection>> sends;
  scheduled_sends = &sends;
  std::array<Completion, kCompletionBatch> batch;
  std::size_t quits = 0;
  while (quits == 0) {
    const std::size_t count = port_object_->wait_many(batch, kWaitForever);
    for (const Completion& completion : std::span(batch).first(count)) {
      if (completion.kind() == OperationKind::posted) {
        ++quits;  // stop() says quit; finish the batch first
      } else {
        dispatch(completion);
      }
    }
    start_scheduled_sends();
  }
  // stop() posts one quit per worker; a batch may have taken several, so
  // hand back the ones meant for the others.
  for (std::size_t i = 1; i < quits; ++i) port_object_->post(0);
  scheduled_sends = nullptr;
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
// Once stop() has begun, the accepts parked while out of descriptors end
// here too (at least one accept is never parked, so this always runs).
bool ChatServer::repost_accept(AcceptOperation& accept) {
  std::size_t ended = 1;
  {
    const CriticalSectionLock lock(accepting_lock_);
    if (accepting_) {
      port_object_->start_accept(listener_, accept);
      return true;
    }
    ended += parked_accepts_.size();
    parked_accepts_.clear();
    parked_count_.store(0);
  }
  for (std::size_t i = 0; i < ended; ++i) accepts_alive_.decrement();
  notify_drained();
  return false;
}

// [on-accept]
void ChatServer::on_accept(AcceptOperation& accept, const Completion& completion) {
  Socket socket = accept.take_socket();
  if (completion.error) {
    // Out of descriptors, with a connection waiting: give up the spare, so
    // that this accept, re-posted at once, can take that connection.
    // (Each connection so closed is logged as refused; nothing to log here.)
    if (SpareDescriptor::is_exhaustion(completion.error) && spare_.release()) {
      repost_accept(accept);
      return;
    }
    // Another accept already has the spare's room: wait, without a worker
    // asleep, until that connection is dealt with.
    if (SpareDescriptor::is_exhaustion(completion.error) && park_accept(accept)) return;
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
  // The spare cannot be taken back: this connection is the one it made room
  // for (or the process is still out of descriptors). Close it at once.
  if (!spare_.restore()) {
    refuse_for_descriptors(std::move(socket));
    repost_accept(accept);
    return;
  }
  if (parked_count_.load() != 0) repost_parked_accepts();  // descriptors are free again
  // Keep the listener stocked before spending time on the new client.
  repost_accept(accept);
  admit(std::move(socket));
}
// [on-accept]

// Parks an accept that failed while another one holds the spare's room;
// false (the caller pauses instead) if it would be the last accept
// outstanding, or if stop() has begun: one must always be there to see the
// next connection, or stop()'s cancel.
bool ChatServer::park_accept(AcceptOperation& accept) {
  const CriticalSectionLock lock(accepting_lock_);
  if (!accepting_ || parked_accepts_.size() + 1 >= accepts_.size()) return false;
  parked_accepts_.push_back(&accept);
  parked_count_.store(parked_accepts_.size());
  return true;
}

// The spare is back (or was never needed): the parked accepts go back to the listener.
void ChatServer::repost_parked_accepts() {
  std::vector<AcceptOperation*> parked;
  {
    const CriticalSectionLock lock(accepting_lock_);
    parked.swap(parked_accepts_);
    parked_count_.store(0);
  }
  for (AcceptOperation* accept : parked) repost_accept(*accept);
}

// The connection the spare descriptor made room for: closed at once, so its
// client hears at once that there is no room, and the spare is taken back.
void ChatServer::refuse_for_descriptors(Socket socket) {
  log_line("client " + peer_name(socket) + " refused: out of file descriptors");
  socket.close();
  if (spare_.restore()) repost_parked_accepts();
}

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
// Bytes arrived from one client: broadcast them, receive again.
void ChatServer::on_receive(Connection& connection, const Completion& completion) {
  std::span<const std::byte> chunk;
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
        if (connection.outbound.has_pending()) {
          if (!connection.sending) start_send_locked(connection);  // on_send closes once it is out
        } else if (!connection.sending) {
          begin_close_locked(connection, "client closed the connection");
        }
      } else {
        chunk = connection.receive.received(completion.bytes);
      }
    }
    if (chunk.empty()) {
      --connection.outstanding;
      done = completed_locked(connection);
    }
  }
  if (chunk.empty()) {
    if (done) finish(connection);
    return;
  }

  // The receive still counts as outstanding here, so the connection cannot be
  // finished under us, nor its buffer reused; and the next receive starts
  // only after this chunk is in every queue, which is what keeps each
  // sender's bytes in order.
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
void ChatServer::broadcast(std::span<const std::byte> chunk) {
  std::vector<std::shared_ptr<Connection>> recipients;
  {
    const CriticalSectionLock lock(clients_lock_);
    recipients.assign(clients_.begin(), clients_.end());
  }
  for (const auto& recipient : recipients) deliver(*recipient, chunk);
}
// [broadcast]

// [deliver]
// Appends a chunk to one client's queue; its send starts at the end of the
// worker's batch unless one is in flight. Never waits: a client whose queue
// would pass the bound is dropped instead.
void ChatServer::deliver(Connection& connection, std::span<const std::byte> chunk) {
  bool done = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.closing || connection.flush_then_close)
      return;  // nothing new for a client that is leaving
    if (connection.outbound.size() + chunk.size() > config_.max_queue_bytes) {
      begin_close_locked(connection, "slow consumer: " + std::to_string(connection.outbound.size()) +
                                         " bytes waiting, limit " + std::to_string(config_.max_queue_bytes));
      done = completed_locked(connection);
    } else {
      connection.outbound.append(chunk);
      if (!connection.sending) schedule_send_locked(connection);
    }
  }
  if (done) finish(connection);
}
// [deliver]

// [send]
// A worker starts the send when its batch is done, so that everything the
// batch queued for this client leaves in that one send; other threads start it now.
void ChatServer::schedule_send_locked(Connection& connection) {
  if (scheduled_sends == nullptr) {
    start_send_locked(connection);
  } else if (!connection.send_scheduled) {
    connection.send_scheduled = true;
    scheduled_sends->push_back(connection.shared_from_this());
  }
}

// The end of a worker's batch: one send for each client that got bytes.
// The send starts after the client's lock is released: a send the socket
// takes at once runs the whole TCP path right here (epoll), and the workers
// appending to this client meanwhile should not wait for it.
void ChatServer::start_scheduled_sends() {
  if (scheduled_sends->empty()) return;
  port_object_->begin_batch();  // io_uring: one system call for all of them
  for (const auto& connection : *scheduled_sends) {
    bool start = false;
    {
      const CriticalSectionLock lock(connection->lock);
      connection->send_scheduled = false;
      start = !connection->closing && !connection->sending && connection->outbound.has_pending();
      if (start) claim_send_locked(*connection);
    }
    if (start) port_object_->start_send(connection->socket, connection->send);
  }
  port_object_->end_batch();
  scheduled_sends->clear();
}

// Hands everything queued to the send operation, which is in flight from
// now on: nothing else touches it until its completion.
void ChatServer::claim_send_locked(Connection& connection) {
  connection.outbound.start_send(connection.send);
  connection.sending = true;
  ++connection.outstanding;
}

// One WSASend of everything queued, started with the lock held (the rarer paths).
void ChatServer::start_send_locked(Connection& connection) {
  claim_send_locked(connection);
  port_object_->start_send(connection.socket, connection.send);
}
// [send]

// [on-send]
// The send finished (the layer completes short writes itself); start the
// next one if more piled up meanwhile.
void ChatServer::on_send(Connection& connection, const Completion& completion) {
  bool done = false;
  bool start = false;
  {
    const CriticalSectionLock lock(connection.lock);
    --connection.outstanding;
    connection.sending = false;
    connection.outbound.send_completed(connection.send);
    if (!connection.closing) {
      if (completion.error) {
        begin_close_locked(connection, "send failed: " + completion.error.message());
      } else if (connection.outbound.has_pending()) {
        claim_send_locked(connection);  // started below, outside the lock
        start = true;
      } else if (connection.flush_then_close) {
        begin_close_locked(connection, "client closed the connection");  // its queue is flushed
      }
    }
    done = completed_locked(connection);
  }
  if (start) port_object_->start_send(connection.socket, connection.send);
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
  connection.outbound.drop_pending();
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
