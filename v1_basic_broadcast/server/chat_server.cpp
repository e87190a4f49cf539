// chat_server.cpp — ver.1's broadcast server: the shared server core plus
// one handler, for the bytes a client sent.
//
// Lines such as `// [name]` mark the listings the tutorial shows.
#include "chat_server.hpp"

namespace iocp_chat::v1 {

// [broadcast]
// Copies the list under the lock (a few pointer copies), then delivers
// without it: the critical section is never held across I/O. Returns a
// recipient whose queue is now congested, if any: the core then holds back
// the sender's next receive until that queue has room again.
std::shared_ptr<Connection> ChatServer::on_bytes(Connection& /*from*/, std::span<const std::byte> bytes) {
  std::shared_ptr<Connection> congested;
  for (const auto& recipient : connections()) {
    if (deliver(*recipient, bytes) && !congested) congested = recipient;
  }
  return congested;
}
// [broadcast]

}  // namespace iocp_chat::v1
