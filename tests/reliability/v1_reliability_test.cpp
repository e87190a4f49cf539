// v1_reliability_test.cpp — the ver.1 server under faults, load, churn and
// arbitrary bytes: in-process on 127.0.0.1:0, once per backend (IOCP under
// Wine in the Windows build), with real sockets only.
//
// IOCP ideas checked from the outside: a connection lives until its last
// outstanding operation completes, so a reset or a shutdown in the middle
// of sends frees nothing early (the sanitizer builds run these tests); each
// client's bounded queue keeps one slow reader from holding anyone else up;
// the broadcast never looks at the bytes, so no byte value can hurt it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chat_server.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"
#include "port_fixture.hpp"
#include "reliability_support.hpp"

namespace iocp_chat::v1 {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using reliability::kDeadline;
using reliability::LogRecorder;
using testing_support::eventually;

/// Bytes that are not printable ASCII and not '\n': NUL, control
/// characters and bytes that are never valid UTF-8 on their own.
bool is_binary(char byte) {
  const auto value = static_cast<unsigned char>(byte);
  return (value < 0x20 && value != '\n') || value >= 0x80;
}

/// A client that reads on a thread of its own and splits what it gets into
/// the text lines (printable bytes and '\n') and the binary bytes, so a test
/// can check each stream however TCP and the server interleaved them.
class Reader {
 public:
  /// Connects and starts reading; with keep false it only counts the bytes.
  explicit Reader(std::uint16_t port, bool keep = true) : socket_(connect_to("127.0.0.1", port)) {
    thread_ = std::thread([this, keep] {
      std::vector<std::byte> buffer(65536);
      while (!stop_.load()) {
        if (!wait_readable(socket_, 50)) continue;
        std::error_code error;
        const std::size_t count = receive_some(socket_, buffer, error);
        if (error || count == 0) break;
        received_.fetch_add(count);
        if (!keep) continue;
        const std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < count; ++i) {
          const char byte = static_cast<char>(buffer[i]);
          (is_binary(byte) ? binary_ : text_).push_back(byte);
        }
      }
      ended_.store(true);
    });
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() { stop(); }

  /// Stops reading (the socket stays open).
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  /// The printable bytes and newlines received so far.
  std::string text() const {
    const std::lock_guard lock(mutex_);
    return text_;
  }
  /// The other bytes received so far.
  std::size_t binary_size() const {
    const std::lock_guard lock(mutex_);
    return binary_.size();
  }
  /// The other bytes received so far.
  std::string binary() const {
    const std::lock_guard lock(mutex_);
    return binary_;
  }
  /// Bytes received so far.
  std::size_t received() const { return received_.load(); }
  /// True once the server closed this client (end of stream or reset).
  bool ended() const { return ended_.load(); }
  /// The socket, to send on.
  Socket& socket() { return socket_; }

 private:
  Socket socket_;                         ///< Connected to the server.
  mutable std::mutex mutex_;              ///< Guards text_ and binary_ (the reading thread writes them).
  std::string text_;                      ///< Printable bytes and newlines, in order.
  std::string binary_;                    ///< The other bytes, in order.
  std::atomic<std::size_t> received_{0};  ///< Every byte counted.
  std::atomic<bool> stop_{false};         ///< Tells the reading thread to stop.
  std::atomic<bool> ended_{false};        ///< The server closed the connection.
  std::thread thread_;                    ///< The reading thread.
};

/// "0\n1\n...(count-1)\n": what a talker of `count` lines sent.
std::string numbered_lines(int count) {
  std::string lines;
  for (int i = 0; i < count; ++i) lines += std::to_string(i) + "\n";
  return lines;
}

/// Two clients that chat all through a test: one sends a numbered line every
/// millisecond; at the end both must have received every line, in order.
class BystanderPair {
 public:
  /// Connects both and starts talking.
  explicit BystanderPair(std::uint16_t port) : talker_(port), listener_(port) {}
  /// Begins once the server has admitted both (so neither misses a line);
  /// returns once the listener has received the first line.
  void start() {
    talking_ = std::thread([this] {
      while (!stop_.load()) {
        if (send_all(talker_.socket(), std::to_string(sent_.load()) + "\n")) break;
        sent_.fetch_add(1);
        std::this_thread::sleep_for(1ms);
      }
    });
    // The chat is under way before the test does anything to the server
    // (on a loaded machine the talker's thread may start late).
    EXPECT_TRUE(eventually([&] { return !listener_.text().empty(); }, kDeadline))
        << "the bystanders never chatted";
  }
  BystanderPair(const BystanderPair&) = delete;
  BystanderPair& operator=(const BystanderPair&) = delete;
  ~BystanderPair() { finish(); }

