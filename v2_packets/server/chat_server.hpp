// chat_server.hpp — ver.2's chat server: ver.1's server core plus packets and
// sessions. Each client's bytes go through a FrameAssembler; each frame goes
// to the ChatRoom (the session rules); the frames the room answers with are
// queued exactly as ver.1 queued raw chunks.
//
// What ver.2 adds to ver.1 (compare the two files; the diff is the lesson):
//   * a FrameAssembler per connection, so TCP can no longer merge or split
//     messages;
//   * a ChatRoom: logins, unique ids, USER_JOINED / USER_LEFT, CHAT_BROADCAST
//     to logged-in clients only, ERROR then close on bad input;
//   * SLOW_CONSUMER and SERVER_FULL are told to the client (best effort)
//     before it is closed — but it leaves the room at once: the others hear
//     USER_LEFT, and its id is free, the moment the server drops it.
//
// IOCP ideas shown (as in ver.1), in the order a completion meets them:
//   * a listening socket with several accepts pre-posted (AcceptEx), so a
//     burst of clients never finds nobody accepting — and a spare descriptor,
//     so that an accept failing for want of descriptors (EMFILE) neither
//     spins nor strands the waiting client: it is accepted and closed;
//   * worker threads — 2 × hardware threads by default, as in the original —
//     each looping on the port's wait (GetQueuedCompletionStatus) and
//     dispatching to the accept / receive / send handlers;
//   * the completion key is the connection's address (a ULONG_PTR, not the
//     original's 32-bit DWORD), and the operation inside the completion tells
//     which of the connection's operations finished;
//   * the client list, as in the original, is an STL list under a
//     CriticalSection, and the client count an InterlockedCounter — but a
//     broadcast only copies the list under the lock and never sends while
//     holding it;
//   * each client has a bounded outbound queue and at most one send in
//     flight; what piles up meanwhile leaves gathered in the next send;
//   * back-pressure instead of blocking: a sender whose messages find a
//     client's queue congested does not get its next receive until that
//     queue has room again, so one flooder is slowed to its readers' pace;
//     a client that keeps its senders waiting longer than --stall-limit is
//     stuck and is dropped, as is one whose queue overflows, and the biggest
//     queues when all of them together pass --max-total-queue-bytes;
//   * a worker takes completions in batches (GetQueuedCompletionStatusEx)
//     and starts the sends its batch made necessary at the end of it: one
//     gathered send per client per batch, not one per message;
//   * a connection is freed only after its last pending operation completed,
//     and "closing" is a flag set by the server, never guessed from an error.
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
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "chat_room.hpp"
#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/outbound_queue.hpp"
#include "iocp_chat/socket.hpp"
#include "iocp_chat/spare_descriptor.hpp"
#include "iocp_chat/sync.hpp"
#include "packets.hpp"

namespace iocp_chat::v2 {

// [config]
/// Everything the command line can change.
struct ServerConfig {
  std::string bind_address = "127.0.0.1";  ///< Loopback only unless asked (like Redis's protected mode).
  std::uint16_t port = 42006;              ///< The original program's port; 0 picks a free one.
  Backend backend = Backend::automatic;    ///< --backend.
  unsigned threads = 0;                    ///< Worker threads; 0 = 2 × hardware threads.
  std::size_t max_clients = 10000;         ///< Past this, a new connection is closed at once.
  std::size_t max_queue_bytes = 8 << 20;   ///< Per-client outbound bound (docs/protocol.md: at most 8 MiB).
  /// Bytes queued for all clients together; past it the largest queues are dropped.
  std::size_t max_total_queue_bytes = default_total_queue_bytes();
  /// How long a client's queue may stay congested with no send completing before it is dropped as stuck.
  std::chrono::milliseconds stall_limit{2000};
  unsigned pre_posted_accepts = 16;  ///< Accepts kept waiting on the listener.
  /// How long a leaving client's socket may take to read its last frames
  /// (it has already left the room: this only bounds the cleanup).
  std::chrono::milliseconds leave_time{2000};
  /// A connection that is not logged in this long after it connected, or after
  /// the last LOGIN_REQUEST the server answered, is closed (no ERROR: the
  /// protocol has no code for it); 0 = never. 30 s by default: long enough
  /// for a person in the WinAPI client's login dialog to retype an id after
  /// ID_TAKEN (the dialog keeps its connection open meanwhile), short enough
  /// that idle connections cannot pile up and hold descriptors for ever.
  std::chrono::milliseconds login_timeout{30000};
};
// [config]

// [connection]
/// One connected client: its socket, its two operations, its outbound queue.
struct Connection : std::enable_shared_from_this<Connection> {
  /// Takes the accepted socket; its queue counts in the server's `total`.
  Connection(Socket accepted, OutboundTotal& total) : socket(std::move(accepted)), outbound(&total) {}

