// room_view.hpp — what one node knows about the other nodes of its room:
// who is alive, which members each has, and whether their numbered streams
// arrived whole. A class with no I/O and no clock of its own: the backplane
// feeds it every decoded message and a tick every quarter heartbeat, with
// the time, and carries out the actions it returns. So the failure rules
// below are tested by feeding it messages and times, without NATS.
//
// Idea shown: failure detection is a rule about silence, and the rule must
// say whose silence counts.
//
//   * Every node publishes a heartbeat every `heartbeat_interval` (1 s). A
//     peer not heard from (any message counts) for `dead_after` (3 s) is
//     declared dead: the view reports node_down with the members it knew,
//     and asks the backplane to release that node's ids in the key-value
//     bucket (every live node does so; a release is by revision, so doing it
//     twice, or after the node renewed, harms nothing).
//   * A node judges others only while it hears itself: its own heartbeats
//     come back through NATS like everyone's. When it has not heard itself
//     for `deaf_after` (2 s) — NATS is down, or its connection is — it is
//     *deaf*: its peers' silence proves nothing, so it declares no one dead.
//     When it hears itself again, every peer's clock restarts. That is why a
//     restart of nats-server does not make every node declare every other
//     one dead.
//   * A node that may have been declared dead renews its ids (the backplane
//     rewrites each by revision; see id_registry.hpp): when it hears itself
//     again after being deaf, and when a peer tells it so (declared_dead).
//     A peer that hears from a node it declared dead for its silence tells
//     it so on every message (at most once a heartbeat interval), ignores
//     its chat and presence, and takes it back only from a complete roster
//     that arrives after its own release of that node's ids is done — so the
//     roster it accepts was sent after that node's last renewal.
//   * Sequence numbers (room_wire.hpp): a gap means lost messages (logged,
//     counted, and the node's roster asked for, which repairs presence; lost
//     chat lines stay lost: at-most-once); a number seen twice is dropped.
//   * Incarnations are start times (microseconds): a message from an older
//     incarnation than the one known is late and dropped; a newer one means
//     the node restarted, so its old members are reported gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "room_wire.hpp"

namespace iocp_chat::v3 {

/// The failure detector's timing. The bound from a node's death to its
/// node_down is dead_after + a tick (+ delivery): see README "Failure bounds".
struct LivenessSettings {
  std::chrono::milliseconds heartbeat_interval{1000};  ///< How often a node says it is alive.
  std::chrono::milliseconds dead_after{3000};          ///< Silence after which a peer is declared dead.
  std::chrono::milliseconds deaf_after{2000};          ///< Own silence after which this node judges no one.
};

/// Why a node left the room.
enum class NodeDownReason {
  silent,     ///< No message for dead_after: crashed, killed, or cut off.
  goodbye,    ///< It said goodbye (a clean stop).
  restarted,  ///< A newer incarnation of it spoke.
};

/// The printable name of a reason, for logs.
const char* reason_name(NodeDownReason reason) noexcept;

/// Something the listener (the server) must hear about, in this order.
struct ViewEvent {
  /// Which event it is.
  enum class Type {
    node_up,        ///< A node spoke for the first time (or was taken back).
    node_down,      ///< A node is gone; `members` were its logged-in ids.
    member_joined,  ///< `user_id` logged in on `node`.
    member_left,    ///< `user_id` left `node`.
    chat,           ///< `user_id` on `node` said `text`.
  };
  Type type = Type::chat;                          ///< Which event.
  std::string node;                                ///< The node it is about.
  std::string user_id;                             ///< member_joined, member_left, chat.
  std::string text;                                ///< chat.
  std::uint64_t sequence = 0;                      ///< chat: its number in the node's stream.
  NodeDownReason reason = NodeDownReason::silent;  ///< node_down.
  std::vector<std::string> members;                ///< node_down: the ids it had, sorted.

