// ch02_exercises_test.cpp — the checks of chapter 2's exercises, on ver.1's
// server in-process on 127.0.0.1, once per backend.
//
// IOCP idea checked: counters that every worker thread changes at once are
// Interlocked operations, not a lock: 2.1 the bytes received (an add), 2.2
// the most clients ever connected at once (a compare-exchange loop). The
// checks find the members you add with C++20 `requires`, so this file
// builds before you have written them, and says what is missing.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "chat_server.hpp"
#include "exercise_support.hpp"
#include "port_fixture.hpp"

namespace iocp_chat::exercises {
namespace {

using testing_support::eventually;

/// ver.1's server on the parameter's backend.
using V1Exercise = testing_support::ServerTest<v1::ChatServer, v1::ServerConfig>;

/// ServerCore::bytes_received(), if you wrote it (exercise 2.1).
template <typename Server>
std::optional<std::int64_t> bytes_received(Server& server) {
  if constexpr (requires { server.bytes_received(); }) {
    return static_cast<std::int64_t>(server.bytes_received());
  } else {
    return std::nullopt;
  }
}

/// ServerCore::peak_client_count(), if you wrote it (exercise 2.2).
template <typename Server>
std::optional<std::int64_t> peak_client_count(Server& server) {
  if constexpr (requires { server.peak_client_count(); }) {
    return static_cast<std::int64_t>(server.peak_client_count());
  } else {
    return std::nullopt;
  }
}

// Exercise 2.1: every byte received counted once, from four senders at once.
TEST_P(V1Exercise, Exercise2_1_BytesReceivedCountsEveryByteOnce) {
  start_server();
  ASSERT_TRUE(bytes_received(*server_).has_value())
      << "exercise 2.1: add 'std::int64_t bytes_received() const noexcept' to ServerCore "
         "(common/include/iocp_chat/server_core.hpp), backed by an InterlockedCounter";
  std::vector<Socket> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(connect_to("127.0.0.1", server_->port()));
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 4; }));
  const std::string chunk = std::string(999, 'b') + "\n";  // lines: holds with exercise 5.2 solved too
  std::vector<std::thread> senders;
  for (auto& client : clients) {
    senders.emplace_back([&client, &chunk] {
      for (int i = 0; i < 100; ++i) (void)send_all(client, chunk);
    });
  }
  // Everyone reads what the broadcasts bring, so no queue fills up meanwhile.
  std::vector<std::thread> readers;
  for (auto& client : clients) readers.emplace_back([&client] { (void)read_text(client, 400000); });
  for (auto& sender : senders) sender.join();
  for (auto& reader : readers) reader.join();
  EXPECT_TRUE(eventually([&] { return bytes_received(*server_) == 400000; }))
      << "exercise 2.1: 4 clients sent 100 x 1000 bytes each; bytes_received() says "
      << *bytes_received(*server_) << " (count in the receive path, with InterlockedCounter::add)";
}

// Exercise 2.2: the peak stays when clients leave, and rises only past it.
TEST_P(V1Exercise, Exercise2_2_PeakClientCountRemembersTheMost) {
  start_server();
  ASSERT_TRUE(peak_client_count(*server_).has_value())
      << "exercise 2.2: add 'std::int64_t peak_client_count() const noexcept' to ServerCore, "
         "raised with a compare-exchange loop (InterlockedCompareExchange64) wherever a client is counted";
  {
    std::vector<Socket> five;
    for (int i = 0; i < 5; ++i) five.push_back(connect_to("127.0.0.1", server_->port()));
    ASSERT_TRUE(eventually([&] { return server_->client_count() == 5; }));
  }
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 0; }));
  std::vector<Socket> two;
  for (int i = 0; i < 2; ++i) two.push_back(connect_to("127.0.0.1", server_->port()));
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 2; }));
  EXPECT_EQ(peak_client_count(*server_), 5)
      << "exercise 2.2: five clients were connected at once, then two: the peak is five";
}

INSTANTIATE_TEST_SUITE_P(Backends, V1Exercise, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::exercises