  Socket socket;             ///< The client's socket; closed only after the last completion.
  std::string name;          ///< "127.0.0.1:50000", for log lines.
  ReceiveOperation receive;  ///< The one receive kept outstanding (WSARecv's OVERLAPPED + buffer).
  SendOperation send;        ///< The send in flight (WSASend's OVERLAPPED + gathered buffers).
  FrameAssembler assembler;  ///< Turns the byte stream into frames; used only by the receive's handler.
  bool admitted = false;     ///< Counted as a client (false for one refused with SERVER_FULL).

  CriticalSection lock;                     ///< Guards everything below; held only to decide, never to wait.
  OutboundQueue outbound GUARDED_BY(lock);  ///< Frames waiting for the next send, and the one in flight.
  int outstanding GUARDED_BY(lock) = 0;     ///< Operations started and not yet completed.
  bool sending GUARDED_BY(lock) = false;    ///< A send is in flight (at most one).
  bool send_scheduled GUARDED_BY(lock) = false;    ///< A worker starts its send at the end of its batch.
  bool flush_then_close GUARDED_BY(lock) = false;  ///< Leaving: queue nothing new, flush, close.
  bool peer_done GUARDED_BY(lock) = false;         ///< The client's stream ended (0-byte receive).
  std::chrono::steady_clock::time_point leave_by GUARDED_BY(lock);  ///< A leaving client is closed by then.
  bool closing GUARDED_BY(lock) = false;      ///< The server decided to close: start nothing new.
  bool departed GUARDED_BY(lock) = false;     ///< Has left the room (exactly once, as soon as it leaves).
  bool finished GUARDED_BY(lock) = false;     ///< Freed from the list (exactly once).
  std::string close_reason GUARDED_BY(lock);  ///< Why, for the disconnect log line.
  /// Senders whose next receive waits until this client's queue has room again.
  std::vector<std::shared_ptr<Connection>> waiting_senders GUARDED_BY(lock);
  /// Since when its queue has been congested without progress: set when it
  /// reaches a quarter of the bound, restarted by each completed send,
  /// emptied once it is back under an eighth. Empty if it is not congested.
  std::optional<std::chrono::steady_clock::time_point> congested_since GUARDED_BY(lock);
  std::list<std::shared_ptr<Connection>>::iterator place;  ///< Its node in the client list.
  /// When the login timer last started: at the accept, and again after each
  /// answered LOGIN_REQUEST (checked by the sweep, only until logged in).
  std::chrono::steady_clock::time_point login_timer GUARDED_BY(lock) = std::chrono::steady_clock::now();
  std::size_t logins_answered GUARDED_BY(lock) = 0;  ///< LOGIN_REQUESTs answered when the sweep last looked.
  bool logged_in GUARDED_BY(lock) = false;           ///< Seen logged in by the sweep: no timer any more.
};
// [connection]

/// The ver.2 server. start() returns once it is listening; stop() (or the
/// destructor) shuts it down in order and returns when everything is freed.
class ChatServer {
 public:
  /// Prepares; no socket is opened until start().
  explicit ChatServer(ServerConfig config);
  /// Calls stop().
  ~ChatServer();
  ChatServer(const ChatServer&) = delete;
  ChatServer& operator=(const ChatServer&) = delete;

  /// Opens the port and the listener, pre-posts the accepts, starts the
  /// workers. Throws std::system_error (with the OS's message) on failure.
  void start();

  /// Shutdown in a fixed order: stop accepting, close every client, drain the
  /// port until no operation is outstanding, one quit completion per worker,
  /// join them. Idempotent.
  void stop();

