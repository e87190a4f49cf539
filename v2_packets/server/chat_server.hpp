// chat_server.hpp — ver.2's chat server: ver.1's server core plus packets and
// sessions. Each client's bytes go through a FrameAssembler; each frame goes
// to the ChatRoom (the session rules); the frames the room answers with are
// queued exactly as ver.1 queued raw chunks.
//
// What ver.2 adds to the shared ServerCore (common/include/iocp_chat/
// server_core.hpp, which ver.1 uses as it is):
//   * a FrameAssembler per connection, so TCP can no longer merge or split
//     messages;
//   * a ChatRoom: logins, unique ids, USER_JOINED / USER_LEFT, CHAT_BROADCAST
//     to logged-in clients only, ERROR then close on bad input;
//   * SLOW_CONSUMER and SERVER_FULL are told to the client (best effort)
//     before it is closed — but it leaves the room at once: the others hear
//     USER_LEFT, and its id is free, the moment the server drops it;
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
/// A ver.2 connection: the core's Connection plus its frame assembler and login timer.
struct Session : Connection {
  using Connection::Connection;

  FrameAssembler assembler;  ///< Turns the byte stream into frames; used only by the receive's handler.
  /// When the login timer last started: at the accept, and again after each
  /// answered LOGIN_REQUEST (checked by the sweep, only until logged in).
  std::chrono::steady_clock::time_point login_timer GUARDED_BY(lock) = std::chrono::steady_clock::now();
  std::size_t logins_answered GUARDED_BY(lock) = 0;  ///< LOGIN_REQUESTs answered when the sweep last looked.
  bool logged_in GUARDED_BY(lock) = false;           ///< Seen logged in by the sweep: no timer any more.
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

  std::shared_ptr<Connection> make_connection(Socket socket, OutboundTotal& total) override;
  std::shared_ptr<Connection> on_bytes(Connection& from, std::span<const std::byte> bytes) override;
  SharedBuffer farewell(Farewell why) override;
  void on_depart(Connection& connection) override;
  void on_sweep(Connection& connection, std::chrono::steady_clock::time_point now) override;
  std::shared_ptr<Connection> apply(Connection& sender, const Room::Effects& effects);

  Room room_;                                      ///< Sessions: logins, ids, who hears what.
  const std::chrono::milliseconds login_timeout_;  ///< ServerConfig::login_timeout.
};

}  // namespace iocp_chat::v2
