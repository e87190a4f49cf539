// chat_server.hpp — ver.2's chat server: ver.1's server core plus packets and
// sessions. What ver.2 adds to the shared ServerCore
// (common/include/iocp_chat/server_core.hpp, which ver.1 uses as it is):
//   * a FrameAssembler per connection: TCP can no longer merge or split messages;
//   * a ChatRoom: logins, unique ids, USER_JOINED / USER_LEFT, CHAT_BROADCAST
//     to logged-in clients only, ERROR then close on bad input;
//   * SLOW_CONSUMER and SERVER_FULL told before a drop, while the client
//     leaves the room at once (the others hear USER_LEFT, its id is free);
//   * a login timeout, checked by the core's sweep.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>

#include "common/protocol/chat_room.hpp"
#include "common/protocol/packets.hpp"
#include "iocp_chat/server_core.hpp"

namespace iocp_chat::v2 {

// [config]
/// Everything the command line can change: the shared server's options plus the login timeout.
struct ServerConfig : ServerCoreConfig {
  /// A connection not logged in this long after it connected, or after the
  /// last LOGIN_REQUEST answered, is closed (no ERROR has a code for it); 0 =
  /// never. 30 s: time to retype an id after ID_TAKEN in the WinAPI client's
  /// login dialog, too short for idle connections to hold descriptors for ever.
  std::chrono::milliseconds login_timeout{30000};
};
// [config]

// [connection]
/// A ver.2 connection: the core's Connection plus its frame assembler and login timer.
struct Session : Connection {
  using Connection::Connection;

  FrameAssembler assembler;  ///< Turns the byte stream into frames; used only by the receive's handler.
  /// When the login timer last started: at the accept, and again at each
  /// answered LOGIN_REQUEST (checked by the sweep, only until logged in).
  std::chrono::steady_clock::time_point login_timer GUARDED_BY(lock) = std::chrono::steady_clock::now();
  bool logged_in GUARDED_BY(lock) = false;  ///< Logged in: no timer any more.
};
// [connection]

/// The ver.2 server. start() returns once it is listening; stop() (or the
/// destructor) shuts it down in order and returns when everything is freed.
class ChatServer : public ServerCore {
 public:
  /// Prepares; no socket is opened until start().
  explicit ChatServer(const ServerConfig& config)
      : ServerCore(config), login_timeout_(config.login_timeout) {}
  /// Stops first: the workers call this class's handlers until then.
  ~ChatServer() override { stop(); }
  ChatServer(const ChatServer&) = delete;
  ChatServer& operator=(const ChatServer&) = delete;

 private:
  using Room = ChatRoom<std::shared_ptr<Connection>>;  ///< Clients are known by their connection.
  struct Answers;  ///< What one receive's frames produced, delivered in order (chat_server.cpp).

  std::shared_ptr<Connection> make_connection(Socket socket, OutboundTotal& total) override;
  std::shared_ptr<Connection> on_bytes(Connection& from, std::span<const std::byte> bytes) override;
  SharedBuffer farewell(Farewell why) override;
  void on_depart(Connection& connection) override;
  void on_sweep(Connection& connection, std::chrono::steady_clock::time_point now) override;
  void deliver_run(Answers& answers);
  void answer(Session& session, const Room::Effects& effects, Answers& answers);
  std::shared_ptr<Connection> apply(Connection& sender, const Room::Effects& effects);
  void login_answered(Session& session);

  Room room_;                                      ///< Sessions: logins, ids, who hears what.
  const std::chrono::milliseconds login_timeout_;  ///< ServerConfig::login_timeout.
};

}  // namespace iocp_chat::v2
