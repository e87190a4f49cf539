// server_test.cpp — ver.1's contract (docs/protocol.md) against the real server,
// in-process on 127.0.0.1 with an ephemeral port, on every backend: every
// byte reaches every client including the sender, unchanged and in each
// sender's order; joins, leaves, resets and slow readers disturb no one
// else; --max-clients holds; shutdown closes every client.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "chat_server.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"
#include "port_fixture.hpp"

namespace iocp_chat::v1 {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Generous: a deadline to fail a stuck test, never a performance limit.
constexpr auto kDeadline = 30s;

using testing_support::eventually;

/// Reads from `socket` until `wanted` bytes have arrived (or end/error/deadline).
std::string read_bytes(const Socket& socket, std::size_t wanted) {
  std::string text;
  std::vector<std::byte> buffer(65536);
  const auto deadline = Clock::now() + kDeadline;
  while (text.size() < wanted && Clock::now() < deadline) {
    if (!wait_readable(socket, 100)) continue;
    std::error_code error;
    const std::size_t count = receive_some(socket, buffer, error);
    if (error || count == 0) break;
    text.append(reinterpret_cast<const char*>(buffer.data()), count);
  }
  return text;
}

/// True if the server closed this client: reading reaches end of stream or a reset.
bool sees_close(const Socket& socket) {
  std::vector<std::byte> buffer(65536);
  const auto deadline = Clock::now() + kDeadline;
  while (Clock::now() < deadline) {
    if (!wait_readable(socket, 100)) continue;
    std::error_code error;
    if (receive_some(socket, buffer, error) == 0) return true;  // end of stream, or an error
  }
  return false;
}

/// Sender k writes only bytes of its own alphabet (11 printable characters:
/// ten digits and a separator), so a receiver can pull each sender's stream
/// out of the merged bytes however TCP cut and interleaved them.
std::string encode_stream(int sender, int count) {
  const char base = static_cast<char>('!' + sender * 11);
  std::string stream;
  for (int i = 0; i < count; ++i) {
    for (const char digit : std::to_string(i)) stream.push_back(static_cast<char>(base + (digit - '0')));
    stream.push_back(static_cast<char>(base + 10));
  }
  return stream;
}

/// The bytes of `merged` that belong to sender k's alphabet, in order.
std::string stream_of(const std::string& merged, int sender) {
  const char base = static_cast<char>('!' + sender * 11);
  std::string stream;
  for (const char byte : merged) {
    if (byte >= base && byte <= base + 10) stream.push_back(byte);
  }
  return stream;
}

// [v1-fixture]
/// Runs a ChatServer on the parameter's backend for each test.
class V1ServerTest : public testing_support::ServerTest<ChatServer, ServerConfig> {
 protected:
  /// Connects `count` clients and waits until the server has admitted them all.
  std::vector<Socket> connect_clients(std::size_t count) {
    const std::int64_t before = server_->client_count();
    std::vector<Socket> clients;
    for (std::size_t i = 0; i < count; ++i) clients.push_back(connect_to("127.0.0.1", server_->port()));
    EXPECT_TRUE(eventually([&] {
      return server_->client_count() == before + static_cast<std::int64_t>(count);
    })) << "server admitted "
        << server_->client_count() - before << " of " << count;
    return clients;
  }
};
// [v1-fixture]

void expect_everyone_gets_everyones_line(std::vector<Socket>& clients) {
  std::string expected_total;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::string line = "line from client " + std::to_string(i) + "\n";
    expected_total += line;
    ASSERT_FALSE(send_all(clients[i], line));
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::string received = read_bytes(clients[i], expected_total.size());
    ASSERT_EQ(received.size(), expected_total.size()) << "client " << i;
    // Same bytes, in any order of whole lines (each line is one small send).
    std::string sorted_received = received;
    std::string sorted_expected = expected_total;
    std::sort(sorted_received.begin(), sorted_received.end());
    std::sort(sorted_expected.begin(), sorted_expected.end());
    EXPECT_EQ(sorted_received, sorted_expected) << "client " << i;
    for (std::size_t j = 0; j < clients.size(); ++j) {
      const std::string line = "line from client " + std::to_string(j) + "\n";
      EXPECT_NE(received.find(line), std::string::npos) << "client " << i << " missed: " << line;
    }
  }
}

TEST_P(V1ServerTest, TwoClientsBothGetEveryLineIncludingTheirOwn) {
  start_server();
  auto clients = connect_clients(2);
  expect_everyone_gets_everyones_line(clients);
}

TEST_P(V1ServerTest, TwentyClientsAllGetEveryLine) {
  start_server();
  auto clients = connect_clients(20);
  expect_everyone_gets_everyones_line(clients);
}

TEST_P(V1ServerTest, TwoHundredClientsAllGetEveryLine) {
  start_server();
  auto clients = connect_clients(200);
  expect_everyone_gets_everyones_line(clients);
}

TEST_P(V1ServerTest, UnicodeBytesArriveUnchanged) {
  start_server();
  auto clients = connect_clients(2);
  const std::string korean = "안녕하세요, 여러분! 민수입니다.\n";
  ASSERT_FALSE(send_all(clients[0], korean));
  EXPECT_EQ(read_bytes(clients[1], korean.size()), korean);
  EXPECT_EQ(read_bytes(clients[0], korean.size()), korean);
}

TEST_P(V1ServerTest, EachSendersOrderHoldsOverTenThousandLinesWithNoLossOrDuplicate) {
  constexpr int kSenders = 4;
  constexpr int kListeners = 2;
  constexpr int kLines = 10000;
  start_server();
  auto clients = connect_clients(kSenders + kListeners);

  std::vector<std::string> streams;
  std::size_t total = 0;
  for (int s = 0; s < kSenders; ++s) {
    streams.push_back(encode_stream(s, kLines));
    total += streams.back().size();
  }
  // Every client reads on its own thread while the senders write in bursts.
  std::vector<std::string> received(clients.size());
  std::vector<std::thread> readers;
  for (std::size_t c = 0; c < clients.size(); ++c) {
    readers.emplace_back([&, c] { received[c] = read_bytes(clients[c], total); });
  }
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      const std::string& stream = streams[static_cast<std::size_t>(s)];
      for (std::size_t offset = 0; offset < stream.size(); offset += 700) {
        (void)send_all(clients[static_cast<std::size_t>(s)], std::string_view(stream).substr(offset, 700));
      }
    });
  }
  for (auto& sender : senders) sender.join();
  for (auto& reader : readers) reader.join();

  for (std::size_t c = 0; c < clients.size(); ++c) {
    ASSERT_EQ(received[c].size(), total) << "client " << c << " lost or gained bytes";
    for (int s = 0; s < kSenders; ++s) {
      EXPECT_TRUE(stream_of(received[c], s) == streams[static_cast<std::size_t>(s)])
          << "client " << c << " saw sender " << s << "'s bytes out of order, duplicated or lost";
    }
  }
}

TEST_P(V1ServerTest, ClientsJoiningAndLeavingMidStreamDisturbNoOne) {
  start_server();
  auto pair = connect_clients(2);  // [0] sends, [1] listens throughout
  const std::string stream = encode_stream(0, 3000);
  std::string received;
  std::thread reader([&] { received = read_bytes(pair[1], stream.size()); });
  std::atomic<bool> sending{true};
  std::thread churn([&] {
    for (int turn = 0; sending.load(); ++turn) {
      Socket visitor = connect_to("127.0.0.1", server_->port());
      std::this_thread::sleep_for(1ms);
      // Visitors leave normally or abruptly, alternately.
      if (turn % 2 == 0) close_with_reset(visitor);
    }
  });
  for (std::size_t offset = 0; offset < stream.size(); offset += 50) {
    ASSERT_FALSE(send_all(pair[0], std::string_view(stream).substr(offset, 50)));
  }
  reader.join();
  sending.store(false);
  churn.join();
  EXPECT_TRUE(received == stream);
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; })) << server_->client_count();
}

TEST_P(V1ServerTest, AClientThatLeavesMidLineStillDeliversWhatItSent) {
  start_server();
  auto clients = connect_clients(2);
  ASSERT_FALSE(send_all(clients[0], std::string_view("half a li")));
  EXPECT_EQ(read_bytes(clients[1], 9), "half a li");
  clients[0].close();
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 1; }));
  // The survivor still chats.
  ASSERT_FALSE(send_all(clients[1], std::string_view("still here\n")));
  EXPECT_EQ(read_bytes(clients[1], 11), "still here\n");
}

TEST_P(V1ServerTest, AClientThatHalfClosesStillGetsWhatWasQueuedForIt) {
  start_server();
  auto clients = connect_clients(2);
  // 200 KiB, then the end of the stream: the echo must arrive in full
  // before the server closes, because the client is still reading.
  const std::string stream = encode_stream(2, 30000);
  ASSERT_FALSE(send_all(clients[0], stream));
  shutdown_send(clients[0]);
  EXPECT_TRUE(read_bytes(clients[0], stream.size()) == stream) << "the echo was cut short";
  EXPECT_TRUE(sees_close(clients[0]));
  EXPECT_TRUE(read_bytes(clients[1], stream.size()) == stream);
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 1; }));
}

TEST_P(V1ServerTest, AResetWhileTheServerIsSendingToItHurtsNoOneElse) {
  start_server();
  auto clients = connect_clients(3);  // [0] sends, [1] reads, [2] stops reading then resets
  const std::string stream = encode_stream(1, 20000);
  std::string received;
  std::thread reader([&] { received = read_bytes(clients[1], stream.size()); });
  for (std::size_t offset = 0; offset < stream.size(); offset += 1000) {
    ASSERT_FALSE(send_all(clients[0], std::string_view(stream).substr(offset, 1000)));
    if (offset == 50000) close_with_reset(clients[2]);
  }
  reader.join();
  EXPECT_TRUE(received == stream);
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; }));
}

TEST_P(V1ServerTest, ASlowConsumerIsDroppedWhileTheOthersGetEverything) {
  ServerConfig config;
  config.max_queue_bytes = 64 * 1024;
  config.stall_limit = std::chrono::milliseconds(300);  // the client that never reads goes sooner
  start_server(config);
  auto clients = connect_clients(3);  // [0] floods (and reads its echo), [1] reads, [2] never reads

  // Readers count what they get. The flooder keeps at most kWindow bytes
  // ahead of the slower reader. A send's bytes count against the bound until
  // its completion is handled — even when the reader already has them — so
  // a reader's queue can hold up to twice the window. With the window at a
  // quarter of the bound, only the client that never reads can overflow.
  constexpr std::size_t kBlock = 16 * 1024;
  constexpr std::size_t kWindow = kBlock;
  // The flooder goes on until the client that never reads is dropped — once
  // the kernel's buffers toward it (about 4 MiB on Linux) and its 64 KiB
  // queue are full — then sends kAfterDrop more blocks, which the readers must
  // still get. kMaxBlocks (32 MiB) is far more than any socket buffers hold:
  // a server that never drops it fails the test.
  constexpr std::size_t kMaxBlocks = 2048;
  constexpr std::size_t kAfterDrop = 128;               // 2 MiB
  std::atomic<std::size_t> total{kBlock * kMaxBlocks};  // bytes to be sent; lowered once
  std::atomic<std::size_t> received[2] = {0, 0};
  auto read_all = [&](std::size_t index) {
    std::vector<std::byte> buffer(1 << 16);
    while (received[index].load() < total.load()) {
      if (!wait_readable(clients[index], 30000)) return;
      std::error_code error;
      const std::size_t count = receive_some(clients[index], buffer, error);
      if (error || count == 0) return;
      received[index].fetch_add(count);
    }
  };
  std::thread flooder_echo([&] { read_all(0); });
  std::thread reader([&] { read_all(1); });

  const std::string block(kBlock, 'x');
  bool lowered = false;
  for (std::size_t sent = 0; sent < total.load(); sent += kBlock) {
    if (!eventually(
            [&] { return std::min(received[0].load(), received[1].load()) + kWindow >= sent + kBlock; })) {
      ADD_FAILURE() << "readers stalled at " << received[0].load() << " and " << received[1].load();
      break;  // the reading threads end at their own deadline
    }
    // Lowered before this block is sent, so neither reader has reached it yet.
    if (!lowered && server_->client_count() == 2) {
      total.store(std::min(total.load(), sent + kAfterDrop * kBlock));
      lowered = true;
    }
    if (send_all(clients[0], block)) {
      ADD_FAILURE() << "the flooder could not send";
      break;
    }
  }
  reader.join();
  flooder_echo.join();
  EXPECT_EQ(received[1].load(), total.load()) << "the reading client lost bytes";
  EXPECT_EQ(received[0].load(), total.load()) << "the flooder lost its echo";
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; })) << "slow consumer not dropped";
  EXPECT_TRUE(sees_close(clients[2]));
}

// [max-clients-test]
TEST_P(V1ServerTest, MaxClientsClosesTheNextConnectionAtOnce) {
  ServerConfig config;
  config.max_clients = 3;
  start_server(config);
  auto clients = connect_clients(3);
  Socket extra = connect_to("127.0.0.1", server_->port());
  EXPECT_TRUE(sees_close(extra));
  EXPECT_EQ(server_->client_count(), 3);
  ASSERT_FALSE(send_all(clients[0], std::string_view("still three\n")));
  EXPECT_EQ(read_bytes(clients[2], 12), "still three\n");
}
// [max-clients-test]

TEST_P(V1ServerTest, StopClosesEveryClientAndReturns) {
  start_server();
  auto clients = connect_clients(5);
  ASSERT_FALSE(send_all(clients[0], std::string_view("bye\n")));
  EXPECT_EQ(read_bytes(clients[4], 4), "bye\n");
  server_->stop();
  EXPECT_EQ(server_->client_count(), 0);
  for (auto& client : clients) EXPECT_TRUE(sees_close(client));
}

// [instantiate]
INSTANTIATE_TEST_SUITE_P(Backends, V1ServerTest, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);
// [instantiate]

}  // namespace
}  // namespace iocp_chat::v1
