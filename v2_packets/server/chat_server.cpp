// chat_server.cpp — ver.2's chat server on the completion-port layer:
// ver.1's server with a FrameAssembler and a ChatRoom in the receive path.
//
// Read it in this order: start() and run_worker() (the original's worker
// loop, made correct), then on_accept, on_receive, handle_frames and
// apply/deliver (how one frame reaches everyone without blocking on anyone),
// on_send, and last the two ways out: leaving (flush the last frames, then
// close) and closing (begin_close_locked → completed_locked → finish).
#include "chat_server.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <string>

#include "iocp_chat/log.hpp"

namespace iocp_chat::v2 {
namespace {

/// Pause before re-posting an accept that failed (and the spare descriptor
/// could not help): if the process is out of file descriptors, the listener
/// stays ready and an immediate retry would spin a worker at 100% CPU without
/// ever succeeding. The accept is parked, and the sweep re-posts it.
constexpr std::chrono::milliseconds kAcceptRetryPause{100};

/// How often an idle worker wakes up to look for leaving clients that are overdue.
constexpr std::chrono::milliseconds kSweepInterval{250};

// [scheduled-sends]
/// Most completions a worker takes from the port at once.
constexpr std::size_t kCompletionBatch = 64;

/// The connections whose sends this thread starts when its batch of
/// completions is handled; null on a thread that is not a worker (stop()),
/// which starts each send at once.
thread_local std::vector<std::shared_ptr<Connection>>* scheduled_sends = nullptr;
// [scheduled-sends]

using Room = ChatRoom<std::shared_ptr<Connection>>;

// [broadcast-run]
/// Consecutive CHAT_BROADCASTs of one receive that go to the same members,
/// copied back to back: each recipient's lock is taken once for all of them
/// instead of once per message.
struct BroadcastRun {
  Room::Members to;               ///< The members every frame of the run goes to.
  std::vector<std::byte> frames;  ///< The encoded frames, in order.
};

/// Appends a lone broadcast to `run` if it goes to the run's members; false
/// if it cannot join (the caller delivers the run, then these effects).
bool join_run(BroadcastRun& run, const Room::Effects& effects) {
  if (effects.deliveries.size() != 1 || effects.close_sender || !effects.log.empty()) return false;
  const Room::Delivery& delivery = effects.deliveries.front();
  if (delivery.except || (!run.frames.empty() && run.to != delivery.to)) return false;
  run.to = delivery.to;
  run.frames.insert(run.frames.end(), delivery.frame->begin(), delivery.frame->end());
  return true;
}
// [broadcast-run]

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
// one gathered send per client however many frames it got — and repeat,
// until a posted (quit) completion arrives. The wait has a timeout so that
// some worker regularly looks for leaving clients that are overdue.
void ChatServer::run_worker() {
  std::vector<std::shared_ptr<Connection>> sends;
  scheduled_sends = &sends;
  std::array<Completion, kCompletionBatch> batch;
  std::size_t quits = 0;
  while (quits == 0) {
    const std::size_t count = port_object_->wait_many(batch, kSweepInterval);
    sweep();
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
    // Out of descriptors, with a connection waiting: give up the spare, so
    // that this accept, re-posted at once, can take that connection.
    // (Each connection so closed is logged as refused; nothing to log here.)
    if (SpareDescriptor::is_exhaustion(completion.error) && spare_.release()) {
      repost_accept(accept);
      return;
    }
    park_accept(accept, completion.error);  // the sweep re-posts it after a pause
    return;
  }
  // The spare cannot be taken back: this connection is the one it made room
  // for (or the process is still out of descriptors). Close it at once.
  if (!spare_.restore()) {
    refuse_for_descriptors(std::move(socket));
    repost_accept(accept);
    return;
  }
  // Keep the listener stocked before spending time on the new client.
  repost_accept(accept);
  admit(std::move(socket));
}
// [on-accept]

// A failed accept waits kAcceptRetryPause in the parked list instead of
// putting a worker to sleep; the sweep re-posts it (or, once stop() has
// begun, lets it go).
void ChatServer::park_accept(AcceptOperation& accept, const std::error_code& error) {
  bool accepting = false;
  {
    const CriticalSectionLock lock(accepting_lock_);
    accepting = accepting_;
    if (accepting) {
      parked_accepts_.emplace_back(&accept, std::chrono::steady_clock::now() + kAcceptRetryPause);
    }
  }
  if (accepting) {
    log_line("accept failed: " + error.message() + "; retrying shortly");
  } else {
    repost_accept(accept);  // stop() has begun: this accept ends here
  }
}

// Called by the sweep: re-posts the parked accepts whose pause is over.
void ChatServer::repost_parked_accepts(std::chrono::steady_clock::time_point now) {
  std::vector<AcceptOperation*> due;
  {
    const CriticalSectionLock lock(accepting_lock_);
    const bool accepting = accepting_;
    std::erase_if(parked_accepts_, [&](const auto& parked) {
      if (accepting && parked.second > now) return false;
      due.push_back(parked.first);
      return true;
    });
  }
  for (AcceptOperation* accept : due) repost_accept(*accept);
}

// The connection the spare descriptor made room for: closed at once, so its
// client hears at once that there is no room, and the spare is taken back.
void ChatServer::refuse_for_descriptors(Socket socket) {
  log_line("client " + peer_name(socket) + " refused: out of file descriptors");
  socket.close();
  spare_.restore();
}

// [admit]
// A new client joins the list and gets its first receive. Past
// --max-clients it is told SERVER_FULL and let go.
void ChatServer::admit(Socket socket) {
  auto connection = std::make_shared<Connection>(std::move(socket));
  connection->name = peer_name(connection->socket);
  // Chat frames are small: send each at once instead of letting Nagle's
  // algorithm hold it back until the previous one is acknowledged.
  set_no_delay(connection->socket);
  // Associate before the connection is visible to broadcasts, which may start a send on it.
  port_object_->associate(connection->socket, reinterpret_cast<CompletionKey>(connection.get()));

  std::int64_t count = 0;
  bool full = false;
  {
    const CriticalSectionLock lock(clients_lock_);
    if (stopping_) {
      log_line("client " + connection->name + " refused: server shutting down");
      port_object_->close(connection->socket);
      return;
    }
    full = client_count_.value() >= static_cast<std::int64_t>(config_.max_clients);
    connection->admitted = !full;
    connection->place = clients_.insert(clients_.end(), connection);
    connections_.increment();
    count = full ? client_count_.value() : client_count_.increment();
  }
  if (full) {
    log_line("client " + connection->name + " refused: server full (" + clients_text(count) + ")");
  } else {
    log_line("client " + connection->name + " connected (" + clients_text(count) + ")");
  }

  bool done = false;
  {
    const CriticalSectionLock lock(connection->lock);
    if (!connection->closing) {
      ++connection->outstanding;
      port_object_->start_receive(connection->socket, connection->receive);
    }
    if (full) {
      start_leaving_locked(*connection, "server full", encode_shared(ErrorPacket{ErrorCode::server_full}));
    }
    done = completed_locked(*connection);
  }
  if (done) finish(*connection);
}
// [admit]

// [on-receive]
// Bytes arrived from one client: frame them, let the room answer, receive again.
void ChatServer::on_receive(Connection& connection, const Completion& completion) {
  bool frames = false;
  bool released = false;
  bool done = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (!connection.closing) {
      if (completion.error) {
        begin_close_locked(connection, "receive failed: " + completion.error.message());
      } else if (completion.bytes == 0) {
        // End of stream: the client will send no more, but it may still be
        // reading what is queued for it. Flush, then close.
        connection.peer_done = true;
        if (connection.flush_then_close) {
          if (!connection.sending) begin_close_locked(connection, connection.close_reason);
        } else {
          start_leaving_locked(connection, "client closed the connection", nullptr);
        }
      } else {
        frames = !connection.flush_then_close;  // a leaving client's bytes are read and dropped
      }
    }
    if (connection.closing || connection.peer_done) {
      --connection.outstanding;  // this receive is over, and no other will start
      done = completed_locked(connection);
      released = true;
    }
  }
  if (released) {
    if (done) finish(connection);
    return;
  }

