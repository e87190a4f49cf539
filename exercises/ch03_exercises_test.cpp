// ch03_exercises_test.cpp — the checks of chapter 3's exercises, on ver.1's
// server in-process on 127.0.0.1, once per backend.
//
// IOCP ideas checked: 3.1 the receive path decides a client's fate under its
// lock and lets it go the graceful way (leave: flush, FIN, close); 3.2 the
// sweep, the server's clock, looks at every connection without a timer per
// client; 3.3 the farewell hook: the last bytes queued before a client is
// let go. The checks find the configuration fields you add with C++20
// `requires`, so this file builds before you have written them.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "chat_server.hpp"
#include "exercise_support.hpp"
#include "iocp_chat/log.hpp"
#include "port_fixture.hpp"

namespace iocp_chat::exercises {
namespace {

using namespace std::chrono_literals;
using testing_support::eventually;

/// ver.1's server on the parameter's backend.
class V1Exercise : public testing_support::ServerTest<v1::ChatServer, v1::ServerConfig> {
 protected:
  void TearDown() override {
    ServerTest::TearDown();
    set_log_observer({});
  }

  /// Every log line from now on, for a check to search.
  void watch_log() {
    set_log_observer([this](std::string_view line) {
      const std::lock_guard lock(lines_mutex_);
      lines_.emplace_back(line);
    });
  }

  /// How many log lines so far contain both `a` and `b`.
  int lines_with(const std::string& a, const std::string& b) {
    const std::lock_guard lock(lines_mutex_);
    int count = 0;
    for (const auto& line : lines_)
      count += line.find(a) != std::string::npos && line.find(b) != std::string::npos;
    return count;
  }

  std::mutex lines_mutex_;          ///< Guards lines_ (the observer runs on the logging thread).
  std::vector<std::string> lines_;  ///< What the server logged.
};

/// Sets ServerConfig::max_bytes_per_client, if you added it (exercise 3.1).
template <typename Config>
bool set_max_bytes_per_client(Config& config, std::uint64_t limit) {
  if constexpr (requires { config.max_bytes_per_client = limit; }) {
    config.max_bytes_per_client = limit;
    return true;
  } else {
    return false;
  }
}

/// Sets ServerConfig::idle_log_after, if you added it (exercise 3.2).
template <typename Config>
bool set_idle_log_after(Config& config, std::chrono::milliseconds after) {
  if constexpr (requires { config.idle_log_after = after; }) {
    config.idle_log_after = after;
    return true;
  } else {
    return false;
  }
}

/// "127.0.0.1:PORT", the server's name for this client in its log lines.
std::string name_of(const Socket& client) { return "127.0.0.1:" + std::to_string(local_port(client)); }

// Exercise 3.1: past its byte allowance a client leaves; the chunk that
// crossed it reaches no one.
TEST_P(V1Exercise, Exercise3_1_AClientIsLetGoAfterNBytes) {
  v1::ServerConfig config;
  ASSERT_TRUE(set_max_bytes_per_client(config, 100))
      << "exercise 3.1: add 'std::uint64_t max_bytes_per_client = 0;' (0 = no limit) to "
         "ServerCoreConfig (common/include/iocp_chat/server_core.hpp)";
  start_server(config);
  Socket talker = connect_to("127.0.0.1", server_->port());
  Socket listener = connect_to("127.0.0.1", server_->port());
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 2; }));
  // Whole lines, so that the check holds with exercise 5.2 solved too.
  const std::string sixty = std::string(59, 'a') + "\n";
  ASSERT_FALSE(send_all(talker, sixty));
  ASSERT_EQ(read_text(listener, 60), sixty) << "the first 60 bytes are within the limit: broadcast them";
  ASSERT_EQ(read_text(talker, 60), sixty);
  ASSERT_FALSE(send_all(talker, std::string(59, 'b') + "\n"));  // 120 in all: past the limit
  std::string after;
  EXPECT_TRUE(read_until_closed(talker, after))
      << "exercise 3.1: a client that sent more than max_bytes_per_client should be let go (leave())";
  EXPECT_EQ(after, "") << "exercise 3.1: the chunk that crossed the limit should not be broadcast";
  ASSERT_FALSE(send_all(listener, "z\n"));
  EXPECT_EQ(read_text(listener, 2), "z\n")
      << "exercise 3.1: the chunk that crossed the limit reached another client";
}

// Exercise 3.2: the sweep logs a silent client once, and never a talking one.
TEST_P(V1Exercise, Exercise3_2_TheSweepLogsIdleClientsOnce) {
  v1::ServerConfig config;
  ASSERT_TRUE(set_idle_log_after(config, 400ms))
      << "exercise 3.2: add 'std::chrono::milliseconds idle_log_after{0};' (0 = never) to ServerCoreConfig";
  watch_log();
  start_server(config);
  Socket silent = connect_to("127.0.0.1", server_->port());
  Socket chatty = connect_to("127.0.0.1", server_->port());
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 2; }));
  // The chatty one speaks every 100 ms for 2 s (20 bytes: no one needs to read).
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(send_all(chatty, "."));
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(eventually([&] { return lines_with(name_of(silent), "idle") > 0; }, 5000ms))
      << "exercise 3.2: the sweep should log 'client " << name_of(silent)
      << " idle for ... ms' once it has sent nothing for idle_log_after";
  EXPECT_EQ(lines_with(name_of(chatty), "idle"), 0)
      << "exercise 3.2: a client that speaks every 100 ms is not idle (restart its clock on each receive)";
  std::this_thread::sleep_for(1s);  // a few more sweeps
  EXPECT_EQ(lines_with(name_of(silent), "idle"), 1)
      << "exercise 3.2: log an idle client once per silence, not at every sweep";
}

// Exercise 3.3: a client refused for want of room hears why before the close.
TEST_P(V1Exercise, Exercise3_3_ARefusedClientIsToldServerFull) {
  v1::ServerConfig config;
  config.max_clients = 1;
  start_server(config);
  Socket first = connect_to("127.0.0.1", server_->port());
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 1; }));
  Socket second = connect_to("127.0.0.1", server_->port());
  std::string heard;
  ASSERT_TRUE(read_until_closed(second, heard)) << "past max_clients the server closes a newcomer";
  EXPECT_NE(heard.find("server full"), std::string::npos)
      << "exercise 3.3: override farewell() in ver.1's ChatServer (v1_basic_broadcast/server/) "
         "so that a refused client reads a line saying 'server full' before the close; it read '"
      << heard << "'";
}

INSTANTIATE_TEST_SUITE_P(Backends, V1Exercise, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::exercises
