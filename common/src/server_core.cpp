// server_core.cpp — the server both stages share, on the completion-port layer.
//
// Read it in this order: start() and run_worker() (the original's worker
// loop, made correct), then on_accept and admit, on_receive (which hands the
// bytes to the stage, then waits for room or receives again), deliver and
// the send path (one write in flight, started at the end of a batch),
// on_send, the back-pressure (wait_for_room, shed_largest_queues, the sweep),
// and last the ways out: leaving (flush, FIN, close) and closing
// (begin_close_locked → settle_locked → finish), which is where the original
// freed sockets that other threads still used.
//
// Lines such as `// [name]` mark the listings the tutorial shows
// (scripts/inline-code.py copies the code between two of them).
#include "iocp_chat/server_core.hpp"

#include <algorithm>
#include <array>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include "iocp_chat/log.hpp"

namespace iocp_chat {
namespace {

/// Pause before re-posting an accept that failed (and the spare descriptor
/// could not help): if the process is out of file descriptors, the listener
/// stays ready and an immediate retry would spin a worker at 100% CPU without
/// ever succeeding. The accept is parked, and the sweep re-posts it.
constexpr std::chrono::milliseconds kAcceptRetryPause{100};

/// How often an idle worker wakes up to run the sweep.
constexpr std::chrono::milliseconds kSweepInterval{250};

/// The completion key of stop()'s posted quit. A stage's posted events
/// (post()) carry kStageEventKey instead.
constexpr CompletionKey kQuitKey = 0;
/// The completion key of a stage's posted event (ServerCore::post).
constexpr CompletionKey kStageEventKey = 1;

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

ServerCore::ServerCore(ServerCoreConfig config)
    : config_(std::move(config)), queued_total_(config_.max_total_queue_bytes) {}

ServerCore::~ServerCore() { stop(); }

// --- the stage's defaults -------------------------------------------------------

std::shared_ptr<Connection> ServerCore::make_connection(Socket socket, OutboundTotal& total) {
  return std::make_shared<Connection>(std::move(socket), total);
}
SharedBuffer ServerCore::farewell(Farewell) { return nullptr; }
void ServerCore::on_depart(Connection&) {}
void ServerCore::on_sweep(Connection&, std::chrono::steady_clock::time_point) {}
void ServerCore::on_posted(std::size_t) {}

// [start]
void ServerCore::start() {
  std::string backend_note;
  completion_port_ = open_completion_port(config_.backend, &backend_note);
  listener_ = open_listener(config_.bind_address, config_.port);
  tcp_port_ = local_port(listener_);
  completion_port_->associate(listener_, 0);

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
      completion_port_->start_accept(listener_, *accepts_.back());
    }
  } catch (...) {
    stop();
    throw;
  }

  log_line(backend_note);
  log_line("listening on " + config_.bind_address + ":" + std::to_string(tcp_port_) + " with " +
           std::to_string(workers_.size()) + " worker threads");
}
// [start]

