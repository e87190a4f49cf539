// backplane.hpp — one room shared by several chat servers over NATS: the part
// of a ver.3 node that talks to the other nodes. The server (ver.2's core)
// calls it to claim and release ids and to publish its clients' chat, and
// hears from it, through BackplaneListener, what the other nodes' clients
// do and which nodes come and go.
//
// Idea shown: the completion-port way to take in events that are not I/O.
// NATS delivers messages on the client library's own threads — one per
// subscription, plus one for connection events — and a worker of the server
// must never block on NATS either. So the boundary is: the listener's
// callbacks only post a completion to the server's port
// (PostQueuedCompletionStatus) and return; the room's rules then run on the
// workers, as they do for sockets. The other way, claims and releases are
// requests to NATS that take a round trip, so they run on the backplane's
// own registry thread and report back through a callback — an operation
// started now and completed later, like an overlapped receive.
//
// What travels (room_wire.hpp): one NATS message per chat line per node, not
// per receiver — each node fans out to its own clients — on
// `iocp-chat.<room>.chat`; presence on `.presence`; heartbeats and the other
// node messages on `.node`. Ids live in a JetStream key-value bucket
// (id_registry.hpp). Failure detection and membership: room_view.hpp.
//
// Threads and callbacks:
//   * every BackplaneListener callback runs on a thread of the NATS library
//     or of the backplane, never on a caller's thread; callbacks never run
//     two at a time, and arrive in the order the backplane decided them
//     (one lock serializes them);
//   * a callback must return quickly and must not call stop() (it would wait
//     for the very thread it runs on); claim, release and publish_chat may
//     be called from anywhere, callbacks included;
//   * ClaimDone runs on the registry thread (or at once on the caller's
//     thread if the backplane is not running or is stopping);
//   * once stop() has returned, no callback runs any more.
//
// Connection: credentials from a file or the environment (credentials.hpp),
// never the command line; TLS when a URL is tls://; the URLs are a failover
// list; the connection reconnects forever, logging every loss and return;
// a peer that was declared dead while cut off learns it and renews or gives
// up its ids (README "A node that was cut off").
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "id_registry.hpp"
#include "iocp_chat/sync.hpp"
#include "nats_handles.hpp"
#include "room_view.hpp"
#include "room_wire.hpp"

namespace iocp_chat::v3 {

/// The backplane could not start (the message says why: no server, refused
/// credentials, bad settings, no bucket).
class BackplaneError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How a node joins the room.
struct BackplaneSettings {
  std::vector<std::string> urls;           ///< nats://host:port or tls://host:port; a failover list.
  std::string node;                        ///< This node's name: 1..32 of [A-Za-z0-9_-], unique in the room.
  std::string room = "lobby";              ///< The room (one per cluster for ver.2's clients).
  std::string credentials_file;            ///< Credentials file; empty: the environment (credentials.hpp).
  std::string tls_ca_file;                 ///< CA certificate(s) for tls://; empty: IOCP_CHAT_NATS_CA_FILE.
  bool randomize_servers = true;           ///< Spread nodes over the URLs (false: try them in order).
  bool ignore_discovered_servers = false;  ///< Use only `urls`, not the servers a NATS cluster announces.
  std::chrono::milliseconds connect_timeout{2000};  ///< Longest wait for one server to answer a connect.
  std::chrono::milliseconds reconnect_wait{250};    ///< Pause before trying the same server again.
  std::chrono::milliseconds ping_interval{1000};    ///< How often the client pings its server...
  int max_pings_out = 2;                            ///< ...and how many unanswered pings mean "lost".
  LivenessSettings liveness;                        ///< Heartbeats and the failure bound.
  RegistrySettings registry;                        ///< The id bucket.
};

/// A chat line from a client of another node.
struct RemoteChat {
  std::string node;            ///< The sender's node.
  std::string user_id;         ///< The sender.
  std::string text;            ///< The line (1..32 bytes).
  std::uint64_t sequence = 0;  ///< Its number in the node's stream (increasing per sender).
};

/// What the server hears from the backplane. See "Threads and callbacks".
class BackplaneListener {
 public:
  virtual ~BackplaneListener() = default;
  /// A client of another node said something: send CHAT_BROADCAST to every local client.
  virtual void on_chat(const RemoteChat& chat) = 0;
  /// `user_id` logged in on `node`: send USER_JOINED to every local client.
  virtual void on_member_joined(const std::string& node, const std::string& user_id) = 0;
  /// `user_id` left `node`: send USER_LEFT to every local client.
  virtual void on_member_left(const std::string& node, const std::string& user_id) = 0;
  /// `node` is gone (`reason`); `members` were its clients: send USER_LEFT for each.
  virtual void on_node_down(const std::string& node, NodeDownReason reason,
                            const std::vector<std::string>& members) = 0;
  /// These ids of this node's clients are no longer theirs (this node was
  /// declared dead and someone else holds them now): drop those clients.
  virtual void on_ids_revoked(const std::vector<std::string>& user_ids) = 0;
  /// A node spoke for the first time, or was taken back after being declared dead.
  virtual void on_node_up(const std::string& node) { (void)node; }
  /// The connection to NATS is lost: answer TRY_LATER to logins until on_connection_back.
  virtual void on_connection_lost() {}
  /// The connection is back (to `url`).
  virtual void on_connection_back(const std::string& url) { (void)url; }
};

/// Counters for logs and tests.
struct BackplaneStats {
  std::uint64_t published = 0;            ///< Messages published.
  std::uint64_t received = 0;             ///< Messages received (own included).
  std::uint64_t malformed = 0;            ///< Payloads that did not decode (dropped).
  std::uint64_t dropped_unconnected = 0;  ///< Room messages not published: no connection (at-most-once).
  std::uint64_t claims = 0;               ///< Claims that succeeded.
  std::uint64_t renewals = 0;             ///< Renewal passes completed.
  std::uint64_t revoked = 0;              ///< Ids given up after a renewal found them taken.
  std::uint64_t released_for_dead = 0;    ///< Dead nodes' ids this node deleted.
  std::uint64_t disconnects = 0;          ///< Times the connection was lost.
  std::uint64_t reconnects = 0;           ///< Times it came back.
  ViewCounters view;                      ///< The failure detector's counters.
};

/// One node's membership in a room. Create, start(), use, stop().
class Backplane {
 public:
  /// Called with a claim's outcome, on the registry thread.
  using ClaimDone = std::function<void(const ClaimResult&)>;

