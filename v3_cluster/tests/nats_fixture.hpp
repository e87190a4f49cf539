// nats_fixture.hpp — what the tests against real servers share: a temporary
// directory, a token and its credentials file, one nats-server requiring
// it, settings for a backplane node, and a plain NATS connection (a
// "stray client") made without the backplane.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "backplane.hpp"
#include "credentials.hpp"
#include "iocp_chat/log.hpp"
#include "nats_handles.hpp"
#include "nats_harness.hpp"
#include "recording_listener.hpp"

namespace iocp_chat::v3::test {

/// A plain connection to `url` with a token (or user/password, or nothing);
/// the status of the attempt in `status`. No reconnects: a test client.
inline nats::Connection connect_raw(const std::string& url, natsStatus& status, const std::string& token = {},
                                    const std::string& user = {}, const std::string& password = {}) {
  natsOptions* raw = nullptr;
  natsOptions_Create(&raw);
  nats::Options options(raw);
  natsOptions_SetURL(raw, url.c_str());
  natsOptions_SetAllowReconnect(raw, false);
  natsOptions_SetTimeout(raw, 2000);
  if (!token.empty()) natsOptions_SetToken(raw, token.c_str());
  if (!user.empty()) natsOptions_SetUserInfo(raw, user.c_str(), password.c_str());
  natsConnection* connection = nullptr;
  status = natsConnection_Connect(&connection, raw);
  return nats::Connection(connection);
}

/// A test with its own nats-server requiring a token.
class NatsTest : public ::testing::Test {
 protected:
  /// Quiet logs (IOCP_CHAT_TEST_LOG=1 shows them), no credentials in the environment, the token file.
  void SetUp() override {
    set_logging_enabled(::getenv("IOCP_CHAT_TEST_LOG") != nullptr);
    for (const char* name : {kCredentialsFileVariable, kTokenVariable, kUserVariable, kPasswordVariable}) {
      ::unsetenv(name);
    }
    credentials_ = directory_.path() / "node.creds";
    write_file(credentials_, "# test credentials\ntoken = " + token_ + "\n", 0600);
  }

  /// Starts the one server of this test, requiring the token (or `auth`).
  NatsServer& start_server(const NatsAuth& auth) {
    NatsServerConfig config;
    config.auth = auth;
    server_ = std::make_unique<NatsServer>(directory_.path(), std::move(config));
    server_->start();
    return *server_;
  }
  /// Starts the one server of this test, requiring the token.
  NatsServer& start_server() {
    NatsAuth auth;
    auth.token = token_;
    return start_server(auth);
  }

  /// Settings for node `node` on `urls` (default: this test's server), with
  /// the token file, trying the URLs in order.
  BackplaneSettings settings(const std::string& node, std::vector<std::string> urls = {}) const {
    BackplaneSettings result;
    result.urls = urls.empty() ? std::vector<std::string>{server_->url()} : std::move(urls);
    result.node = node;
    result.credentials_file = credentials_.string();
    result.randomize_servers = false;
    return result;
  }

  TempDir directory_;                                ///< Everything of this test.
  std::string token_ = "iocp-chat-test-token-7f3a";  ///< The secret the server requires.
  std::filesystem::path credentials_;                ///< A file holding it (mode 600).
  std::unique_ptr<NatsServer> server_;               ///< This test's server, once started.
};

}  // namespace iocp_chat::v3::test