  /// Field by field (for tests).
  bool operator==(const ViewEvent&) const = default;
};

/// What the backplane must do after feeding the view.
struct ViewActions {
  std::vector<ViewEvent> events;           ///< Hand to the listener, in order.
  std::vector<std::string> sync_requests;  ///< Ask these nodes for their roster.
  bool send_roster = false;                ///< Someone asked for this node's roster.
  std::vector<std::pair<std::string, std::uint64_t>>
      tell_declared;  ///< Tell (node, incarnation): declared dead.
  std::vector<std::pair<std::string, std::uint64_t>> release_ids_of;  ///< Release (node, incarnation)'s ids.
  bool renew_own_ids = false;  ///< This node may have been declared dead.
  bool name_clash = false;     ///< Another process speaks under this node's name.
};

/// Counters for logs and tests.
struct ViewCounters {
  std::uint64_t gaps = 0;           ///< Times a node's numbers jumped (messages lost).
  std::uint64_t duplicates = 0;     ///< Messages whose number was seen already (dropped).
  std::uint64_t late = 0;           ///< Messages of an older incarnation (dropped).
  std::uint64_t from_dead = 0;      ///< Messages of a node declared dead (dropped).
  std::uint64_t declared_dead = 0;  ///< Peers this node declared dead for silence.
  std::uint64_t told_declared = 0;  ///< Times a peer told this node it had been declared dead.
  std::uint64_t rejoined = 0;       ///< Peers taken back after having been declared dead.
};

/// One peer as this node sees it.
struct PeerInfo {
  std::string node;                 ///< Its name.
  std::uint64_t incarnation = 0;    ///< The life of it this node knows.
  bool alive = false;               ///< Alive, or declared dead / gone.
  std::set<std::string> members;    ///< Its logged-in ids (alive peers only).
  std::uint64_t last_sequence = 0;  ///< The last number seen from it.
};

/// The room as one node sees it. Not thread-safe: the backplane holds a
/// lock around every call.
class RoomView {
 public:
  /// The clock the times come from.
  using Clock = std::chrono::steady_clock;

  /// The view of node `self` in its incarnation `incarnation`.
  RoomView(std::string self, std::uint64_t incarnation, LivenessSettings settings);

  /// A message arrived (the node's own included) at `now`.
  ViewActions on_message(const RoomMessage& message, Clock::time_point now);

  /// The periodic check (every quarter heartbeat): deafness, then silence.
  ViewActions on_tick(Clock::time_point now);

  /// The connection to NATS was lost: deaf at once, without waiting for deaf_after.
  void on_connection_lost();

  /// The backplane released `node`'s ids of `incarnation` in the bucket: a
  /// complete roster from it may now take it back.
  void on_release_done(const std::string& node, std::uint64_t incarnation);

  /// True while this node does not hear itself (and so judges no one).
  bool deaf() const noexcept { return deaf_; }

  /// Every peer this node has heard of, by name.
  std::vector<PeerInfo> peers() const;

  /// The counters so far.
  const ViewCounters& counters() const noexcept { return counters_; }

 private:
  /// What this node keeps per peer.
  struct Peer {
    std::uint64_t incarnation = 0;    ///< The life of it being followed.
    bool alive = true;                ///< False once declared dead or gone.
    bool dead_by_silence = false;     ///< Declared dead for silence: may come back, must be told.
    bool released = true;             ///< Its ids are released (or needed no release).
    Clock::time_point last_heard{};   ///< When it last said anything.
    Clock::time_point last_told{};    ///< When it was last told it was declared dead.
    Clock::time_point last_sync{};    ///< When its roster was last asked for.
    bool sync_asked = false;          ///< last_sync is meaningful.
    std::uint64_t last_sequence = 0;  ///< The last number seen from it.
    std::set<std::string> members;    ///< Its logged-in ids.
    bool roster_open = false;         ///< A roster's first part arrived, the last not yet.
    std::set<std::string> roster;     ///< The parts of that roster so far.
  };

  void ask_sync(const std::string& node, Peer& peer, Clock::time_point now, ViewActions& actions);
  void apply_room_message(const RoomMessage& message, Peer& peer, ViewActions& actions);
  void handle_from_dead(const RoomMessage& message, Peer& peer, Clock::time_point now, ViewActions& actions);
  static ViewEvent node_down(const std::string& node, NodeDownReason reason, std::set<std::string>& members);

  std::string self_;                     ///< This node's name.
  std::uint64_t incarnation_;            ///< This node's incarnation.
  LivenessSettings settings_;            ///< The timing.
  bool deaf_ = true;                     ///< Until it first hears itself.
  bool heard_self_ = false;              ///< It has heard itself once (before that, no one knew it).
  Clock::time_point self_last_heard_{};  ///< When its own heartbeat last came back.
  std::map<std::string, Peer> peers_;    ///< Every peer heard of, by name.
  ViewCounters counters_;                ///< For logs and tests.
};

}  // namespace iocp_chat::v3