  // The receive still counts as outstanding here, so the connection cannot be
  // finished under us; and the next receive starts only after these frames
  // are in every queue, which is what keeps each sender's messages in order.
  if (frames) {
    connection.assembler.feed(connection.receive.received(completion.bytes));
    handle_frames(connection);
  }

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

// [handle-frames]
// Every complete frame goes to the room, and its answer is applied in order.
// Chat messages that go to the same members are gathered into a run and
// delivered together. Returns false once the connection has started leaving.
bool ChatServer::handle_frames(Connection& connection) {
  const auto self = connection.shared_from_this();
  // The room queues a LOGIN_RESPONSE itself, under its lock; deliver() only
  // appends to this client's queue (its receive is outstanding, so it
  // cannot be finished from inside).
  const auto reply = [this, &connection](const SharedBuffer& response) { deliver(connection, *response); };
  BroadcastRun run;
  const auto deliver_run = [this, &run] {
    if (run.frames.empty()) return;
    for (const auto& recipient : *run.to) deliver(*recipient, run.frames);
    run.frames.clear();
  };
  bool staying = true;
  for (;;) {
    {
      const CriticalSectionLock lock(connection.lock);
      if (connection.closing || connection.flush_then_close) {
        staying = false;
        break;
      }
    }
    std::span<const std::byte> frame;
    ErrorCode error = ErrorCode::malformed_frame;
    const FrameAssembler::Status status = connection.assembler.next(frame, error);
    if (status == FrameAssembler::Status::need_more) break;
    const bool chat = status == FrameAssembler::Status::frame &&
                      frame_type(frame) == static_cast<std::uint16_t>(PacketType::chat_request);
    // Anything else may answer the sender at once (a login's reply), so
    // the run goes out first: the sender hears everything in order.
    if (!chat) deliver_run();
    const auto effects = status == FrameAssembler::Status::frame ? room_.on_frame(self, frame, reply)
                                                                 : room_.on_bad_stream(self, error);
    if (chat && join_run(run, effects)) continue;
    deliver_run();
    apply(connection, effects);
    if (effects.close_sender) {
      const CriticalSectionLock lock(connection.lock);
      start_leaving_locked(connection, effects.log, nullptr);
      staying = false;
      break;
    }
  }
  deliver_run();
  return staying;
}
// [handle-frames]

// [apply]
// Delivers the room's frames, in order, without holding any room lock: each
// delivery carries its own snapshot of the recipients.
void ChatServer::apply(Connection& sender, const ChatRoom<std::shared_ptr<Connection>>::Effects& effects) {
  if (!effects.log.empty() && !effects.close_sender) log_line("client " + sender.name + ": " + effects.log);
  for (const auto& delivery : effects.deliveries) {
    for (const auto& recipient : *delivery.to) {
      if (delivery.except && *delivery.except == recipient) continue;
      deliver(*recipient, *delivery.frame);
    }
  }
}
// [apply]

// [deliver]
// Appends frames to one client's queue; its send starts at the end of the
// worker's batch unless one is in flight. Never waits: a client whose queue
// would pass the bound is told SLOW_CONSUMER and let go instead.
void ChatServer::deliver(Connection& connection, std::span<const std::byte> frames) {
  bool done = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.closing || connection.flush_then_close)
      return;  // nothing new for a client that is leaving
    if (connection.outbound.size() + frames.size() > config_.max_queue_bytes) {
      // What is not in flight yet is dropped; the warning goes out next.
      connection.outbound.drop_pending();
      start_leaving_locked(
          connection,
          "slow consumer: more than " + std::to_string(config_.max_queue_bytes) + " bytes waiting",
          encode_shared(ErrorPacket{ErrorCode::slow_consumer}));
      done = completed_locked(connection);
    } else {
      connection.outbound.append(frames);
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

// The end of a worker's batch: one send for each client that got frames.
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
        finish_leaving_locked(connection);  // its last frames are out
      }
    }
    done = completed_locked(connection);
  }
  if (start) port_object_->start_send(connection.socket, connection.send);
  if (done) finish(connection);
}
// [on-send]

