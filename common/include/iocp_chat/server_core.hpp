// server_core.hpp — what every stage's chat server shares: the accepts on the
// listener, the worker threads on the completion port, one connection's
// life (a small state machine), the send path with one write in flight, the
// back-pressure and the bounds, the sweep, and the orderly stop. A stage
// derives from ServerCore and says only what it does with the bytes a client
// sent (ver.1: broadcast them; ver.2: frames, a room, sessions).
//
// IOCP ideas shown, in the order a completion meets them:
//   * a listening socket with several accepts pre-posted (AcceptEx), so a
//     burst of clients never finds nobody accepting — and a spare descriptor,
//     so that an accept failing for want of descriptors (EMFILE) neither
//     spins nor strands the waiting client: it is accepted and closed;
//   * worker threads — 2 × hardware threads by default, as in the original —
//     each taking completions in batches (GetQueuedCompletionStatusEx) and
//     dispatching them to the accept / receive / send handlers;
//   * the completion key is the connection's address (a ULONG_PTR, not the
//     original's 32-bit DWORD), and the operation inside the completion tells
//     which of the connection's operations finished;
//   * the client list, as in the original, is an STL list under a
//     CriticalSection, and the client count an InterlockedCounter — but a
//     broadcast only copies the list under the lock and never sends while
//     holding it;
//   * each client has a bounded outbound queue and at most one send in
//     flight; what piles up meanwhile leaves together in the next send, one
//     per client at the end of a worker's batch;
//   * back-pressure instead of blocking: a sender whose bytes find a
//     client's queue congested does not get its next receive until that
//     queue has room again; a client that keeps its senders waiting longer
//     than stall_limit is stuck and is dropped, as is one whose queue
//     overflows, and the biggest queues when all of them together pass
//     max_total_queue_bytes;
//   * a connection is freed only after its last pending operation completed,
//     and its phase (open → leaving → closing → finished) is set by the
//     server, never guessed from an error code.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/outbound_queue.hpp"
#include "iocp_chat/shared_buffer.hpp"
#include "iocp_chat/socket.hpp"
#include "iocp_chat/spare_descriptor.hpp"
#include "iocp_chat/sync.hpp"

namespace iocp_chat {

// [config]
/// Everything the command line can change that every stage has.
struct ServerCoreConfig {
  std::string bind_address = "127.0.0.1";  ///< Loopback only unless asked (like Redis's protected mode).
  std::uint16_t port = 42006;              ///< The original program's port; 0 picks a free one.
  Backend backend = Backend::automatic;    ///< --backend.
  unsigned threads = 0;                    ///< Worker threads; 0 = 2 × hardware threads.
  std::size_t max_clients = 10000;         ///< Past this, a new connection is refused at once.
  std::size_t max_queue_bytes = 8 << 20;   ///< Per-client outbound bound (docs/protocol.md: at most 8 MiB).
  /// Bytes queued for all clients together; past it the largest queues are dropped.
  std::size_t max_total_queue_bytes = default_total_queue_bytes();
  /// How long a client's queue may stay congested with no send completing before it is dropped as stuck.
  std::chrono::milliseconds stall_limit{2000};
  unsigned pre_posted_accepts = 16;  ///< Accepts kept waiting on the listener.
  /// How long a leaving client may take to read its last bytes before it is closed anyway.
  std::chrono::milliseconds leave_time{2000};
};
// [config]

// [connection]
/// Where a connection is in its life. Only ever moves forward.
enum class Phase {
  open,     ///< Receiving and sending.
  leaving,  ///< Queue nothing new; flush what is queued, then close (the graceful way out).
  closing,  ///< Cancelled: start nothing new; freed once its last operation completes.
  finished  ///< Freed from the list (exactly once).
};

/// One connected client: its socket, its two operations, its outbound queue.
struct Connection : std::enable_shared_from_this<Connection> {
  /// Takes the accepted socket; its queue counts in the server's `total`.
  Connection(Socket accepted, OutboundTotal& total) : socket(std::move(accepted)), outbound(&total) {}
  /// A stage may keep more per connection in a derived type.
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Socket socket;             ///< The client's socket; closed only after the last completion.
  std::string name;          ///< "127.0.0.1:50000", for log lines.
  ReceiveOperation receive;  ///< The one receive kept outstanding (WSARecv's OVERLAPPED + buffer).
  SendOperation send;        ///< The send in flight (WSASend's OVERLAPPED + the bytes it holds).
  bool counted = false;      ///< Counted as a client (false for one refused with a farewell).

  CriticalSection lock;  ///< Guards everything below; held only to decide, never to wait.
  Phase phase GUARDED_BY(lock) = Phase::open;    ///< The state machine; see begin_leaving / begin_close.
  OutboundQueue outbound GUARDED_BY(lock);       ///< Bytes waiting for the next send, and the ones in flight.
  int outstanding GUARDED_BY(lock) = 0;          ///< Operations started and not yet completed.
  bool send_in_flight GUARDED_BY(lock) = false;  ///< A send is in flight (at most one).
  bool send_scheduled GUARDED_BY(lock) = false;  ///< A worker starts its send at the end of its batch.
  bool peer_done GUARDED_BY(lock) = false;       ///< The client's stream ended (0-byte receive).
  bool answer_owed GUARDED_BY(lock) =
      false;  ///< The stage owes an answer (ver.3: a login being claimed); a FIN waits for it.
  bool departed GUARDED_BY(lock) = false;  ///< The stage heard it leave (exactly once, at once).
  std::chrono::steady_clock::time_point leave_by GUARDED_BY(lock);  ///< A leaving client is closed by then.
  std::string close_reason GUARDED_BY(lock);                        ///< Why, for the disconnect log line.
  /// Senders whose next receive waits until this client's queue has room again.
  std::vector<std::shared_ptr<Connection>> waiting_senders GUARDED_BY(lock);
  /// Since when its queue has been congested without progress: set when it
  /// reaches a quarter of the bound, restarted by each completed send,
  /// emptied once it is back under an eighth. Empty if it is not congested.
  std::optional<std::chrono::steady_clock::time_point> congested_since GUARDED_BY(lock);
  std::list<std::shared_ptr<Connection>>::iterator place;  ///< Its node in the client list.
};
// [connection]

/// The shared server. start() returns once it is listening; stop() shuts it
/// down in order and returns when everything is freed. A derived server's
/// destructor must call stop() itself: the workers call its hooks until then.
class ServerCore {
 public:
  /// Prepares; no socket is opened until start().
  explicit ServerCore(ServerCoreConfig config);
  /// Calls stop() (a no-op if the derived destructor already did).
  virtual ~ServerCore();
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  /// Opens the port and the listener, starts the workers, pre-posts the
  /// accepts. Throws std::system_error (with the OS's message) on failure.
  void start();

  /// Shutdown in a fixed order: stop accepting, close every client, drain the
  /// port until no operation is outstanding, one quit completion per worker,
  /// join them. Idempotent.
  void stop();

  /// The TCP port actually listened on (useful with port 0).
  std::uint16_t port() const noexcept { return tcp_port_; }
  /// The backend in use.
  Backend backend() const noexcept {
    return completion_port_ ? completion_port_->backend() : Backend::automatic;
  }
  /// Clients connected right now.
  std::int64_t client_count() const noexcept { return client_count_.value(); }
  /// How many times a sender's next receive has waited for room in a congested client's queue.
  std::int64_t senders_paused() const noexcept { return senders_paused_.value(); }

 protected:
  /// What a stage may say to a client it drops (ver.2 sends an ERROR frame).
  enum class Farewell { server_full, slow_consumer };

  // --- the stage's part -------------------------------------------------------
  /// Bytes arrived from `from` (an open connection). Returns a recipient whose
  /// queue is now congested, if any: then `from`'s next receive waits for room.
  virtual std::shared_ptr<Connection> on_bytes(Connection& from, std::span<const std::byte> bytes) = 0;
  /// A new connection object; a stage may return a type derived from Connection.
  virtual std::shared_ptr<Connection> make_connection(Socket socket, OutboundTotal& total);
  /// The last bytes for a client dropped for `why`, or null to close it at once.
  virtual SharedBuffer farewell(Farewell why);
  /// `connection` started leaving or closing: called once, at once, outside its lock.
  virtual void on_depart(Connection& connection);
  /// Called by the sweep for each connection, outside its lock.
  virtual void on_sweep(Connection& connection, std::chrono::steady_clock::time_point now);
  /// A completion the stage posted with post(`value`) reached this worker.
  virtual void on_posted(std::size_t value);

  // --- what the stage may use -------------------------------------------------
  /// Queues bytes for one client; its send starts at the end of the worker's
  /// batch. Never waits. True when its queue is now congested.
  bool deliver(Connection& connection, std::span<const std::byte> bytes);
  /// Only appends (no departure, no freeing): for a caller that holds
  /// another lock, like ver.2's room. False if the client is leaving.
  bool append_only(Connection& connection, std::span<const std::byte> bytes);
  /// The graceful way out, if it is open: nothing new is queued, `last_words`
  /// (if any) go after what is queued, then FIN, then close.
  void leave(Connection& connection, std::string reason, SharedBuffer last_words);
  /// The abrupt way out, if it is still open: cancel everything now.
  void close_if_open(Connection& connection, std::string reason);
  /// Marks whether the stage still owes this client an answer that comes
  /// later (ver.3: a login claimed over NATS). While it does, the client's
  /// FIN does not start its leaving; once it does not, a FIN that came
  /// meanwhile does — the answer is queued first, as ver.2 would have it.
  void set_answer_owed(Connection& connection, bool owed);
  /// True while the connection is open (not leaving, not closing).
  bool is_open(Connection& connection);
  /// Why it is leaving or closing (empty while open).
  std::string reason_of(Connection& connection);
  /// PostQueuedCompletionStatus: one worker will call on_posted(`value`). For
  /// events that are not I/O (ver.3's messages from other nodes); only
  /// between start() and stop().
  void post(std::size_t value);
  /// Every connection at this moment (a copy of the list, taken under its lock).
  std::vector<std::shared_ptr<Connection>> connections();
  /// The configuration given.
  const ServerCoreConfig& core_config() const noexcept { return config_; }

