// chat_server.cpp — ver.2's chat server on the completion-port layer:
// ver.1's server with a FrameAssembler and a ChatRoom in the receive path.
//
// Read it in this order: start() and run_worker() (the original's worker
// loop, made correct), then on_accept, on_receive, handle_frames and
// apply/deliver (how one frame reaches everyone without blocking on anyone),
// the back-pressure (wait_for_room, the sweep, shed_largest_queues), on_send,
// and last the two ways out: leaving (flush the last frames, then close) and
// closing (begin_close_locked → settle_locked → depart, finish).
#include "chat_server.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include "iocp_chat/log.hpp"

namespace iocp_chat::v2 {
namespace {

/// Pause before re-posting an accept that failed (and the spare descriptor
/// could not help): if the process is out of file descriptors, the listener
/// stays ready and an immediate retry would spin a worker at 100% CPU without
/// ever succeeding. The accept is parked, and the sweep re-posts it.
constexpr std::chrono::milliseconds kAcceptRetryPause{100};

/// How often an idle worker wakes up to run the sweep.
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

ChatServer::ChatServer(ServerConfig config)
    : config_(std::move(config)), queued_total_(config_.max_total_queue_bytes) {}

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
  // From the first accept on, operations are pending in the kernel: if
  // anything fails after that, stop() must run, so that no accept is freed
  // while AcceptEx may still write into it. The workers start first, so
  // that stop() finds someone to drain the port.
  started_ = true;
  try {
    const unsigned threads =
        config_.threads != 0 ? config_.threads : std::max(2U, 2 * std::thread::hardware_concurrency());
    for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { run_worker(); });
    for (unsigned i = 0; i < std::max(1U, config_.pre_posted_accepts); ++i) {
      accepts_.push_back(std::make_unique<AcceptOperation>());
      accepts_alive_.increment();
      port_object_->start_accept(listener_, *accepts_.back());
    }
  } catch (...) {
    stop();
    throw;
  }

  log_line(backend_note);
  log_line("listening on " + config_.bind_address + ":" + std::to_string(port_) + " with " +
           std::to_string(workers_.size()) + " worker threads");
}
// [start]

// [worker-loop]
// The worker loop: take a batch of completions (GetQueuedCompletionStatusEx),
// hand each to its handler, then start the sends the batch made necessary —
// one gathered send per client however many frames it got — and repeat,
// until a posted (quit) completion arrives. The wait has a timeout so that
// some worker regularly runs the sweep (parked accepts, overdue and stuck
// clients).
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
        continue;
      }
      // A handler that throws (std::bad_alloc, say) must not end the process,
      // nor every other client's chat: log it and go on.
      try {
        dispatch(completion);
      } catch (const std::exception& error) {
        log_line(std::string("internal error while handling a completion: ") + error.what());
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
  auto connection = std::make_shared<Connection>(std::move(socket), queued_total_);
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

  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection->lock);
    if (!connection->closing) {
      ++connection->outstanding;
      port_object_->start_receive(connection->socket, connection->receive);
    }
    if (full) {
      start_leaving_locked(*connection, "server full", encode_shared(ErrorPacket{ErrorCode::server_full}));
    }
    after = settle_locked(*connection);
  }
  settle(*connection, std::move(after));
}
// [admit]

// [on-receive]
// Bytes arrived from one client: frame them, let the room answer, receive
// again — unless a recipient's queue is congested: then the next receive
// waits for room.
void ChatServer::on_receive(Connection& connection, const Completion& completion) {
  bool frames = false;
  bool released = false;
  AfterUnlock after;
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
      released = true;
    }
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
  if (released) return;

  // The receive still counts as outstanding here, so the connection cannot be
  // finished under us; and the next receive starts only after these frames
  // are in every queue, which is what keeps each sender's messages in order.
  if (frames) {
    try {
      connection.assembler.feed(connection.receive.received(completion.bytes));
      const std::shared_ptr<Connection> congested = handle_frames(connection);
      if (congested && wait_for_room(*congested, connection)) return;  // the receive stays outstanding
    } catch (const std::exception& error) {
      // Out of memory, say: this connection goes, the server goes on, and
      // receive_again() below still ends its receive (no operation is lost).
      const CriticalSectionLock lock(connection.lock);
      begin_close_locked(connection, std::string("internal error: ") + error.what());
    }
  }
  receive_again(connection);
}