// [leaving]
// Leaving: the graceful way out, for a client that is told why (ERROR) or
// that closed its side. Nothing new is queued; `last_words`, if any, goes out
// after what is already queued; then finish_leaving_locked. If the client
// does not read them within leave_time, the sweep closes it anyway.
void ChatServer::start_leaving_locked(Connection& connection, std::string reason, SharedBuffer last_words) {
  if (connection.closing || connection.flush_then_close) return;
  connection.flush_then_close = true;
  connection.close_reason = std::move(reason);
  connection.leave_by = std::chrono::steady_clock::now() + config_.leave_time;
  if (last_words) connection.outbound.append(*last_words);
  if (connection.sending) return;  // on_send continues
  if (connection.outbound.has_pending()) {
    start_send_locked(connection);
  } else {
    finish_leaving_locked(connection);
  }
}

// The leaving client's queue is flushed. If it already closed its side, close
// now; otherwise send our FIN (shutdown SD_SEND) and keep reading — and
// dropping — until its FIN, so that closing with unread bytes does not turn
// into a reset that could destroy the frames we just sent.
void ChatServer::finish_leaving_locked(Connection& connection) {
  if (connection.peer_done) {
    begin_close_locked(connection, connection.close_reason);
  } else {
    shutdown_send(connection.socket);
  }
}
// [leaving]

