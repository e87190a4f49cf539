// chat_server.hpp — ver.3's chat server, one node of a cluster: ver.2's
// server plus a backplane. Each client's bytes go through a FrameAssembler;
// each frame goes to the ChatRoom (the session rules); the frames the room
// answers with are queued exactly as ver.1 queued raw chunks — and what the
// room must share with the other nodes goes over NATS (v3_cluster/backplane).
//
// What ver.3 adds to ver.2's server (both use the same ServerCore and
// ChatRoom, from common/):
//   * a login claims its id cluster-wide first (a JetStream compare-and-set,
//     a NATS round trip): the frames the client sends meanwhile wait in its
//     assembler, and the claim's answer comes back as a posted completion;
//     OK, ID_TAKEN, or TRY_LATER when NATS cannot be asked;
//   * each chat line a local client sends is published once (one NATS
//     message per line per node), besides going to the local members;
//   * what the other nodes' clients do — chat, join, leave, a node that dies
//     — arrives on the NATS library's threads, which only queue it and post
//     a completion (PostQueuedCompletionStatus): a worker then delivers it
//     to the local members, in the order NATS delivered it.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "backplane.hpp"
#include "common/protocol/chat_room.hpp"
#include "common/protocol/packets.hpp"
#include "iocp_chat/server_core.hpp"

namespace iocp_chat::v3 {

// A ver.3 node speaks ver.2 to its clients: the packets, the assembler and
// the room are ver.2's (common/protocol/).
using namespace iocp_chat::v2;

// [config]
/// Everything the command line can change: the shared server's options, the login timeout, the backplane.
struct ServerConfig : ServerCoreConfig {
  /// A connection not logged in this long after it connected, or after the
  /// last LOGIN_REQUEST answered, is closed (no ERROR has a code for it); 0 =
  /// never. 30 s: time to retype an id after ID_TAKEN in the WinAPI client's
  /// login dialog, too short for idle connections to hold descriptors for ever.
  std::chrono::milliseconds login_timeout{30000};
  BackplaneSettings backplane;  ///< NATS URLs, this node's name, the room, where the credentials are.
};
// [config]

// [connection]
/// A ver.3 connection: ver.2's session plus the login being claimed across the cluster.
struct Session : Connection {
  using Connection::Connection;

  /// Guards the assembler and `claiming`: the receive's handler and the
  /// worker that takes the claim's answer may both move the frames on.
  std::mutex frames_lock;
  FrameAssembler assembler;  ///< Turns the byte stream into frames.
  bool claiming = false;     ///< A login's id is being claimed: later frames wait in the assembler.
  /// When the login timer last started: at the accept, and again at each
  /// answered LOGIN_REQUEST (checked by the sweep, only until logged in).
  std::chrono::steady_clock::time_point login_timer GUARDED_BY(lock) = std::chrono::steady_clock::now();
  bool logged_in GUARDED_BY(lock) = false;  ///< Logged in: no timer any more.
};
// [connection]

/// The ver.3 server: one node. start() returns once it is listening and has
/// joined the room; stop() (or the destructor) leaves the room, then shuts
/// the server down in order, and returns when everything is freed.
class ChatServer : public ServerCore, private BackplaneListener {
 public:
  /// Prepares; no socket and no NATS connection is opened until start().
  /// Throws BackplaneError if the backplane settings are wrong.
  explicit ChatServer(const ServerConfig& config)
      : ServerCore(config), login_timeout_(config.login_timeout), backplane_(config.backplane, *this) {}
  /// Stops first: the workers and NATS call this class's handlers until then.
  ~ChatServer() override { stop(); }
  ChatServer(const ChatServer&) = delete;
  ChatServer& operator=(const ChatServer&) = delete;

  /// The core's start(), then joins the room (throws BackplaneError if NATS refuses or cannot be reached).
  void start();
  /// Leaves the room (ids released, goodbye), then the core's ordered stop. Idempotent.
  void stop();

 private:
  using Room = ChatRoom<std::shared_ptr<Connection>>;  ///< Clients are known by their connection.
  struct Answers;  ///< What one receive's frames produced, delivered in order (chat_server.cpp).

  std::shared_ptr<Connection> make_connection(Socket socket, OutboundTotal& total) override;
  std::shared_ptr<Connection> on_bytes(Connection& from, std::span<const std::byte> bytes) override;
  std::shared_ptr<Connection> handle_frames(Session& session);
  bool start_claim(Session& session, std::span<const std::byte> frame);
  void on_claimed(Session& session, const std::vector<std::byte>& frame, const ClaimResult& result);
  SharedBuffer farewell(Farewell why) override;
  void on_depart(Connection& connection) override;
  void on_sweep(Connection& connection, std::chrono::steady_clock::time_point now) override;
  void deliver_run(Answers& answers);
  void answer(Session& session, const Room::Effects& effects, Answers& answers);
  std::shared_ptr<Connection> apply(Connection& sender, const Room::Effects& effects);
  void login_answered(Session& session);

  // The backplane's callbacks (NATS's threads): each only queues an event.
  void on_chat(const RemoteChat& chat) override;
  void on_member_joined(const std::string& node, const std::string& user_id) override;
  void on_member_left(const std::string& node, const std::string& user_id) override;
  void on_node_down(const std::string& node, NodeDownReason reason,
                    const std::vector<std::string>& members) override;
  void on_ids_revoked(const std::vector<std::string>& user_ids) override;
  void on_connection_lost() override;
  void on_connection_back(const std::string& url) override;

  void queue_event(std::function<void()> event);
  void on_posted(std::size_t value) override;
  void to_members(const Packet& packet);

  Room room_;                                      ///< Sessions: logins, ids, who hears what.
  const std::chrono::milliseconds login_timeout_;  ///< ServerConfig::login_timeout.
  Backplane backplane_;                            ///< This node's membership in the room.

  std::mutex events_lock_;                    ///< Guards the two below.
  std::deque<std::function<void()>> events_;  ///< Events from the backplane, in arrival order.
  bool events_posted_ = false;                ///< A completion is posted, or a worker is running them.
};

}  // namespace iocp_chat::v3
