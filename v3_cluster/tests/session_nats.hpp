// session_nats.hpp — what lets ver.2's session tests (tests/v2/server_test.cpp)
// run unchanged against one ver.3 node: one real nats-server for the whole
// test program (JetStream, a token), and each test's node pointed at it, in
// a room of its own so that no test sees another's ids or members.
//
// Idea shown: a ver.2 client must not tell a ver.3 node from a ver.2 server
// (docs/protocol.md, ver.3), so the proof is ver.2's own tests, not new ones.
// The node still claims every id in NATS's bucket and publishes every chat
// line: the session rules hold with the backplane in the path.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

#include "chat_server.hpp"
#include "credentials.hpp"
#include "nats_harness.hpp"

namespace iocp_chat::v3 {
namespace test {

/// The program's one nats-server and the credentials file for its token.
class SessionNats {
 public:
  /// Started on first use; stopped when the program ends.
  static SessionNats& instance() {
    static SessionNats nats;
    return nats;
  }
  /// Its URL.
  std::string url() const { return server_->url(); }
  /// A file holding the token (mode 600).
  std::string credentials() const { return credentials_.string(); }

 private:
  SessionNats() {
    for (const char* name : {kCredentialsFileVariable, kTokenVariable, kUserVariable, kPasswordVariable}) {
      ::unsetenv(name);  // only the file below counts
    }
    const std::string token = "iocp-chat-session-token-" + std::to_string(::getpid());
    credentials_ = directory_.path() / "node.creds";
    write_file(credentials_, "token = " + token + "\n", 0600);
    NatsServerConfig config;
    config.auth.token = token;
    server_ = std::make_unique<NatsServer>(directory_.path(), std::move(config));
    server_->start();
  }

  TempDir directory_;                   ///< The server's store and configuration, the credentials.
  std::filesystem::path credentials_;   ///< The token's file.
  std::unique_ptr<NatsServer> server_;  ///< Declared last: stopped first.
};

}  // namespace test

/// ServerTest's hook (tests/common/port_fixture.hpp) for a ver.3 node: the
/// program's nats-server, its token file, and a fresh room for every test.
inline void prepare_for_test(ServerConfig& config) {
  static std::atomic<int> rooms{0};
  test::SessionNats& nats = test::SessionNats::instance();
  config.backplane.urls = {nats.url()};
  config.backplane.credentials_file = nats.credentials();
  config.backplane.node = "solo";
  config.backplane.room = "session" + std::to_string(++rooms);
}

}  // namespace iocp_chat::v3