// [worker-loop]
// The worker loop: take a batch of completions (GetQueuedCompletionStatusEx),
// hand each to its handler, then start the sends the batch made necessary —
// one send per client however many messages it got — and repeat,
// until a posted (quit) completion arrives. The wait has a timeout so that
// some worker regularly runs the sweep.
void ServerCore::run_worker() {
  std::vector<std::shared_ptr<Connection>> sends;
  scheduled_sends = &sends;
  std::array<Completion, kCompletionBatch> batch;
  std::size_t quits = 0;
  while (quits == 0) {
    const std::size_t count = completion_port_->wait_many(batch, kSweepInterval);
    sweep();
    for (const Completion& completion : std::span(batch).first(count)) {
      if (completion.kind() == OperationKind::posted && completion.key == kQuitKey) {
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
  for (std::size_t i = 1; i < quits; ++i) completion_port_->post(kQuitKey);
  scheduled_sends = nullptr;
}
// [worker-loop]

// [dispatch]
void ServerCore::dispatch(const Completion& completion) {
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
    case OperationKind::posted:  // an event of the stage's (the quit never gets here)
      on_posted(completion.bytes);
      break;
  }
}
// [dispatch]

// Re-posts an accept unless stop() has begun; under accepting_lock_ so that
// stop()'s cancel of the listener cannot slip between the check and the post.
bool ServerCore::repost_accept(AcceptOperation& accept) {
  {
    const CriticalSectionLock lock(accepting_lock_);
    if (accepting_) {
      completion_port_->start_accept(listener_, accept);
      return true;
    }
  }
  accepts_alive_.decrement();
  notify_drained();
  return false;
}

// [on-accept]
void ServerCore::on_accept(AcceptOperation& accept, const Completion& completion) {
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
void ServerCore::park_accept(AcceptOperation& accept, const std::error_code& error) {
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
void ServerCore::repost_parked_accepts(std::chrono::steady_clock::time_point now) {
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
void ServerCore::refuse_for_descriptors(Socket socket) {
  log_line("client " + peer_name(socket) + " refused: out of file descriptors");
  socket.close();
  spare_.restore();
}

// [admit]
// A new client joins the list and gets its first receive. Past max_clients
// it is refused: closed at once, or — if the stage has a farewell for it
// (ver.2's SERVER_FULL) — told so and let go.
void ServerCore::admit(Socket socket) {
  auto connection = make_connection(std::move(socket), queued_total_);
  connection->name = peer_name(connection->socket);
  // Chat messages are small: send each at once instead of letting Nagle's
  // algorithm hold it back until the previous one is acknowledged.
  set_no_delay(connection->socket);
  // Associate before the connection is visible to broadcasts, which may start a send on it.
  completion_port_->associate(connection->socket, reinterpret_cast<CompletionKey>(connection.get()));
  SharedBuffer full_notice;
  if (!enlist(connection, full_notice)) {
    completion_port_->close(connection->socket);
    return;
  }
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection->lock);
    if (connection->phase == Phase::open) {  // stop() may have closed it already
      ++connection->outstanding;
      completion_port_->start_receive(connection->socket, connection->receive);
      if (full_notice) begin_leaving_locked(*connection, "server full", full_notice);
    }
    after = settle_locked(*connection);
  }
  settle(*connection, std::move(after));
}

// Puts a new connection on the client list, or logs why not and returns
// false. Past max_clients it joins only to be told so: `full_notice` is
// then the stage's farewell, and it is not counted as a client.
bool ServerCore::enlist(const std::shared_ptr<Connection>& connection, SharedBuffer& full_notice) {
  std::int64_t count = 0;
  std::string refusal;
  {
    const CriticalSectionLock lock(clients_lock_);
    const bool full = client_count_.value() >= static_cast<std::int64_t>(config_.max_clients);
    if (full) full_notice = farewell(Farewell::server_full);
    if (stopping_) {
      refusal = "server shutting down";
    } else if (full && !full_notice) {
      refusal = "server full (" + std::to_string(config_.max_clients) + " clients)";
    } else {
      connection->counted = !full;
      connection->place = clients_.insert(clients_.end(), connection);
      connections_.increment();
      count = full ? client_count_.value() : client_count_.increment();
    }
  }
  if (!refusal.empty()) {
    log_line("client " + connection->name + " refused: " + refusal);
    return false;
  }
  log_line("client " + connection->name + (full_notice ? " refused: server full (" : " connected (") +
           clients_text(count) + ")");
  return true;
}
// [admit]

// [on-receive]
// Bytes arrived from one client: hand them to the stage, then receive again
// — unless a recipient's queue is congested: then the next receive waits
// for room. A leaving client's bytes are read and dropped.
void ServerCore::on_receive(Connection& connection, const Completion& completion) {
  switch (receive_completed(connection, completion)) {
    case AfterReceive::stop_receiving:
      return;
    case AfterReceive::hand_over:
      // The receive still counts as outstanding here, so the connection
      // cannot be finished under us, nor its buffer reused; and the next
      // receive starts only after these bytes are in every queue, which is
      // what keeps each sender's messages in order.
      if (hand_over(connection, connection.receive.received(completion.bytes))) return;  // waits for room
      break;
    case AfterReceive::receive_again:
      break;
  }
  receive_again(connection);
}

// The transition a receive's completion makes, under the lock: an error
// closes, zero bytes (the client's FIN) starts leaving, bytes from an open
// client go to the stage; a leaving client's bytes are dropped unread.
ServerCore::AfterReceive ServerCore::receive_completed(Connection& connection, const Completion& completion) {
  AfterReceive next = AfterReceive::receive_again;
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.phase < Phase::closing) {
      if (completion.error) {
        begin_close_locked(connection, "receive failed: " + completion.error.message());
      } else if (completion.bytes == 0) {
        on_end_of_stream_locked(connection);
      } else if (connection.phase == Phase::open) {
        next = AfterReceive::hand_over;
      }
    }
    if (connection.phase >= Phase::closing || connection.peer_done) {
      --connection.outstanding;  // this receive is over, and no other will start
      next = AfterReceive::stop_receiving;
    }
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
  return next;
}

// The stage's turn (on_bytes); then the server-wide bound. True when a
// recipient is congested and the sender's next receive waits for room.
bool ServerCore::hand_over(Connection& connection, std::span<const std::byte> bytes) {
  try {
    const std::shared_ptr<Connection> congested = on_bytes(connection, bytes);
    if (queued_total_.over()) shed_largest_queues();
    if (!congested) return false;
    // The stage has copied what it keeps of `bytes`. A sender that waits
    // for room may wait long: it holds no receive buffer meanwhile (given
    // back before wait_for_room, after which another worker may resume it).
    connection.receive.release_buffer();
    return wait_for_room(*congested, connection);
  } catch (const std::exception& error) {
    // Out of memory, say: this connection goes, the server goes on, and the
    // caller's receive_again() still ends its receive (no operation is lost).
    const CriticalSectionLock lock(connection.lock);
    begin_close_locked(connection, std::string("internal error: ") + error.what());
    return false;
  }
}

// End of stream: the client will send no more, but it may still be reading
// what is queued for it (its own last message's echo, say). Flush, then close.
void ServerCore::on_end_of_stream_locked(Connection& connection) {
  connection.peer_done = true;
  if (connection.phase == Phase::open) {
    if (connection.answer_owed) return;  // it leaves once answered (set_answer_owed)
    begin_leaving_locked(connection, "client closed the connection", nullptr);
  } else if (!connection.send_in_flight) {
    begin_close_locked(connection, connection.close_reason);  // it left, and its FIN came
  }
}

// The next receive of a connection whose last one was handled (or whose
// wait for room is over) — or, if it is closing, the end of its receiving.
void ServerCore::receive_again(Connection& connection) {
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.phase >= Phase::closing) {
      --connection.outstanding;
    } else {
      completion_port_->start_receive(connection.socket, connection.receive);
    }
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
}
// [on-receive]

// [deliver]
// Appends bytes to one client's queue; its send starts at the end of the
// worker's batch unless one is in flight. Never waits: a client whose queue
// would pass the bound is dropped instead. True when the queue is congested:
// a quarter of the bound or more is waiting, so the sender should wait too.
bool ServerCore::deliver(Connection& connection, std::span<const std::byte> bytes) {
  AfterUnlock after;
  bool congested = false;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.phase != Phase::open) return false;  // nothing new for a client that is leaving
    if (connection.outbound.size() + bytes.size() > config_.max_queue_bytes) {
      drop_slow_consumer_locked(connection, "slow consumer: more than " +
                                                std::to_string(config_.max_queue_bytes) + " bytes waiting");
    } else {
      try {
        connection.outbound.append(bytes);
        if (!connection.send_in_flight) schedule_send_locked(connection);
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

// Only appends and schedules: called with another lock held (ver.2's room
// queues a LOGIN_RESPONSE under its own), so nothing here may take the
// room's lock — the receive handler settles whatever this decided.
bool ServerCore::append_only(Connection& connection, std::span<const std::byte> bytes) {
  const CriticalSectionLock lock(connection.lock);
  if (connection.phase != Phase::open) return false;
  if (connection.outbound.size() + bytes.size() > config_.max_queue_bytes) {
    drop_slow_consumer_locked(
        connection, "slow consumer: more than " + std::to_string(config_.max_queue_bytes) + " bytes waiting");
    return false;
  }
  connection.outbound.append(bytes);
  if (!connection.send_in_flight) schedule_send_locked(connection);
  return true;
}

// A slow consumer: what is not in flight yet is dropped; then it is told why
// and let go (if the stage has a farewell) or closed at once.
void ServerCore::drop_slow_consumer_locked(Connection& connection, std::string reason) {
  connection.outbound.drop_pending();
  if (SharedBuffer last_words = farewell(Farewell::slow_consumer)) {
    begin_leaving_locked(connection, std::move(reason), std::move(last_words));
  } else {
    begin_close_locked(connection, std::move(reason));
  }
}
// [deliver]

// [back-pressure]
// The sender's next receive waits until `congested` has room again (its
// on_send resumes the sender, or its leaving does, or the sweep drops it
// after stall_limit). False if it already has room, or is leaving: then the
// sender goes on at once. Not reading is how the server pushes back: the
// sender's bytes wait in its own socket, and TCP slows the sender down.
bool ServerCore::wait_for_room(Connection& congested, Connection& sender) {
  const CriticalSectionLock lock(congested.lock);
  if (congested.phase != Phase::open) return false;
  if (congested.outbound.size() < config_.max_queue_bytes / 8) return false;  // drained meanwhile
  congested.waiting_senders.push_back(sender.shared_from_this());
  senders_paused_.increment();
  return true;
}

// The server-wide bound: when all queues together pass it, the largest ones
// are dropped — slow consumers first, never growing — until the total is
// back under three quarters of the bound (so that one pass makes room for a
// while). Queues already leaving are counted as gone. One worker at a time.
void ServerCore::shed_largest_queues() {
  if (shedding_.exchange(true)) return;
  std::vector<std::pair<std::size_t, std::shared_ptr<Connection>>> by_size;
  std::size_t leaving = 0;
  for (const auto& connection : connections()) {
    const CriticalSectionLock lock(connection->lock);
    const std::size_t size = connection->outbound.size();
    if (connection->phase != Phase::open) {
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
void ServerCore::schedule_send_locked(Connection& connection) {
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
void ServerCore::start_scheduled_sends() {
  if (scheduled_sends->empty()) return;
  completion_port_->begin_batch();  // io_uring: one system call for all of them
  for (const auto& connection : *scheduled_sends) {
    bool start = false;
    {
      const CriticalSectionLock lock(connection->lock);
      connection->send_scheduled = false;
      start = connection->phase < Phase::closing && !connection->send_in_flight &&
              connection->outbound.has_pending();
      if (start) claim_send_locked(*connection);
    }
    if (start) completion_port_->start_send(connection->socket, connection->send);
  }
  completion_port_->end_batch();
  scheduled_sends->clear();
}

// Hands everything queued to the send operation, which is in flight from
// now on: nothing else touches it until its completion.
void ServerCore::claim_send_locked(Connection& connection) {
  connection.outbound.start_send(connection.send);
  connection.send_in_flight = true;
  ++connection.outstanding;
}

// One WSASend of everything queued, started with the lock held (the rarer paths).
void ServerCore::start_send_locked(Connection& connection) {
  claim_send_locked(connection);
  completion_port_->start_send(connection.socket, connection.send);
}
// [send]

// [on-send]
// The send finished (the layer completes short writes itself); start the
// next one if more piled up meanwhile. Senders that waited for room in this
// queue go on once it is below an eighth of the bound (settle_locked).
void ServerCore::on_send(Connection& connection, const Completion& completion) {
  AfterUnlock after;
  bool start = false;
  {
    const CriticalSectionLock lock(connection.lock);
    --connection.outstanding;
    connection.send_in_flight = false;
    connection.outbound.send_completed(connection.send);
    // Progress: the kernel took a whole send. A congested client that reads
    // at all gets here again and again; only one that does not is stuck.
    if (connection.congested_since && !completion.error)
      connection.congested_since = std::chrono::steady_clock::now();
    if (connection.phase < Phase::closing) {
      if (completion.error) {
        begin_close_locked(connection, "send failed: " + completion.error.message());
      } else if (connection.outbound.has_pending()) {
        claim_send_locked(connection);  // started below, outside the lock
        start = true;
      } else if (connection.phase == Phase::leaving) {
        finish_leaving_locked(connection);  // its last bytes are out
      }
    }
    after = settle_locked(connection);
  }
  // Outside the lock; if another worker cancels in between, the send fails at
  // once (cancel() covers operations started after it).
  if (start) completion_port_->start_send(connection.socket, connection.send);
  settle(connection, std::move(after));
}
// [on-send]

// [leaving]
// Leaving: the graceful way out, for a client that closed its side or that
// is told why it must go. Nothing new is queued; `last_words`, if any, goes
// out after what is already queued; then finish_leaving_locked. If the
// client does not read them within leave_time, the sweep closes it anyway.
void ServerCore::begin_leaving_locked(Connection& connection, std::string reason, SharedBuffer last_words) {
  if (connection.phase != Phase::open) return;
  connection.phase = Phase::leaving;
  connection.close_reason = std::move(reason);
  connection.leave_by = std::chrono::steady_clock::now() + config_.leave_time;
  if (last_words) connection.outbound.append(*last_words);
  if (connection.send_in_flight) return;  // on_send continues
  if (connection.outbound.has_pending()) {
    start_send_locked(connection);
  } else {
    finish_leaving_locked(connection);
  }
}

// The leaving client's queue is flushed. If it already closed its side, close
// now; otherwise send our FIN (shutdown SD_SEND) and keep reading — and
// dropping — until its FIN, so that closing with unread bytes does not turn
// into a reset that could destroy the bytes we just sent.
void ServerCore::finish_leaving_locked(Connection& connection) {
  if (connection.peer_done) {
    begin_close_locked(connection, connection.close_reason);
  } else {
    shutdown_send(connection.socket);
  }
}

void ServerCore::leave(Connection& connection, std::string reason, SharedBuffer last_words) {
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection.lock);
    begin_leaving_locked(connection, std::move(reason), std::move(last_words));
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
}
// [leaving]

// [close]
// The one place that decides a connection is closing: set the phase, drop
// what was queued, and cancel the outstanding operations (CancelIoEx) — and
// any started after this, by a worker that decided to send before the phase
// changed. Their completions arrive as usual; the phase, not their error
// codes, tells the handlers what is going on.
void ServerCore::begin_close_locked(Connection& connection, std::string reason) {
  if (connection.phase >= Phase::closing) return;
  connection.phase = Phase::closing;
  connection.close_reason = std::move(reason);
  connection.outbound.drop_pending();
  completion_port_->cancel(connection.socket);
}

void ServerCore::close_if_open(Connection& connection, std::string reason) {
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection.lock);
    if (connection.phase == Phase::open) begin_close_locked(connection, std::move(reason));
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
}

void ServerCore::set_answer_owed(Connection& connection, bool owed) {
  AfterUnlock after;
  {
    const CriticalSectionLock lock(connection.lock);
    connection.answer_owed = owed;
    if (!owed && connection.peer_done && connection.phase == Phase::open) {
      on_end_of_stream_locked(connection);  // the FIN that waited for the answer
    }
    after = settle_locked(connection);
  }
  settle(connection, std::move(after));
}

bool ServerCore::is_open(Connection& connection) {
  const CriticalSectionLock lock(connection.lock);
  return connection.phase == Phase::open;
}

std::string ServerCore::reason_of(Connection& connection) {
  const CriticalSectionLock lock(connection.lock);
  return connection.close_reason;
}
// [close]

// [settle]
// After every decision, still under the lock: a client that started leaving
// or closing departs (once, at once: ver.2's room hears it now, not when its
// socket is done); the senders that waited for room in its queue go on when
// it has room again or is leaving; and it is freed exactly once — when it is
// closing and its last operation has completed.
ServerCore::AfterUnlock ServerCore::settle_locked(Connection& connection) {
  AfterUnlock after;
  const bool leaving = connection.phase != Phase::open;
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
  if (connection.phase == Phase::closing && connection.outstanding == 0) {
    connection.phase = Phase::finished;
    after.finish = true;
  }
  return after;
}

// The same, once the lock is released.
void ServerCore::settle(Connection& connection, AfterUnlock after) {
  if (after.departing) on_depart(*after.departing);
  for (const auto& sender : after.resume) receive_again(*sender);
  if (after.finish) finish(connection);
}
// [settle]

// [sweep]
// The server's clock: re-posts parked accepts, closes leaving clients that
// did not finish within leave_time, drops clients whose queues stayed
// congested for stall_limit with no send completing (stuck: a client that
// reads at all completes a send long before), and lets queues idle since
// the last sweep give their buffers back. All stuck clients go in one
// pass, so that ten stuck clients cost a sender one stall_limit, not ten.
// Then the stage's own checks (ver.2: the login timeout). One worker at a
// time, at most every kSweepInterval.
void ServerCore::sweep() {
  const auto now = std::chrono::steady_clock::now();
  auto due = next_sweep_.load();
  if (now.time_since_epoch().count() < due) return;
  if (!next_sweep_.compare_exchange_strong(due, (now + kSweepInterval).time_since_epoch().count())) return;

  repost_parked_accepts(now);
  for (const auto& connection : connections()) {
    AfterUnlock after;
    {
      const CriticalSectionLock lock(connection->lock);
      if (connection->phase == Phase::leaving && now > connection->leave_by) {
        begin_close_locked(*connection, connection->close_reason + " (did not leave in time)");
      } else if (connection->congested_since && now - *connection->congested_since > config_.stall_limit) {
        drop_slow_consumer_locked(*connection, "slow consumer: congested for more than " +
                                                   std::to_string(config_.stall_limit.count()) + " ms (" +
                                                   std::to_string(connection->outbound.size()) +
                                                   " bytes waiting, limit " +
                                                   std::to_string(config_.max_queue_bytes) + ")");
      }
      connection->outbound.release_if_idle();  // idle since the last sweep: no buffers held
      after = settle_locked(*connection);
    }
    settle(*connection, std::move(after));
    on_sweep(*connection, now);
  }
}
// [sweep]

// [post]
// PostQueuedCompletionStatus for the stage: an event that is not a socket's
// (ver.3: a message from the other nodes) handed to whichever worker is free,
// so the stage's rules keep running on the workers only.
void ServerCore::post(std::size_t value) { completion_port_->post(kStageEventKey, value); }
// [post]

std::vector<std::shared_ptr<Connection>> ServerCore::connections() {
  const CriticalSectionLock lock(clients_lock_);
  return {clients_.begin(), clients_.end()};
}

// [finish]
// Leaves the list (the stage heard it leave earlier, in on_depart), closes
// the socket, logs. Called once per connection, with no operation of it outstanding.
void ServerCore::finish(Connection& connection) {
  std::shared_ptr<Connection> keep;  // the list's reference, released at the end of this function
  {
    const CriticalSectionLock lock(clients_lock_);
    keep = *connection.place;
    clients_.erase(connection.place);
  }
  const std::string reason = reason_of(connection);
  completion_port_->close(connection.socket);
  if (connection.counted) {
    const std::int64_t count = client_count_.decrement();
    log_line("client " + connection.name + " disconnected: " + reason + " (" + clients_text(count) + ")");
  }
  connections_.decrement();
  notify_drained();
}
// [finish]

void ServerCore::notify_drained() {
  { const std::lock_guard lock(drained_mutex_); }
  drained_.notify_all();
}

// [stop]
void ServerCore::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  // (Also reached from a start() that failed half way: the listener may be
  // open with accepts pending, and some workers running.)

  // 1. Stop accepting: no accept is re-posted, the pending ones are cancelled.
  {
    const CriticalSectionLock lock(accepting_lock_);
    accepting_ = false;
    completion_port_->cancel(listener_);
  }
  // 2. Close every client.
  close_every_client();
  // 3. Drain: the workers handle the cancelled operations' completions until
  //    no connection and no accept is left.
  {
    std::unique_lock lock(drained_mutex_);
    drained_.wait(lock, [this] { return connections_.value() == 0 && accepts_alive_.value() == 0; });
  }
  // 4. One quit completion per worker, then join them.
  for (std::size_t i = 0; i < workers_.size(); ++i) completion_port_->post(kQuitKey);
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  completion_port_->close(listener_);
  log_line("server stopped");
}

// No one joins from now on (admit checks stopping_), and everyone on the
// list is cancelled; their completions come back to the workers as usual.
void ServerCore::close_every_client() {
  {
    const CriticalSectionLock lock(clients_lock_);
    stopping_ = true;
  }
  for (const auto& connection : connections()) {
    AfterUnlock after;
    {
      const CriticalSectionLock lock(connection->lock);
      begin_close_locked(*connection, "server shutting down");  // leaving ones too
      after = settle_locked(*connection);
    }
    settle(*connection, std::move(after));
  }
}
// [stop]

}  // namespace iocp_chat