  /// Stops talking; fails the test unless both got every line, in order.
  void finish() {
    if (finished_) return;
    finished_ = true;
    stop_.store(true);
    if (talking_.joinable()) talking_.join();
    const std::string expected = numbered_lines(sent_.load());
    EXPECT_TRUE(eventually(
        [&] {
          return talker_.text().size() >= expected.size() && listener_.text().size() >= expected.size();
        },
        kDeadline));
    EXPECT_EQ(talker_.text(), expected) << "the talker's echo";
    EXPECT_EQ(listener_.text(), expected) << "the listener";
    talker_.stop();
    listener_.stop();
  }

 private:
  Reader talker_;                  ///< Sends the numbered lines (and reads its echo).
  Reader listener_;                ///< Only reads.
  std::atomic<int> sent_{0};       ///< Lines sent so far.
  std::atomic<bool> stop_{false};  ///< Stop talking.
  bool finished_ = false;          ///< finish() ran.
  std::thread talking_;            ///< The talker's sending thread.
};

/// Runs a ver.1 ChatServer on the parameter's backend for each test.
class V1Reliability : public testing_support::ServerTest<ChatServer, ServerConfig> {
 protected:
  /// Waits until the server counts `count` clients.
  void wait_for_clients(std::int64_t count) {
    ASSERT_TRUE(eventually([&] { return server_->client_count() == count; }))
        << server_->client_count() << " clients, expected " << count;
  }
};

// ver.1 has no frames, so no byte is "bad": NUL, control characters and
// bytes that are not UTF-8, streamed for a second, reach everyone unchanged
// and in order, and a pair chatting meanwhile misses nothing.
TEST_P(V1Reliability, ArbitraryBytesStreamedForASecondReachEveryoneUnchanged) {
  start_server();
  BystanderPair bystanders(server_->port());
  Reader hostile(server_->port());
  wait_for_clients(3);
  bystanders.start();
  std::string sent;
  const auto until = Clock::now() + 1s;
  for (unsigned round = 0; Clock::now() < until; ++round) {
    std::string chunk;
    for (unsigned i = 0; i < 4096; ++i) {
      const char byte = static_cast<char>((round * 7 + i * 13) & 0xFF);
      if (is_binary(byte)) chunk.push_back(byte);
    }
    ASSERT_FALSE(send_all(hostile.socket(), chunk));
    sent += chunk;
    std::this_thread::sleep_for(2ms);
  }
  bystanders.finish();
  EXPECT_TRUE(eventually([&] { return hostile.binary_size() >= sent.size(); }));
  EXPECT_TRUE(hostile.binary() == sent) << "the echo of the binary stream differs";
  EXPECT_EQ(server_->client_count(), 3);
}

// A sender resets in the middle of a line; the others go on.
TEST_P(V1Reliability, AResetInTheMiddleOfALineHarmsNoOne) {
  start_server();
  BystanderPair bystanders(server_->port());
  Socket rude = connect_to("127.0.0.1", server_->port());
  wait_for_clients(3);
  bystanders.start();
  // Binary bytes, so that the pair's text stream does not include them (the
  // server may or may not have read them before the reset: both are fine).
  ASSERT_FALSE(send_all(rude, std::string_view("\x01\x02\xF0\x9F", 4)));
  close_with_reset(rude);
  wait_for_clients(2);
  bystanders.finish();
}

// A receiver resets while the server still has sends outstanding to it.
TEST_P(V1Reliability, AReceiverResetWithSendsOutstandingClosesOnlyIt) {
  start_server();
  Reader sender(server_->port(), false);
  Reader reader(server_->port());
  Socket victim = connect_to("127.0.0.1", server_->port());
  reliability::shrink_receive_buffer(victim, 4096);
  wait_for_clients(3);
  const std::string line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij\n";
  constexpr int kLines = 6000;  // ~340 KiB to the victim: more than its buffers hold
  for (int sent = 0; sent < kLines; sent += 100) {
    ASSERT_TRUE(eventually([&] {
      const auto behind = std::min(sender.received(), reader.received());
      return behind + 200 * line.size() >= static_cast<std::size_t>(sent) * line.size();
    }));
    std::string burst;
    for (int i = 0; i < 100; ++i) burst += line;
    ASSERT_FALSE(send_all(sender.socket(), burst));
  }
  close_with_reset(victim);
  wait_for_clients(2);
  ASSERT_FALSE(send_all(sender.socket(), "after\n"));
  const std::size_t total = kLines * line.size() + 6;
  EXPECT_TRUE(eventually([&] { return reader.received() >= total && sender.received() >= total; }));
  EXPECT_EQ(reader.text().size(), total);
  const std::string text = reader.text();
  EXPECT_EQ(text.substr(text.size() - std::min<std::size_t>(6, text.size())), "after\n");
}

// Half-close: the client's last line still comes back to it, then the end.
TEST_P(V1Reliability, AHalfClosedClientGetsItsLastLineThenTheEnd) {
  start_server();
  Reader alice(server_->port());
  Reader bob(server_->port());
  wait_for_clients(2);
  ASSERT_FALSE(send_all(bob.socket(), "bye\n"));
  shutdown_send(bob.socket());
  EXPECT_TRUE(eventually([&] { return bob.ended(); }));
  EXPECT_EQ(bob.text(), "bye\n");
  EXPECT_TRUE(eventually([&] { return alice.text() == "bye\n"; }));
  wait_for_clients(1);
}

// A client that stops reading is dropped at a small --max-queue-bytes, the
// reason is logged, and the others get every byte.
TEST_P(V1Reliability, AClientThatStopsReadingIsDroppedAtItsCapWithTheReasonLogged) {
  LogRecorder log;
  ServerConfig config;
  config.max_queue_bytes = 16 * 1024;
  config.stall_limit = 300ms;  // the sleeper goes sooner
  start_server(config);
  Reader sender(server_->port(), false);
  Reader reader(server_->port(), false);
  Socket sleeper = connect_to("127.0.0.1", server_->port());
  reliability::shrink_receive_buffer(sleeper, 4096);
  wait_for_clients(3);
  const std::string line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij\n";
  std::size_t sent = 0;
  // Bursts of 50 lines, never more than ~5 KiB ahead of the slower reader
  // (under half the bound, so only the sleeper can pass it).
  while (!log.contains("slow consumer") && sent < 20'000'000) {
    ASSERT_TRUE(eventually([&] {
      return std::min(sender.received(), reader.received()) + 100 * line.size() >= sent + 50 * line.size();
    })) << "readers stalled";
    std::string burst;
    for (int i = 0; i < 50; ++i) burst += line;
    ASSERT_FALSE(send_all(sender.socket(), burst));
    sent += burst.size();
  }
  // Dropped for its stall (…, limit 16384) or at its cap (more than 16384 bytes waiting).
  EXPECT_TRUE(log.contains("limit 16384") || log.contains("more than 16384 bytes waiting")) << log.text();
  wait_for_clients(2);
  EXPECT_TRUE(eventually([&] { return reader.received() >= sent && sender.received() >= sent; }));
  EXPECT_EQ(reader.received(), sent);
  EXPECT_EQ(sender.received(), sent);
}

// stop() during a full-rate broadcast returns and closes everyone.
TEST_P(V1Reliability, StopDuringAFullRateBroadcastReturnsAndClosesEveryone) {
  start_server();
  constexpr int kClients = 12;
  std::vector<std::unique_ptr<Reader>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<Reader>(server_->port(), false));
  wait_for_clients(kClients);
  std::vector<std::thread> flooders;
  for (int s = 0; s < 3; ++s) {
    flooders.emplace_back([&clients, s] {
      const std::string burst(4000, static_cast<char>('a' + s));
      while (!send_all(clients[static_cast<std::size_t>(s)]->socket(), burst)) {
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return clients.back()->received() > 1'000'000; }));
  reliability::must_return_within([&] { server_->stop(); }, 20s, "ChatServer::stop()");
  for (auto& flooder : flooders) flooder.join();  // each one's send failed
  for (auto& client : clients) EXPECT_TRUE(eventually([&] { return client->ended(); }));
  EXPECT_EQ(server_->client_count(), 0);
}

// 2,000 connections at once with max_clients 500: 500 are admitted, the
// other 1,500 are closed at once (ver.1 has no words for it), none hangs.
TEST_P(V1Reliability, AStormOfTwoThousandConnectionsIsAdmittedOrClosed) {
  constexpr std::size_t kStorm = 2000;
  constexpr std::size_t kMax = 500;
  std::string why;
  if (!reliability::raise_descriptor_limit(2 * kStorm + 200, why)) GTEST_SKIP() << why;
  ServerConfig config;
  config.max_clients = kMax;
  start_server(config);
  std::vector<Socket> clients(kStorm);
  std::vector<std::thread> connecting;
  for (std::size_t t = 0; t < 4; ++t) {
    connecting.emplace_back([&, t] {
      for (std::size_t i = t; i < kStorm; i += 4) clients[i] = connect_to("127.0.0.1", server_->port());
    });
  }
  for (auto& thread : connecting) thread.join();
  wait_for_clients(static_cast<std::int64_t>(kMax));
  // A refused client reads the end of its stream; an admitted one reads nothing.
  std::vector<bool> closed(kStorm, false);
  std::size_t closed_count = 0;
  EXPECT_TRUE(eventually([&] {
    for (std::size_t i = 0; i < kStorm; ++i) {
      if (closed[i] || !wait_readable(clients[i], 0)) continue;
      std::byte byte[1];
      std::error_code error;
      if (receive_some(clients[i], byte, error) == 0) {
        closed[i] = true;
        ++closed_count;
      }
    }
    return closed_count >= kStorm - kMax;
  })) << closed_count
      << " closed";
  EXPECT_EQ(closed_count, kStorm - kMax);
  // The admitted ones chat: one line reaches all 500.
  std::size_t first_open = 0;
  while (first_open < kStorm && closed[first_open]) ++first_open;
  ASSERT_LT(first_open, kStorm);
  ASSERT_FALSE(send_all(clients[first_open], "storm over\n"));
  for (std::size_t i = 0; i < kStorm; ++i) {
    if (closed[i]) continue;
    std::string got;
    std::vector<std::byte> buffer(64);
    while (got.size() < 11) {
      if (!wait_readable(clients[i], 30000)) break;
      std::error_code error;
      const std::size_t count = receive_some(clients[i], buffer, error);
      if (count == 0) break;
      got.append(reinterpret_cast<const char*>(buffer.data()), count);
    }
    ASSERT_EQ(got, "storm over\n") << "client " << i;
  }
  clients.clear();
  wait_for_clients(0);
}

// Churn: clients come and go (some with a reset) during a broadcast; the
// stayers lose nothing, and descriptors and the client count return to
// their baseline (Linux counts /proc/self/fd).
TEST_P(V1Reliability, ChurnDuringABroadcastReturnsToTheBaselineAndLosesNothing) {
  start_server();
  const auto seconds = std::chrono::seconds(
      std::getenv("IOCP_CHAT_CHURN_SECONDS") ? std::atoi(std::getenv("IOCP_CHAT_CHURN_SECONDS")) : 2);
  const int baseline_fds = reliability::open_descriptors();
  {
    BystanderPair stayers(server_->port());
    wait_for_clients(2);
    stayers.start();
    std::atomic<int> cycles{0};
    std::vector<std::thread> churners;
    for (int t = 0; t < 3; ++t) {
      churners.emplace_back([&, t] {
        const auto until = Clock::now() + seconds;
        for (int i = 0; Clock::now() < until; ++i) {
          Socket client = connect_to("127.0.0.1", server_->port());
          if (i % 2 == 0) close_with_reset(client);
          cycles.fetch_add(1);
        }
        (void)t;
      });
    }
    for (auto& thread : churners) thread.join();
    EXPECT_GT(cycles.load(), 0);
    wait_for_clients(2);
    stayers.finish();
  }
  wait_for_clients(0);
  if (baseline_fds >= 0) {
    EXPECT_TRUE(eventually([&] { return reliability::open_descriptors() == baseline_fds; }))
        << reliability::open_descriptors() << " descriptors open, baseline " << baseline_fds;
  }
}

// [fairness-tests]
// One client sends as fast as it can (and reads its own echo) while ten
// ordinary clients read 2 MB/s each (less under Wine and the sanitizers: ordinary_reader_pace).
// None of the ten is dropped: the flooder is slowed to their pace instead —
// its next receive waits while a reader's queue is congested, and TCP holds
// its bytes back in its own socket.
TEST_P(V1Reliability, OneFlooderIsSlowedToItsReadersPaceAndNoReaderIsDropped) {
  LogRecorder log;
  ServerConfig config;
  config.max_queue_bytes = 1 << 20;  // congested at 256 KiB
  // The default stall limit (2 s) is for 2 MB/s readers; where they read
  // slower (ordinary_reader_pace), a send through the kernel's buffers takes
  // longer to complete, so the limit grows in proportion.
  const std::size_t pace = reliability::ordinary_reader_pace(GetParam());
  config.stall_limit = std::chrono::milliseconds(std::size_t{2000} * 2'000'000 / pace);
  start_server(config);
  constexpr int kReaders = 10;
  std::vector<std::unique_ptr<reliability::PacedReader>> readers;
  for (int i = 0; i < kReaders; ++i) {
    Socket socket = connect_to("127.0.0.1", server_->port());
    reliability::shrink_receive_buffer(socket, 64 * 1024);  // the backlog shows in the server, not the kernel
    readers.push_back(std::make_unique<reliability::PacedReader>(std::move(socket), pace));
  }
  Reader flooder(server_->port(), false);  // reads its echo as fast as it can
  wait_for_clients(kReaders + 1);

  const std::string chunk(16 * 1024, 'f');
  std::size_t sent = 0;
  const auto start = Clock::now();
  // At least 2 s, and on until the server has pushed back at least once
  // (the kernel's socket buffers take the first megabytes; a slow build
  // floods more slowly), at most 20 s.
  const auto flooding = [&] {
    const auto elapsed = Clock::now() - start;
    return elapsed < 20s && (elapsed < 2s || server_->senders_paused() == 0);
  };
  while (flooding()) {
    ASSERT_FALSE(send_all(flooder.socket(), chunk));
    sent += chunk.size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& reader : readers) EXPECT_FALSE(reader->ended()) << "an ordinary reader was dropped";
  EXPECT_FALSE(log.contains("slow consumer")) << log.text();
  EXPECT_EQ(server_->client_count(), kReaders + 1);
  EXPECT_GT(server_->senders_paused(), 0) << "the flooder was never slowed";
  RecordProperty("flooder_bytes_per_second", static_cast<int>(static_cast<double>(sent) / seconds));
  std::printf("flooder sent %.1f MB/s; readers read %.1f MB each\n",
              static_cast<double>(sent) / seconds / 1e6,
              static_cast<double>(readers.front()->received()) / 1e6);
}

// A sender whose readers all keep up is never slowed: with the readers at
// most a window behind, no queue ever gets near a quarter of its bound.
TEST_P(V1Reliability, ASenderWhoseReadersKeepUpIsNeverSlowed) {
  ServerConfig config;
  config.max_queue_bytes = 1 << 20;
  start_server(config);
  std::vector<std::unique_ptr<Reader>> readers;
  for (int i = 0; i < 10; ++i) readers.push_back(std::make_unique<Reader>(server_->port(), false));
  Reader sender(server_->port(), false);
  wait_for_clients(11);
  const std::string chunk(16 * 1024, 's');
  // Less under Wine, whose sockets are slower: the point is the count, not the volume.
  const std::size_t total = GetParam() == Backend::iocp ? std::size_t{2} << 20 : std::size_t{8} << 20;
  const auto slowest = [&] {
    std::size_t least = sender.received();
    for (const auto& reader : readers) least = std::min(least, reader->received());
    return least;
  };
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
    ASSERT_TRUE(eventually([&] { return slowest() + 4 * chunk.size() >= sent + chunk.size(); }))
        << "readers stalled";
    ASSERT_FALSE(send_all(sender.socket(), chunk));
  }
  EXPECT_TRUE(eventually([&] { return slowest() == total; }));
  EXPECT_EQ(server_->senders_paused(), 0) << "a sender was slowed although every reader kept up";
}

