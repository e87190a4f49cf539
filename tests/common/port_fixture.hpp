// port_fixture.hpp — a GoogleTest fixture that runs a test once per
// completion-port backend compiled into this program (iocp on Windows;
// uring and epoll on Linux). A backend that cannot start here (io_uring
// blocked by a sandbox, say) is skipped with the reason, never passed.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <thread>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"

namespace iocp_chat {

/// Prints a backend by name in GoogleTest's messages ("epoll", not a byte dump).
inline void PrintTo(Backend backend, std::ostream* out) { *out << to_string(backend); }

}  // namespace iocp_chat

namespace iocp_chat::testing_support {

/// How long a test waits for a completion before it calls the wait a failure.
inline constexpr std::chrono::milliseconds kCompletionDeadline{20000};

// [port-fixture]
/// Polls `condition` every 2 ms until it holds or `deadline` passes; for
/// states with no event to wait on (a server's client count, say). The
/// deadline only stops a stuck test; it is never a speed limit.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds deadline = std::chrono::milliseconds(30000)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// Opens the parameter's backend for each test.
class PortTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    try {
      port_ = open_completion_port(GetParam());
    } catch (const std::system_error& error) {
      GTEST_SKIP() << "backend '" << to_string(GetParam()) << "' cannot start here: " << error.what();
    }
    ASSERT_EQ(port_->backend(), GetParam());
  }

  /// The next completion; a test failure if none arrives before the deadline.
  Completion next_completion() {
    auto completion = port_->wait(kCompletionDeadline);
    if (!completion) {
      ADD_FAILURE() << "no completion within " << kCompletionDeadline.count() << " ms";
      return {};
    }
    return *completion;
  }

  NetworkSession network_;                ///< Winsock started for the test.
  std::unique_ptr<CompletionPort> port_;  ///< The backend under test.
};
// [port-fixture]

/// A stage's last word on a test server's settings, called by ServerTest
/// after the common ones: nothing for ver.1 and ver.2; ver.3's session
/// tests overload it for their config (its NATS server, a room per test).
template <typename Config>
void prepare_for_test(Config& /*config*/) noexcept {}

// [server-fixture]
/// Runs a chat server — ver.1's or ver.2's ChatServer with its ServerConfig —
/// on the parameter's backend, on 127.0.0.1 and a free port, for each test.
/// The server's log is silent unless IOCP_CHAT_TEST_LOG is set.
template <typename Server, typename Config>
class ServerTest : public PortTest {
 protected:
  void SetUp() override {
    PortTest::SetUp();  // skips if the backend cannot start here
    port_.reset();      // the server opens its own
    set_logging_enabled(std::getenv("IOCP_CHAT_TEST_LOG") != nullptr);
  }

  void TearDown() override {
    if (server_) server_->stop();
    set_logging_enabled(true);
  }

  /// Starts the server with `config` on this test's backend (4 workers, any free port).
  void start_server(Config config = {}) {
    config.bind_address = "127.0.0.1";
    config.port = 0;
    config.backend = GetParam();
    config.threads = 4;
    prepare_for_test(config);  // found by argument-dependent lookup for a stage's own Config
    server_ = std::make_unique<Server>(config);
    server_->start();
  }

  std::unique_ptr<Server> server_;  ///< The server under test, once started.
};
// [server-fixture]

/// Names instantiations after the backend: Backends/PortTest.Name/epoll.
inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(to_string(info.param));
}

}  // namespace iocp_chat::testing_support