  /// Checks `settings` (throws BackplaneError); connects nothing yet.
  Backplane(BackplaneSettings settings, BackplaneListener& listener);
  /// stop() if still running.
  ~Backplane();
  Backplane(const Backplane&) = delete;
  Backplane& operator=(const Backplane&) = delete;

  /// Connects (the first server that answers; throws BackplaneError if none
  /// does, or if it refuses the credentials), opens the id bucket,
  /// subscribes to the room, releases what a previous life of this node
  /// left in the bucket, asks the others for their rosters, and starts the
  /// heartbeat and registry threads.
  void start();

  /// Leaves cleanly: releases this node's ids, says goodbye (so the others
  /// report its members gone at once), closes. Idempotent.
  void stop();

  /// Closes the connection without releasing or saying goodbye: what a
  /// crash looks like to the others (for tests and demos).
  void close_without_goodbye();

  /// Claims `user_id` (1..16 bytes, no NUL; throws std::invalid_argument
  /// otherwise) for one of this node's clients. On success the others are
  /// told it joined before `done` runs. `unavailable` while NATS cannot be
  /// reached: the server answers TRY_LATER.
  void claim(std::string user_id, ClaimDone done);

  /// claim(), waiting for the outcome (not on a server worker, not in a callback).
  ClaimResult claim_and_wait(std::string user_id);

  /// The client holding `user_id` left: the others are told at once, the
  /// id is released (by its revision) on the registry thread, and retried
  /// until NATS answers.
  void release(const std::string& user_id);

  /// Publishes one chat line of local client `user_id` (one NATS message,
  /// whatever the number of receivers). False if not connected (the line is
  /// lost for the other nodes: at-most-once) or if id or text are invalid.
  bool publish_chat(std::string_view user_id, std::string_view text);

  /// True while connected to a NATS server.
  bool connected() const;
  /// The server connected to, or "" when not connected.
  std::string connected_url() const;
  /// This node's name.
  const std::string& node() const noexcept { return settings_.node; }
  /// This node's incarnation (microseconds since the epoch at start).
  std::uint64_t incarnation() const noexcept { return incarnation_; }
  /// The value of this node's entries in the bucket: `<node> <incarnation>`.
  const std::string& holder() const noexcept { return holder_; }
  /// The ids this node holds now.
  std::vector<std::string> local_ids() const;
  /// The other nodes as this node sees them.
  std::vector<PeerInfo> peers() const;
  /// The counters.
  BackplaneStats stats() const;
  /// The id bucket (for tests and tools; valid between start and stop).
  IdRegistry& registry();