// Many clients that stop reading, one fast sender, two readers: the queues
// together stay near --max-total-queue-bytes (the largest are dropped; the
// last few, once the total is low again, by the stall limit), the readers
// get everything, and the process's resident memory shows it. Without the
// total bound, each of the 60 would hold a congested megabyte.
TEST_P(V1Reliability, ClientsThatStopReadingCannotPushTheServerPastItsTotalBound) {
  LogRecorder log;
  ServerConfig config;
  config.max_queue_bytes = 4 << 20;
  config.max_total_queue_bytes = 16 << 20;
  start_server(config);
  constexpr int kSleepers = 60;  // 60 x 1 MiB congested queues, were nothing bounding the total
  std::vector<Socket> sleepers;
  for (int i = 0; i < kSleepers; ++i) {
    sleepers.push_back(connect_to("127.0.0.1", server_->port()));
    reliability::shrink_receive_buffer(sleepers.back(), 4096);
  }
  Reader sender(server_->port(), false);
  Reader reader(server_->port(), false);
  wait_for_clients(kSleepers + 2);
  const std::size_t baseline = reliability::resident_bytes().value_or(0);
  std::size_t peak = 0;
  {
    reliability::PeakResidentMemory memory;
    const std::string chunk(16 * 1024, 'm');
    constexpr std::size_t kTotal = std::size_t{8} << 20;  // far past what the kernel holds for each
    for (std::size_t sent = 0; sent < kTotal; sent += chunk.size()) {
      ASSERT_TRUE(eventually([&] {
        return std::min(sender.received(), reader.received()) + 8 * chunk.size() >= sent + chunk.size();
      })) << "the readers stalled at "
          << reader.received() << " bytes";
      ASSERT_FALSE(send_all(sender.socket(), chunk));
    }
    EXPECT_TRUE(eventually([&] { return reader.received() == kTotal && sender.received() == kTotal; }));
    peak = memory.peak();
  }
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; })) << "sleepers still connected";
  EXPECT_TRUE(log.contains("queues together passed 16777216")) << log.text();
  reliability::expect_growth_near_bound(baseline, peak, config.max_total_queue_bytes);
}
// [fairness-tests]

INSTANTIATE_TEST_SUITE_P(Backends, V1Reliability, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::v1
