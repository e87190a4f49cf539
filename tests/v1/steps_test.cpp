// steps_test.cpp — the tests of ver.1's four steps from the 2018 server
// (v1_basic_broadcast/steps/): each step's test shows what that step's one
// change fixes, on every backend, in-process on 127.0.0.1 with a free port.
//   Step1Test — one write in flight: a client that stops reading no longer
//     freezes the others (the 2018 server's test shows the freeze), nothing
//     is lost, and each sender's bytes arrive in order.
//   Step2Test — safe close: clients that reset or leave while a broadcast is
//     being sent to them; the server keeps serving. Under the asan preset,
//     step 1's server fails it with a heap-use-after-free.
//   Step3Test — bounded queues: the client that stops reading is dropped
//     alone, before the flood is large; the others go on chatting.
//   Step4Test — batching: a burst of small lines arrives complete and in
//     order; with one worker, it goes in fewer sends than chunks.
// Each test prints what it measured ("[ step1 ] epoll: ...").
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "iocp_chat/socket.hpp"
#include "port_fixture.hpp"
#include "step1_one_write_in_flight.hpp"
#include "step2_safe_close.hpp"
#include "step3_bounded_queues.hpp"
#include "step4_batching.hpp"

#ifndef _WIN32
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

namespace iocp_chat {
namespace {

using namespace std::chrono_literals;
using testing_support::eventually;

/// The flood's filler byte; a Reader counts these but does not keep them.
constexpr char kFiller = '.';

/// Reads one client's socket on a thread of its own until the end of the
/// stream: a client that always reads. It keeps every byte but the filler.
class Reader {
 public:
  /// Starts reading `socket`, which must outlive this Reader.
  explicit Reader(const Socket& socket) : thread_([this, &socket] { run(socket); }) {}
  /// Stops reading (within 50 ms) and joins the thread.
  ~Reader() {
    done_ = true;
    thread_.join();
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  /// Bytes received so far, filler included.
  std::size_t size() {
    const std::lock_guard lock(mutex_);
    return size_;
  }
  /// Everything received so far but the filler.
  std::string text() {
    const std::lock_guard lock(mutex_);
    return text_;
  }
  /// True once the stream has ended (end of stream, or an error such as a reset).
  bool ended() const { return ended_; }

  /// True if `needle` has arrived, or arrives within `within`.
  bool saw(const std::string& needle, std::chrono::milliseconds within) {
    std::unique_lock lock(mutex_);
    return arrived_.wait_for(lock, within, [&] { return text_.find(needle) != std::string::npos; });
  }

 private:
  void run(const Socket& socket) {
    std::vector<std::byte> buffer(65536);
    while (!done_) {
      if (!wait_readable(socket, 50)) continue;
      std::error_code error;
      const std::size_t count = receive_some(socket, buffer, error);
      if (error || count == 0) break;
      {
        const std::lock_guard lock(mutex_);
        size_ += count;
        for (const std::byte byte : std::span(buffer).first(count)) {
          if (static_cast<char>(byte) != kFiller) text_.push_back(static_cast<char>(byte));
        }
      }
      arrived_.notify_all();
    }
    ended_ = true;
  }

  std::mutex mutex_;                 ///< Guards text_ and size_.
  std::condition_variable arrived_;  ///< Notified when bytes arrive.
  std::string text_;                 ///< Everything received but the filler.
  std::size_t size_ = 0;             ///< Bytes received.
  std::atomic<bool> ended_{false};   ///< The stream ended.
  std::atomic<bool> done_{false};    ///< The destructor asks the thread to end.
  std::thread thread_;               ///< Started last, once the members above exist.
};

/// A client that asks for a small receive buffer (4 KiB) before it connects,
/// so that its buffers fill with little data once it stops reading.
Socket connect_with_small_receive_buffer(std::uint16_t port) {
  Socket socket(::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
  const int size = 4096;
  ::setsockopt(socket.native(), SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char*>(&size), sizeof size);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(socket.native(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ADD_FAILURE() << "cannot connect a client with a small receive buffer";
  }
  return socket;
}

/// What a flood did: bytes sent, and whether it stopped because the
/// flooder's own echo stopped coming back (the server froze).
struct FloodResult {
  std::size_t sent = 0;  ///< Bytes of filler sent.
  bool stalled = false;  ///< No echo for 30 s: the chat was frozen.
};

/// Sends 1 KiB of filler after another from `flooder`, never more than
/// 64 KiB ahead of the slowest of the clients that read (`readers`, the
/// flooder's own among them), until `limit` bytes are sent or `stop()`
/// holds. So the server never queues more than 64 KiB for a client that
/// reads, however slowly its thread runs; only the client that does not read
/// falls behind.
FloodResult paced_flood(const Socket& flooder, const std::vector<Reader*>& readers, std::size_t limit,
                        const std::function<bool()>& stop) {
  const std::string chunk(1024, kFiller);
  FloodResult result;
  const auto slowest = [&] {
    std::size_t least = SIZE_MAX;
    for (Reader* reader : readers) least = std::min(least, reader->size());
    return least;
  };
  while (result.sent < limit && !stop()) {
    if (!eventually([&] { return result.sent < slowest() + 65536 || stop(); }, 30s)) {
      result.stalled = true;
      break;
    }
    if (send_all(flooder, chunk)) break;
    result.sent += chunk.size();
  }
  return result;
}

/// The bytes a sender writes in the ordering tests: `lines` numbers, each
/// digit d written as the byte (sender << 4 | d) and each number ended by
/// (sender << 4 | 10). Any byte names its sender, so a reader can pull each
/// sender's bytes out of the merged stream and compare them with these.
std::vector<std::string> numbered_lines(unsigned sender, int lines) {
  std::vector<std::string> out;
  for (int n = 0; n < lines; ++n) {
    std::string line;
    for (const char digit : std::to_string(n))
      line.push_back(static_cast<char>(sender << 4 | static_cast<unsigned>(digit - '0')));
    line.push_back(static_cast<char>(sender << 4 | 10));
    out.push_back(line);
  }
  return out;
}

/// The `sender`'s bytes out of a merged stream, in the order they arrived.
std::string bytes_of(const std::string& stream, unsigned sender) {
  std::string out;
  for (const char byte : stream) {
    if ((static_cast<unsigned char>(byte) >> 4) == sender) out.push_back(byte);
  }
  return out;
}

/// How the senders of expect_every_sender_in_order take turns.
enum class Turns {
  threads,     ///< One thread per sender, all at once: the scheduler interleaves them.
  round_robin  ///< One thread sends line n of every sender, then line n + 1.
};

/// Connects `senders` clients plus one that only reads; each sender sends
/// `lines` numbered lines, one send() each, all at once. Every client must
/// then receive every byte, each sender's bytes exactly in the order sent.
void expect_every_sender_in_order(std::uint16_t port, unsigned senders, int lines,
                                  Turns turns = Turns::threads) {
  std::vector<Socket> clients;
  for (unsigned i = 0; i <= senders; ++i) {
    clients.push_back(connect_to("127.0.0.1", port));
    set_no_delay(clients.back());  // a small send leaves at once, as a small chunk
  }
  std::vector<std::unique_ptr<Reader>> readers;
  for (const Socket& client : clients) readers.push_back(std::make_unique<Reader>(client));
  // Wait until the server broadcasts to all of them: a marker from the last.
  const std::string hello = "ready\n";
  ASSERT_FALSE(send_all(clients.back(), hello));
  for (auto& reader : readers) ASSERT_TRUE(reader->saw(hello, 30s));

  std::vector<std::vector<std::string>> lines_of(senders);
  std::vector<std::string> sent(senders);
  std::size_t total = hello.size();
  for (unsigned k = 0; k < senders; ++k) {
    lines_of[k] = numbered_lines(k, lines);
    for (const std::string& line : lines_of[k]) sent[k] += line;
    total += sent[k].size();
  }
  if (turns == Turns::round_robin) {
    for (std::size_t n = 0; n < lines_of[0].size(); ++n) {
      for (unsigned k = 0; k < senders; ++k) ASSERT_FALSE(send_all(clients[k], lines_of[k][n]));
    }
  } else {
    std::vector<std::thread> threads;
    for (unsigned k = 0; k < senders; ++k) {
      threads.emplace_back([&, k] {
        for (const std::string& line : lines_of[k]) {
          if (send_all(clients[k], line)) return;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  for (std::size_t i = 0; i < readers.size(); ++i) {
    ASSERT_TRUE(eventually([&] { return readers[i]->size() >= total; }, 60s))
        << "client " << i << " received " << readers[i]->size() << " of " << total << " bytes";
    EXPECT_EQ(readers[i]->size(), total) << "client " << i;
    const std::string text = readers[i]->text().substr(hello.size());  // it came first, to all
    for (unsigned k = 0; k < senders; ++k) {
      EXPECT_TRUE(bytes_of(text, k) == sent[k])
          << "client " << i << ": sender " << k << "'s bytes out of order";
    }
  }
}

/// Runs one step's server on the parameter's backend for each test.
template <typename Server, typename Config>
class StepTest : public testing_support::ServerTest<Server, Config> {
 protected:
  /// Connects a client to the server under test.
  Socket connect_client() { return connect_to("127.0.0.1", this->server_->port()); }

  /// Waits until the server has `count` clients in all.
  void expect_clients(std::int64_t count) {
    EXPECT_TRUE(eventually([&] { return this->server_->client_count() == count; }))
        << "the server has " << this->server_->client_count() << " clients, not " << count;
  }

  /// The backend's name, for the printed measurements.
  std::string backend() const { return std::string(to_string(this->GetParam())); }
};

using Step1Test = StepTest<step1::ChatServer, step1::ServerConfig>;  ///< One write in flight.
using Step2Test = StepTest<step2::ChatServer, step2::ServerConfig>;  ///< Safe close.
using Step3Test = StepTest<step3::ChatServer, step3::ServerConfig>;  ///< Bounded queues.
using Step4Test = StepTest<step4::ChatServer, step4::ServerConfig>;  ///< Batching.

// [step1-test]
// The 2018 server froze after about 6 MiB (Server2018Test). Here 8 MiB go
// past a client that never reads, and the others keep chatting.
TEST_P(Step1Test, OneClientThatStopsReadingNoLongerFreezesTheOthers) {
  start_server();
  Socket stuck = connect_with_small_receive_buffer(server_->port());  // does not read, for now
  Socket flooder = connect_client();
  Socket good = connect_client();
  Socket bob = connect_client();
  expect_clients(4);
  Reader flooder_echo(flooder);
  Reader good_reader(good);
  Reader bob_echo(bob);

  const FloodResult flood =
      paced_flood(flooder, {&flooder_echo, &good_reader, &bob_echo}, 8 << 20, [] { return false; });
  ASSERT_FALSE(flood.stalled) << "the chat froze after " << flood.sent << " bytes flooded";
  const std::string line = "bob: is anyone there?\n";
  const auto sent_at = std::chrono::steady_clock::now();
  ASSERT_FALSE(send_all(bob, line));
  EXPECT_TRUE(good_reader.saw(line, 30s)) << "bob's line did not reach the good reader";
  const auto waited = std::chrono::steady_clock::now() - sent_at;
  EXPECT_TRUE(bob_echo.saw(line, 30s));
  EXPECT_TRUE(flooder_echo.saw(line, 30s));
  const std::size_t stuck_holds = unread_bytes(stuck);

  // Nothing was lost: the stuck client now reads, and gets every byte.
  Reader stuck_reader(stuck);
  const std::size_t total = flood.sent + line.size();
  for (Reader* reader : {&stuck_reader, &flooder_echo, &good_reader, &bob_echo}) {
    EXPECT_TRUE(eventually([&] { return reader->size() >= total; }, 60s))
        << "a client received " << reader->size() << " of " << total << " bytes";
  }
  EXPECT_TRUE(stuck_reader.saw(line, 0ms));
  std::printf(
      "[ step1 ] %s: %.1f MiB flooded past a client that did not read (it held %zu bytes unread); "
      "bob's line reached the others in %lld ms; then the stuck client read all %zu bytes\n",
      backend().c_str(), static_cast<double>(flood.sent) / (1 << 20), stuck_holds,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()), total);
}
// [step1-test]

TEST_P(Step1Test, EachSendersBytesArriveInOrder) {
  start_server();
  expect_every_sender_in_order(server_->port(), 4, 2000);
}

// [step2-test]
// 150 clients join while a flood is broadcast; each reads its first bytes,
// then resets, leaves, or resets in the middle of a line — while sends to
// it are in flight. Step 1 frees such a client when its receive ends, and
// its send's completion then names freed memory: under the asan preset,
// this test reports a heap-use-after-free for step 1's server.
TEST_P(Step2Test, ClientsThatResetOrLeaveMidBroadcastDoNotBreakTheServer) {
  start_server();
  Socket flooder = connect_client();
  Socket good = connect_client();
  Socket bob = connect_client();
  expect_clients(3);
  Reader flooder_echo(flooder);
  Reader good_reader(good);
  Reader bob_echo(bob);
  std::atomic<bool> stop_flood{false};
  FloodResult flood;
  std::thread flooding([&] {
    flood = paced_flood(flooder, {&flooder_echo, &good_reader, &bob_echo}, SIZE_MAX,
                        [&] { return stop_flood.load(); });
  });

  int received_first = 0;
  for (int i = 0; i < 150; ++i) {
    Socket churn = connect_with_small_receive_buffer(server_->port());
    if (wait_readable(churn, 30000)) ++received_first;  // a send to it has begun
    if (i % 3 == 1) {
      churn.close();  // leaves (FIN) with bytes unread
    } else {
      if (i % 3 == 2) (void)send_all(churn, std::string_view("half a li"));
      close_with_reset(churn);  // RST
    }
  }
  stop_flood = true;
  flooding.join();
  EXPECT_FALSE(flood.stalled) << "the chat froze during the churn";
  expect_clients(3);
  const std::string line = "bob: still here\n";
  ASSERT_FALSE(send_all(bob, line));
  EXPECT_TRUE(good_reader.saw(line, 30s));
  EXPECT_TRUE(flooder_echo.saw(line, 30s));
  EXPECT_TRUE(bob_echo.saw(line, 30s));
  std::printf(
      "[ step2 ] %s: 150 clients reset or left mid-broadcast (%d had received bytes first), "
      "%.1f MiB flooded meanwhile; the server kept serving\n",
      backend().c_str(), received_first, static_cast<double>(flood.sent) / (1 << 20));
}
// [step2-test]

// [step3-test]
// The same stuck client as in step 1, with a 256 KiB queue bound: it is
// dropped alone long before 64 MiB have been flooded (step 2 would hold
// them all for it), and the others go on.
TEST_P(Step3Test, AClientThatStopsReadingIsDroppedAloneAndTheOthersGoOn) {
  step3::ServerConfig config;
  config.max_queue_bytes = 256 << 10;
  start_server(config);
  Socket stuck = connect_with_small_receive_buffer(server_->port());
  Socket flooder = connect_client();
  Socket good = connect_client();
  Socket bob = connect_client();
  expect_clients(4);
  Reader flooder_echo(flooder);
  Reader good_reader(good);
  Reader bob_echo(bob);

  const FloodResult flood = paced_flood(flooder, {&flooder_echo, &good_reader, &bob_echo}, 64 << 20,
                                        [&] { return server_->client_count() < 4; });
  ASSERT_FALSE(flood.stalled) << "the chat froze after " << flood.sent << " bytes flooded";
  ASSERT_EQ(server_->client_count(), 3) << "no client was dropped after " << flood.sent << " bytes flooded";

  const std::string line = "bob: the others still chat\n";
  ASSERT_FALSE(send_all(bob, line));
  EXPECT_TRUE(good_reader.saw(line, 30s));
  EXPECT_TRUE(flooder_echo.saw(line, 30s));
  EXPECT_TRUE(bob_echo.saw(line, 30s));
  EXPECT_EQ(server_->client_count(), 3) << "a client that reads was dropped too";

  // The stuck client reads what reached it, then sees the end of its stream.
  Reader stuck_reader(stuck);
  EXPECT_TRUE(eventually([&] { return stuck_reader.ended(); }, 30s))
      << "the stuck client was not disconnected";
  EXPECT_LT(stuck_reader.size(), flood.sent) << "the dropped client got everything";
  EXPECT_FALSE(stuck_reader.saw(line, 0ms)) << "the dropped client got a line sent after it was dropped";
  std::printf(
      "[ step3 ] %s: the client that did not read was dropped after %.1f MiB flooded; "
      "it had received %.1f MiB; the other three went on\n",
      backend().c_str(), static_cast<double>(flood.sent) / (1 << 20),
      static_cast<double>(stuck_reader.size()) / (1 << 20));
}
// [step3-test]

// [step4-test]
// 8 clients each send 500 small numbered lines, one send() each, all at
// once, to 9 clients: every byte arrives, each sender's in order.
TEST_P(Step4Test, ABurstOfSmallLinesArrivesCompleteAndInOrder) {
  start_server();
  expect_every_sender_in_order(server_->port(), 8, 500);
}

// The same lines, sent in turns (line n of each sender, then line n + 1)
// to a server with one worker: while it handles one batch, the other
// senders' lines arrive, so its next wait returns several receives at once,
// and their chunks leave in one send per client. (With 2 × cores workers,
// or senders the scheduler happens to run one after another, each receive
// may come alone: then nothing is batched, which is correct but shows
// nothing.)
TEST_P(Step4Test, ABurstOfSmallLinesGoesInFewerSendsThanChunks) {
  step4::ServerConfig config;
  config.threads = 1;
  start_server(config);
  expect_every_sender_in_order(server_->port(), 8, 500, Turns::round_robin);
  const step4::Stats stats = server_->stats();
  EXPECT_LT(stats.sends_started, stats.chunks_queued);
  std::printf("[ step4 ] %s: %lld chunks queued for 9 clients went in %lld sends (%.1f chunks a send)\n",
              backend().c_str(), static_cast<long long>(stats.chunks_queued),
              static_cast<long long>(stats.sends_started),
              static_cast<double>(stats.chunks_queued) / static_cast<double>(stats.sends_started));
}
// [step4-test]

TEST_P(Step4Test, AClientThatStopsReadingIsStillDroppedAlone) {
  step4::ServerConfig config;
  config.max_queue_bytes = 256 << 10;
  start_server(config);
  Socket stuck = connect_with_small_receive_buffer(server_->port());
  Socket flooder = connect_client();
  expect_clients(2);
  Reader flooder_echo(flooder);
  const FloodResult flood =
      paced_flood(flooder, {&flooder_echo}, 64 << 20, [&] { return server_->client_count() < 2; });
  EXPECT_FALSE(flood.stalled);
  EXPECT_EQ(server_->client_count(), 1) << "no client was dropped after " << flood.sent << " bytes flooded";
}

INSTANTIATE_TEST_SUITE_P(Backends, Step1Test, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, Step2Test, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, Step3Test, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, Step4Test, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat
