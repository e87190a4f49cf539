// ch01_exercises_test.cpp — the checks of chapter 1's exercises: the echo
// server you write in ch01_echo_server.cpp, on every backend.
//
// IOCP ideas checked: 1.1 an accept, a receive and a send, each completing
// on the port; 1.2 the completion key telling connections apart; 1.3 a
// stop that cancels, drains and posts, so that no operation outlives its
// connection.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "ch01_echo_server.hpp"
#include "exercise_support.hpp"
#include "port_fixture.hpp"

namespace iocp_chat::exercises {
namespace {

using namespace std::chrono_literals;

/// Runs each check once per backend (skipped where a backend cannot start).
class EchoExercise : public testing_support::PortTest {
 protected:
  void SetUp() override {
    PortTest::SetUp();
    port_.reset();  // the echo server opens its own
  }
};

// Exercise 1.1: one client's bytes come back to it.
TEST_P(EchoExercise, Exercise1_1_OneClientHearsItsOwnBytes) {
  EchoServer server(GetParam());
  const std::uint16_t port = server.start();
  Socket client = connect_to("127.0.0.1", port);
  ASSERT_FALSE(send_all(client, "hello, port\n"));
  EXPECT_EQ(read_text(client, 12), "hello, port\n")
      << "exercise 1.1: the echo server should send a client's bytes back to it";
  ASSERT_FALSE(send_all(client, "and again\n"));
  EXPECT_EQ(read_text(client, 10), "and again\n")
      << "exercise 1.1: after a send completes, start the next receive";
}

// Exercise 1.2: ten clients at once, each hears only its own bytes.
TEST_P(EchoExercise, Exercise1_2_TenClientsEachHearOnlyThemselves) {
  EchoServer server(GetParam());
  const std::uint16_t port = server.start();
  std::vector<Socket> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(connect_to("127.0.0.1", port));
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      ASSERT_FALSE(send_all(clients[i], "client " + std::to_string(i) + "\n"));
    }
    for (std::size_t i = 0; i < clients.size(); ++i) {
      const std::string mine = "client " + std::to_string(i) + "\n";
      EXPECT_EQ(read_text(clients[i], mine.size()), mine)
          << "exercise 1.2: each connection needs its own receive and send operations, "
             "told apart by the completion key (or the operation) of each completion";
    }
  }
}

// Exercise 1.3: stop() with clients connected returns, and they see the close.
TEST_P(EchoExercise, Exercise1_3_StopClosesConnectedClients) {
  EchoServer server(GetParam());
  const std::uint16_t port = server.start();
  Socket first = connect_to("127.0.0.1", port);
  Socket second = connect_to("127.0.0.1", port);
  ASSERT_FALSE(send_all(first, "x"));
  ASSERT_EQ(read_text(first, 1), "x") << "exercise 1.1 first: the echo does not work yet";
  auto stopped = std::async(std::launch::async, [&server] { server.stop(); });
  if (stopped.wait_for(kDeadline) != std::future_status::ready) {
    // The server cannot be destroyed while stop() hangs: say why, and end here.
    std::fprintf(stderr,
                 "exercise 1.3: stop() did not return: cancel every connection's receive, wait "
                 "for those completions, then post one quit completion for the worker\n");
    std::_Exit(1);
  }
  std::string rest;
  EXPECT_TRUE(read_until_closed(first, rest)) << "exercise 1.3: stop() should close every client";
  EXPECT_TRUE(read_until_closed(second, rest)) << "exercise 1.3: stop() should close every client";
}

INSTANTIATE_TEST_SUITE_P(Backends, EchoExercise, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::exercises
