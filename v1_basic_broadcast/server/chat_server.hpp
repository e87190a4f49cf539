// chat_server.hpp — ver.1's broadcast server: every chunk of bytes any client
// sends goes, unchanged, to every connected client (the sender included).
//
// Everything about connections — the pre-posted accepts, the workers on the
// completion port, one write in flight per client, back-pressure, bounds,
// the sweep and the orderly close — is the shared ServerCore
// (common/include/iocp_chat/server_core.hpp). What ver.1 adds is one
// decision: what to do with the bytes a client sent. Broadcast them: copy
// the client list under its CriticalSection, then queue the chunk for each
// client without holding it.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "iocp_chat/server_core.hpp"

namespace iocp_chat::v1 {

/// Everything the command line can change: the shared server's options.
using ServerConfig = ServerCoreConfig;

/// The ver.1 server. start() returns once it is listening; stop() (or the
/// destructor) shuts it down in order and returns when everything is freed.
class ChatServer : public ServerCore {
 public:
  /// Prepares; no socket is opened until start().
  explicit ChatServer(const ServerConfig& config) : ServerCore(config) {}
  /// Stops first: the workers call this class's handlers until then.
  ~ChatServer() override { stop(); }
  ChatServer(const ChatServer&) = delete;
  ChatServer& operator=(const ChatServer&) = delete;

 private:
  std::shared_ptr<Connection> on_bytes(Connection& from, std::span<const std::byte> bytes) override;
};

}  // namespace iocp_chat::v1