// The next receive of a connection whose last one was handled (or whose
// wait for room is over) — or, if it is closing, the end of its receiving.
void ChatServer::receive_again(Connection& connection) {
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.closing) {
      --connection.outstanding;
    } else {
      port_object_->start_receive(connection.socket, connection.receive);
    }
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
}
// [on-receive]

// [handle-frames]
// Every complete frame goes to the room, and its answer is applied in order.
// Chat messages that go to the same members are gathered into a run and
// delivered together. Returns a recipient whose queue is now congested, if any.
std::shared_ptr<Connection> ChatServer::handle_frames(Connection& connection) {
  const auto self = connection.shared_from_this();
  // The room queues a LOGIN_RESPONSE itself, under its lock.
  const auto reply = [this, &connection](const SharedBuffer& response) {
    return queue_reply(connection, *response);
  };
  std::shared_ptr<Connection> congested;
  BroadcastRun run;
  const auto deliver_run = [this, &run, &congested] {
    if (run.frames.empty()) return;
    for (const auto& recipient : *run.to) {
      if (deliver(*recipient, run.frames) && !congested) congested = recipient;
    }
    run.frames.clear();
  };
  for (;;) {
    {
      const CriticalSectionLock lock(connection.lock);
      if (connection.closing || connection.flush_then_close) break;
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
    if (auto full = apply(connection, effects); full && !congested) congested = std::move(full);
    if (effects.close_sender) {
      const CriticalSectionLock lock(connection.lock);
      start_leaving_locked(connection, effects.log, nullptr);
      break;
    }
  }
  deliver_run();
  if (queued_total_.over()) shed_largest_queues();
  return congested;
}

// The LOGIN_RESPONSE, queued by the room under its lock: only appended, never
// settled here (a departure would need the room's lock). False if the client
// is leaving; its receive handler settles whatever this decided.
bool ChatServer::queue_reply(Connection& connection, std::span<const std::byte> frame) {
  const CriticalSectionLock lock(connection.lock);
  if (connection.closing || connection.flush_then_close) return false;
  if (connection.outbound.size() + frame.size() > config_.max_queue_bytes) {
    drop_slow_consumer_locked(
        connection, "slow consumer: more than " + std::to_string(config_.max_queue_bytes) + " bytes waiting");
    return false;
  }
  connection.outbound.append(frame);
  if (!connection.sending) schedule_send_locked(connection);
  return true;
}
// [handle-frames]

// [apply]
// Delivers the room's frames, in order, without holding any room lock: each
// delivery carries its own snapshot of the recipients. Returns a recipient
// whose queue is now congested, if any.
std::shared_ptr<Connection> ChatServer::apply(Connection& sender,
                                              const ChatRoom<std::shared_ptr<Connection>>::Effects& effects) {
  if (!effects.log.empty() && !effects.close_sender) log_line("client " + sender.name + ": " + effects.log);
  std::shared_ptr<Connection> congested;
  for (const auto& delivery : effects.deliveries) {
    for (const auto& recipient : *delivery.to) {
      if (delivery.except && *delivery.except == recipient) continue;
      if (deliver(*recipient, *delivery.frame) && !congested) congested = recipient;
    }
  }
  return congested;
}
// [apply]

// [deliver]
// Appends frames to one client's queue; its send starts at the end of the
// worker's batch unless one is in flight. Never waits: a client whose queue
// would pass the bound is told SLOW_CONSUMER and let go instead. True when
// the queue is congested: a quarter of the bound or more is waiting, so the
// sender should wait too.
bool ChatServer::deliver(Connection& connection, std::span<const std::byte> frames) {
  AfterUnlock after;
  bool congested = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.closing || connection.flush_then_close)
      return false;  // nothing new for a client that is leaving
    if (connection.outbound.size() + frames.size() > config_.max_queue_bytes) {
      drop_slow_consumer_locked(connection, "slow consumer: more than " +
                                                std::to_string(config_.max_queue_bytes) + " bytes waiting");
    } else {
      try {
        connection.outbound.append(frames);
        if (!connection.sending) schedule_send_locked(connection);
        congested = connection.outbound.size() >= config_.max_queue_bytes / 4;
        if (congested && !connection.congested_since)
          connection.congested_since = std::chrono::steady_clock::now();
      } catch (const std::bad_alloc&) {
        drop_slow_consumer_locked(connection, "slow consumer: out of memory for its queue");
      }
    }
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
  return congested;
}

// A slow consumer: what is not in flight yet is dropped, SLOW_CONSUMER goes
// out next (best effort), and it leaves the room at once (settle_locked).
void ChatServer::drop_slow_consumer_locked(Connection& connection, std::string reason) {
  connection.outbound.drop_pending();
  start_leaving_locked(connection, std::move(reason), encode_shared(ErrorPacket{ErrorCode::slow_consumer}));
}
// [deliver]

// [back-pressure]
// The sender's next receive waits until `congested` has room again (its
// on_send resumes the sender, or its leaving does, or the sweep drops it
// after stall_limit). False if it already has room, or is leaving: then the
// sender goes on at once. Not reading is how the server pushes back: the
// sender's bytes wait in its own socket, and TCP slows the sender down.
bool ChatServer::wait_for_room(Connection& congested, Connection& sender) {
  const CriticalSectionLock lock(congested.lock);
  if (congested.closing || congested.flush_then_close) return false;
  if (congested.outbound.size() < config_.max_queue_bytes / 8) return false;  // drained meanwhile
  congested.waiting_senders.push_back(sender.shared_from_this());
  senders_paused_.increment();
  return true;
}

// The server-wide bound: when all queues together pass it, the largest ones
// are dropped — slow consumers first, never growing — until the total is
// back under three quarters of the bound (so that one pass makes room for a
// while). Queues already leaving are counted as gone. One worker at a time.
void ChatServer::shed_largest_queues() {
  if (shedding_.exchange(true)) return;
  std::vector<std::shared_ptr<Connection>> everyone;
  {
    const CriticalSectionLock lock(clients_lock_);
    everyone.assign(clients_.begin(), clients_.end());
  }
  std::vector<std::pair<std::size_t, std::shared_ptr<Connection>>> by_size;
  std::size_t leaving = 0;
  for (const auto& connection : everyone) {
    const CriticalSectionLock lock(connection->lock);
    const std::size_t size = connection->outbound.size();
    if (connection->closing || connection->flush_then_close) {
      leaving += size;
    } else if (size > 0) {
      by_size.emplace_back(size, connection);
    }
  }
  std::sort(by_size.begin(), by_size.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::size_t total = queued_total_.bytes() - std::min(leaving, queued_total_.bytes());
  const std::size_t target = queued_total_.limit() / 4 * 3;
  for (const auto& [size, connection] : by_size) {
    if (total <= target) break;
    AfterUnlock after;
    {
      const CriticalSectionLock lock(connection->lock);
      drop_slow_consumer_locked(*connection, "slow consumer: " + std::to_string(size) +
                                                 " bytes waiting when all queues together passed " +
                                                 std::to_string(queued_total_.limit()));
      after = settle_locked(*connection);
    }
    settle(*connection, std::move(after));
    total -= std::min(total, size);
  }
  shedding_.store(false);
}
// [back-pressure]

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
// next one if more piled up meanwhile. Senders that waited for room in this
// queue go on once it is below an eighth of the bound (settle_locked).
void ChatServer::on_send(Connection& connection, const Completion& completion) {
  AfterUnlock after;
  bool start = false;
  {
    const CriticalSectionLock lock(connection.lock);
    --connection.outstanding;
    connection.sending = false;
    connection.outbound.send_completed(connection.send);
    // Progress: the kernel took a whole send. A congested client that reads
    // at all gets here again and again; only one that does not is stuck.
    if (connection.congested_since && !completion.error)
      connection.congested_since = std::chrono::steady_clock::now();
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
    after = settle_locked(connection);
  }
  // Outside the lock; if another worker cancels in between, the send fails at
  // once (cancel() covers operations started after it).
  if (start) port_object_->start_send(connection.socket, connection.send);
  settle(connection, std::move(after));
}
// [on-send]

// [leaving]
// Leaving: the graceful way out, for a client that is told why (ERROR) or
// that closed its side. It leaves the room at once (settle_locked): the
// others hear USER_LEFT now, not once its socket is done. Nothing new is
// queued; `last_words`, if any, goes out after what is already queued; then
// finish_leaving_locked. If the client does not read them within
// leave_time, the sweep closes it anyway.
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
// did not finish within leave_time, drops clients whose queues stayed
// congested for stall_limit with no send completing (stuck: a client that
// reads at all completes a send long before; all such clients go in one
// pass, so ten of them cost a sender one stall_limit, not ten), and closes
// clients that did not log in within login_timeout. One worker at a time,
// at most every kSweepInterval.
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
    AfterUnlock after;
    {
      const CriticalSectionLock lock(connection->lock);
      if (connection->flush_then_close && !connection->closing && now > connection->leave_by) {
        begin_close_locked(*connection, connection->close_reason + " (did not leave in time)");
      } else if (connection->congested_since && now - *connection->congested_since > config_.stall_limit) {
        drop_slow_consumer_locked(*connection, "slow consumer: congested for more than " +
                                                   std::to_string(config_.stall_limit.count()) + " ms");
      }
      after = settle_locked(*connection);
    }
    settle(*connection, std::move(after));
    close_if_login_overdue(*connection, now);
  }
}