 private:
  /// What a handler does once it has let go of a connection's lock: the
  /// decisions are taken under the lock, the work on other objects after it.
  struct AfterUnlock {
    /// It started leaving: the stage hears it now. A reference, taken under
    /// the lock, because once the lock is released another worker may finish it.
    std::shared_ptr<Connection> departing;
    bool finish = false;                              ///< Its last operation completed: free it.
    std::vector<std::shared_ptr<Connection>> resume;  ///< Senders that waited for room in its queue.
  };

  void run_worker();
  void dispatch(const Completion& completion);
  void on_accept(AcceptOperation& accept, const Completion& completion);
  /// What the receive handler does after a receive's completion.
  enum class AfterReceive {
    hand_over,      ///< Give the bytes to the stage, then receive again (or wait for room).
    receive_again,  ///< Nothing to hand over (a leaving client's bytes): receive again.
    stop_receiving  ///< The receive is over for good: closing, or the client's FIN came.
  };

  void admit(Socket socket);
  bool enlist(const std::shared_ptr<Connection>& connection, SharedBuffer& full_notice);
  void on_receive(Connection& connection, const Completion& completion);
  AfterReceive receive_completed(Connection& connection, const Completion& completion);
  bool hand_over(Connection& connection, std::span<const std::byte> bytes);
  void on_end_of_stream_locked(Connection& connection) REQUIRES(connection.lock);
  void receive_again(Connection& connection);
  void on_send(Connection& connection, const Completion& completion);
  bool wait_for_room(Connection& congested, Connection& sender);
  void begin_leaving_locked(Connection& connection, std::string reason, SharedBuffer last_words)
      REQUIRES(connection.lock);
  void begin_close_locked(Connection& connection, std::string reason) REQUIRES(connection.lock);
  void drop_slow_consumer_locked(Connection& connection, std::string reason) REQUIRES(connection.lock);
  void shed_largest_queues();
  void schedule_send_locked(Connection& connection) REQUIRES(connection.lock);
  void start_scheduled_sends();
  void claim_send_locked(Connection& connection) REQUIRES(connection.lock);
  void start_send_locked(Connection& connection) REQUIRES(connection.lock);
  void finish_leaving_locked(Connection& connection) REQUIRES(connection.lock);
  AfterUnlock settle_locked(Connection& connection) REQUIRES(connection.lock);
  void settle(Connection& connection, AfterUnlock after);
  void sweep();
  void finish(Connection& connection);
  void close_every_client();
  bool repost_accept(AcceptOperation& accept);
  void park_accept(AcceptOperation& accept, const std::error_code& error);
  void repost_parked_accepts(std::chrono::steady_clock::time_point now);
  void refuse_for_descriptors(Socket socket);
  void notify_drained();

  ServerCoreConfig config_;                                ///< As given.
  std::unique_ptr<CompletionPort> completion_port_;        ///< The completion port.
  Socket listener_;                                        ///< The listening socket.
  std::uint16_t tcp_port_ = 0;                             ///< Its TCP port.
  std::vector<std::unique_ptr<AcceptOperation>> accepts_;  ///< The pre-posted accepts.
  std::vector<std::thread> workers_;                       ///< Threads looping on the port.

  CriticalSection accepting_lock_;  ///< Orders re-posting an accept against stop()'s cancel.
  bool accepting_ GUARDED_BY(accepting_lock_) = false;  ///< Accepts may be (re-)posted.
  /// Accepts that failed and wait for the sweep to re-post them (a pause, not a worker asleep).
  std::vector<std::pair<AcceptOperation*, std::chrono::steady_clock::time_point>> parked_accepts_
      GUARDED_BY(accepting_lock_);
  SpareDescriptor spare_;  ///< Given up when out of descriptors, to accept and close a waiting connection.

  CriticalSection clients_lock_;  ///< Guards the client list (the original's critical section).
  std::list<std::shared_ptr<Connection>> clients_ GUARDED_BY(clients_lock_);  ///< Every live connection.
  bool stopping_ GUARDED_BY(clients_lock_) = false;  ///< stop() has begun: accept no one.
  InterlockedCounter client_count_;    ///< Connected clients (the original's interlocked counter).
  InterlockedCounter connections_;     ///< Every connection still alive, refused ones included.
  InterlockedCounter accepts_alive_;   ///< Accept operations still outstanding.
  InterlockedCounter senders_paused_;  ///< Receives that waited for room (back-pressure at work).
  OutboundTotal queued_total_;         ///< Bytes queued for every client together, and their bound.
  std::atomic<bool> shedding_{false};  ///< One worker at a time drops the largest queues.

  std::atomic<std::chrono::steady_clock::rep> next_sweep_{0};  ///< When a worker next runs sweep().

  std::mutex drained_mutex_;         ///< With drained_, lets stop() wait for the last completion.
  std::condition_variable drained_;  ///< Signalled when a connection or an accept ends.
  bool started_ = false;             ///< start() got as far as the workers (main thread only).
  bool stopped_ = false;             ///< stop() finished (main thread only).
};

}  // namespace iocp_chat