// [sweep]
// The server's clock: re-posts parked accepts, closes leaving clients that
// did not finish within leave_time and clients that did not log in within
// login_timeout. One worker at a time, at most every kSweepInterval.
void ChatServer::sweep() {
  const auto now = std::chrono::steady_clock::now();
  auto due = next_sweep_.load();
  if (now.time_since_epoch().count() < due) return;
  if (!next_sweep_.compare_exchange_strong(due, (now + kSweepInterval).time_since_epoch().count())) return;

  repost_parked_accepts(now);
  std::vector<std::shared_ptr<Connection>> everyone;
  {
    const CriticalSectionLock lock(clients_lock_);
    everyone.assign(clients_.begin(), clients_.end());
  }
  for (const auto& connection : everyone) {
    bool done = false;
    {
      const CriticalSectionLock lock(connection->lock);
      if (connection->flush_then_close && !connection->closing && now > connection->leave_by) {
        begin_close_locked(*connection, connection->close_reason + " (did not leave in time)");
        done = completed_locked(*connection);
      }
    }
    if (done) {
      finish(*connection);
    } else {
      close_if_login_overdue(*connection, now);
    }
  }
}

// The login timeout: a connection that has not logged in within
// login_timeout of its accept, or of the last LOGIN_REQUEST the room
// answered, leaves without an ERROR (PROTOCOL.md has no code for it). The
// room knows who is logged in and how many logins it answered; the sweep
// notices a new answer at most kSweepInterval late, which only lengthens
// the time allowed. Bytes the server has not read yet also restart the timer.
void ChatServer::close_if_login_overdue(Connection& connection, std::chrono::steady_clock::time_point now) {
  if (config_.login_timeout.count() == 0) return;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.logged_in || connection.closing || connection.flush_then_close) return;
  }
  const auto progress = room_.login_progress(connection.shared_from_this());
  bool done = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (progress.logged_in) {
      connection.logged_in = true;
    } else if (progress.answered != connection.logins_answered) {
      connection.logins_answered = progress.answered;
      connection.login_timer = now;
    } else if (unread_bytes(connection.socket) > 0) {
      // Its bytes wait in the socket: the server is behind, not the client
      // (seen with 10,000 clients logging in at once on the epoll backend).
      connection.login_timer = now;
    } else if (now - connection.login_timer >= config_.login_timeout) {
      begin_close_locked(connection, "login timeout");  // no frame is owed to it
      done = completed_locked(connection);
    }
  }
  if (done) finish(connection);
}
// [sweep]

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
// Leaves the room and the list, closes the socket, logs. Called once per
// connection, with no operation of it outstanding.
void ChatServer::finish(Connection& connection) {
  std::shared_ptr<Connection> keep;  // the list's reference, released at the end of this function
  {
    const CriticalSectionLock lock(clients_lock_);
    keep = *connection.place;
    clients_.erase(connection.place);
  }
  const auto left = room_.on_leave(keep);  // USER_LEFT to the others, if it was logged in
  apply(connection, left);
  std::string reason;
  {
    const CriticalSectionLock lock(connection.lock);
    reason = connection.close_reason;
  }
  port_object_->close(connection.socket);
  const std::int64_t count = connection.admitted ? client_count_.decrement() : client_count_.value();
  if (connection.admitted) {
    log_line("client " + connection.name + " disconnected: " + reason + " (" + clients_text(count) + ")");
  }
  connections_.decrement();
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
    drained_.wait(lock, [this] { return connections_.value() == 0 && accepts_alive_.value() == 0; });
  }
  // 4. One quit completion per worker, then join them.
  for (std::size_t i = 0; i < workers_.size(); ++i) port_object_->post(0);
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  port_object_->close(listener_);
  log_line("server stopped");
}
// [stop]

}  // namespace iocp_chat::v2