  /// The port actually listened on (useful with port 0).
  std::uint16_t port() const noexcept { return port_; }
  /// The backend in use.
  Backend backend() const noexcept { return port_object_ ? port_object_->backend() : Backend::automatic; }
  /// Clients connected right now.
  std::int64_t client_count() const noexcept { return client_count_.value(); }
  /// How many times a sender's next receive has waited for room in a congested client's queue.
  std::int64_t senders_paused() const noexcept { return senders_paused_.value(); }

 private:
  /// What a handler does once it has let go of a connection's lock: the
  /// decisions are taken under the lock, the work on other objects after it.
  struct AfterUnlock {
    /// It started leaving: out of the room now. A reference, taken under the
    /// lock, because once the lock is released another worker may finish it.
    std::shared_ptr<Connection> departing;
    bool finish = false;                              ///< Its last operation completed: free it.
    std::vector<std::shared_ptr<Connection>> resume;  ///< Senders that waited for room in its queue.
  };

  void run_worker();
  void dispatch(const Completion& completion);
  void on_accept(AcceptOperation& accept, const Completion& completion);
  void on_receive(Connection& connection, const Completion& completion);
  void receive_again(Connection& connection);
  std::shared_ptr<Connection> handle_frames(Connection& connection);
  bool queue_reply(Connection& connection, std::span<const std::byte> frame);
  std::shared_ptr<Connection> apply(Connection& sender,
                                    const ChatRoom<std::shared_ptr<Connection>>::Effects& effects);
  void on_send(Connection& connection, const Completion& completion);
  bool deliver(Connection& connection, std::span<const std::byte> frames);
  bool wait_for_room(Connection& congested, Connection& sender);
  void shed_largest_queues();
  void drop_slow_consumer_locked(Connection& connection, std::string reason) REQUIRES(connection.lock);
  void schedule_send_locked(Connection& connection) REQUIRES(connection.lock);
  void start_scheduled_sends();
  void claim_send_locked(Connection& connection) REQUIRES(connection.lock);
  void start_send_locked(Connection& connection) REQUIRES(connection.lock);
  void begin_close_locked(Connection& connection, std::string reason) REQUIRES(connection.lock);
  AfterUnlock settle_locked(Connection& connection) REQUIRES(connection.lock);
  void settle(Connection& connection, AfterUnlock after);
  void depart(Connection& connection);
  void start_leaving_locked(Connection& connection, std::string reason, SharedBuffer last_words)
      REQUIRES(connection.lock);
  void finish_leaving_locked(Connection& connection) REQUIRES(connection.lock);
  void sweep();
  void finish(Connection& connection);
  bool repost_accept(AcceptOperation& accept);
  void park_accept(AcceptOperation& accept, const std::error_code& error);
  void repost_parked_accepts(std::chrono::steady_clock::time_point now);
  void refuse_for_descriptors(Socket socket);
  void close_if_login_overdue(Connection& connection, std::chrono::steady_clock::time_point now);
  void admit(Socket socket);
  void notify_drained();

  ServerConfig config_;                                    ///< As given.
  std::unique_ptr<CompletionPort> port_object_;            ///< The completion port.
  Socket listener_;                                        ///< The listening socket.
  std::uint16_t port_ = 0;                                 ///< Its port.
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
  ChatRoom<std::shared_ptr<Connection>> room_;       ///< Sessions: logins, ids, who hears what.
  bool stopping_ GUARDED_BY(clients_lock_) = false;  ///< stop() has begun: accept no one.
  InterlockedCounter client_count_;    ///< Connected clients (the original's interlocked counter).
  InterlockedCounter connections_;     ///< Every connection still alive, refused ones included.
  InterlockedCounter accepts_alive_;   ///< Accept operations still outstanding.
  InterlockedCounter senders_paused_;  ///< Receives that waited for room (back-pressure at work).
  OutboundTotal queued_total_;         ///< Bytes queued for every client together, and their bound.
  std::atomic<bool> shedding_{false};  ///< One worker at a time drops the largest queues.

  std::atomic<std::chrono::steady_clock::rep> next_sweep_{
      0};  ///< When a worker next looks for overdue leavers.

  std::mutex drained_mutex_;         ///< With drained_, lets stop() wait for the last completion.
  std::condition_variable drained_;  ///< Signalled when a connection or an accept ends.
  bool started_ = false;             ///< start() succeeded (main thread only).
  bool stopped_ = false;             ///< stop() finished (main thread only).
};

}  // namespace iocp_chat::v2