 private:
  // NATS callbacks (static trampolines; closure = this).
  static void on_nats_message(natsConnection*, natsSubscription*, natsMsg* message, void* closure);
  static void on_nats_disconnected(natsConnection*, void* closure);
  static void on_nats_reconnected(natsConnection*, void* closure);
  static void on_nats_closed(natsConnection*, void* closure);
  static void on_nats_error(natsConnection*, natsSubscription*, natsStatus status, void* closure);
  static void on_subscription_complete(void* closure);

  nats::Options make_options();
  void heartbeat_loop();
  void registry_loop();
  bool post_task(std::function<void()> task, std::function<void()> if_abandoned = {});
  void log(std::string_view text) const;
  void log_rate_limited(const std::string& text);
  void apply(ViewActions& actions) REQUIRES(view_lock_);
  bool publish(RoomMessage message) REQUIRES(outgoing_lock_);
  void publish_roster();
  void run_claim(const std::string& user_id, const ClaimDone& done);
  void run_renewal();
  void release_leftovers();
  void release_dead(const std::string& node, std::uint64_t incarnation);
  void retry_pending();
  void shutdown(bool goodbye);
  bool is_connected() const;
  static std::string holder_node(std::string_view holder);

  BackplaneSettings settings_;   ///< As given, checked.
  BackplaneListener& listener_;  ///< The server.
  std::uint64_t incarnation_;    ///< This life of the node.
  std::string holder_;           ///< `<node> <incarnation>`.
  RoomSubjects subjects_;        ///< The room's subjects.

  nats::Connection connection_;           ///< The NATS connection.
  nats::Subscription subscription_;       ///< On subjects_.all.
  std::unique_ptr<IdRegistry> registry_;  ///< The id bucket.

  /// Guards view_, and is held while calling the listener, which is what
  /// serializes the callbacks. Taken before outgoing_lock_, never after.
  mutable CriticalSection view_lock_;
  RoomView view_ GUARDED_BY(view_lock_);  ///< The other nodes.

  /// Guards this node's numbered stream: a number is taken and its message
  /// published under one lock, so the wire order is the number order, and
  /// the roster and joined/left can never cross.
  mutable CriticalSection outgoing_lock_;
  std::uint64_t sequence_ GUARDED_BY(outgoing_lock_) = 0;                 ///< The last number used.
  std::map<std::string, std::uint64_t> held_ GUARDED_BY(outgoing_lock_);  ///< Local ids -> revisions.

  mutable CriticalSection stats_lock_;            ///< Guards stats_.
  BackplaneStats stats_ GUARDED_BY(stats_lock_);  ///< Counters (view counters copied in stats()).

  std::mutex tasks_mutex_;                              ///< Guards the registry thread's work.
  std::condition_variable tasks_changed_;               ///< Wakes the registry thread.
  std::condition_variable heartbeat_wake_;              ///< Wakes the heartbeat thread (to stop).
  std::deque<std::function<void()>> tasks_;             ///< Claims, releases, dead nodes' releases, in order.
  std::deque<std::function<void()>> abandoned_claims_;  ///< Per task: what to call if it never runs.
  std::map<std::string, std::uint64_t> pending_releases_;  ///< Own ids whose delete failed: retried.
  std::vector<std::pair<std::string, std::uint64_t>> pending_dead_;  ///< Dead nodes whose ids to release.
  std::set<std::string> orphan_checks_;  ///< Ids whose claim went unanswered: check the bucket.
  bool renew_wanted_ = false;            ///< A renewal pass is due now.
  bool renew_failed_ = false;            ///< A renewal pass failed: retry on the next round.
  bool leftovers_pending_ = false;       ///< The start-up clean-up is still to do.
  bool stopping_ = false;                ///< The threads must end.

  std::mutex closed_mutex_;                 ///< Guards closed_ and subscription_done_.
  std::condition_variable closed_changed_;  ///< Signals them.
  bool closed_ = false;                     ///< The connection's closed callback ran (its last).
  bool subscription_done_ = false;          ///< The subscription's handler will not run again.

  std::mutex error_log_mutex_;                              ///< Guards last_error_log_.
  std::chrono::steady_clock::time_point last_error_log_{};  ///< Rate-limits asynchronous error lines.

  std::thread heartbeat_thread_;      ///< Heartbeats and the failure detector's ticks.
  std::thread registry_thread_;       ///< Every request to the id bucket.
  std::atomic<bool> started_{false};  ///< start() succeeded and stop() has not run.
  std::atomic<bool> closing_{false};  ///< stop() began: connection callbacks stay quiet.
};

}  // namespace iocp_chat::v3