// The login timeout: a connection that has not logged in within
// login_timeout of its accept, or of the last LOGIN_REQUEST the room
// answered, leaves without an ERROR (docs/protocol.md has no code for it).
// The room knows who is logged in and how many logins it answered; the
// sweep notices a new answer at most kSweepInterval late, which only
// lengthens the time allowed. Bytes the server has not read yet also
// restart the timer.
void ChatServer::close_if_login_overdue(Connection& connection, std::chrono::steady_clock::time_point now) {
  if (config_.login_timeout.count() == 0) return;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.logged_in || connection.closing || connection.flush_then_close) return;
  }
  const auto progress = room_.login_progress(connection.shared_from_this());
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection.lock);
    // Looked at again: another worker may have begun closing it meanwhile,
    // and then its socket may be closed (finish) at any moment.
    if (connection.closing || connection.flush_then_close) return;
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
    }
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
}
// [sweep]

// [close]
// The one place that decides a connection is closing: set the flag, drop
// what was queued, and cancel the outstanding operations (CancelIoEx) — and
// any started after this, by a worker that decided to send before the flag
// was set. Their completions arrive as usual; the flag, not their error
// codes, tells the handlers what is going on.
void ChatServer::begin_close_locked(Connection& connection, std::string reason) {
  if (connection.closing) return;
  connection.closing = true;
  connection.close_reason = std::move(reason);
  connection.outbound.drop_pending();
  port_object_->cancel(connection.socket);
}
// [close]

// [settle]
// After every decision, still under the lock: a client that started leaving
// or closing departs from the room (once, at once); the senders that waited
// for room in its queue go on when it has room again or is leaving; and it is
// freed exactly once — when it is closing and its last operation completed.
ChatServer::AfterUnlock ChatServer::settle_locked(Connection& connection) {
  AfterUnlock after;
  const bool leaving = connection.closing || connection.flush_then_close;
  if (leaving && !connection.departed) {
    connection.departed = true;
    after.departing = connection.shared_from_this();
  }
  if (connection.congested_since && connection.outbound.size() < config_.max_queue_bytes / 8) {
    connection.congested_since.reset();  // back under an eighth: no longer holding anyone up
  }
  if (!connection.waiting_senders.empty() &&
      (leaving || connection.outbound.size() < config_.max_queue_bytes / 8)) {
    after.resume = std::move(connection.waiting_senders);
    connection.waiting_senders.clear();
  }
  if (connection.closing && connection.outstanding == 0 && !connection.finished) {
    connection.finished = true;
    after.finish = true;
  }
  return after;
}

// The same, once the lock is released.
void ChatServer::settle(Connection& connection, AfterUnlock after) {
  if (after.departing) depart(*after.departing);
  for (const auto& sender : after.resume) receive_again(*sender);
  if (after.finish) finish(connection);
}

// Out of the room: its id is free again and the others hear USER_LEFT now,
// whatever is left to do with its socket.
void ChatServer::depart(Connection& connection) {
  std::string reason;
  {
    const CriticalSectionLock lock(connection.lock);
    reason = connection.close_reason;
  }
  auto left = room_.on_leave(connection.shared_from_this());
  if (!left.log.empty()) log_line("client " + connection.name + ": " + left.log + ": " + reason);
  left.log.clear();  // said above, with the reason
  apply(connection, left);
}
// [settle]

// [finish]
// Leaves the list (it left the room earlier, in depart), closes the socket,
// logs. Called once per connection, with no operation of it outstanding.
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
  // (Also reached from a start() that failed half way: the listener may be
  // open with accepts pending, and some workers running.)

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
    AfterUnlock after;
    {
      const CriticalSectionLock lock(connection->lock);
      begin_close_locked(*connection, "server shutting down");
      after = settle_locked(*connection);
    }
    settle(*connection, std::move(after));
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
