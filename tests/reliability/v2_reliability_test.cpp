// v2_reliability_test.cpp — the ver.2 server under hostile input, faults,
// load and churn: in-process on 127.0.0.1:0, once per backend (IOCP under
// Wine in the Windows build), with real sockets only.
//
// IOCP ideas checked from the outside: each connection is judged alone
// (its bad bytes, its reset, its slowness end that one connection and
// nothing else); a connection lives until its last outstanding operation
// completes, so resets and shutdown in the middle of sends free nothing
// early (the sanitizer builds run these tests); the sweep on the workers'
// wait timeout closes clients that never log in.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "chat_server.hpp"
#include "common/protocol/packets.hpp"
#include "frame_client.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"
#include "port_fixture.hpp"
#include "reliability_support.hpp"

namespace iocp_chat::v2 {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using reliability::kDeadline;
using reliability::LogRecorder;
using test::FrameClient;
using test::logged_in_client;
using testing_support::eventually;

/// The bytes of an encoded packet, as text for send_raw.
std::string bytes_of(const Packet& packet) {
  const auto frame = encode(packet);
  return {reinterpret_cast<const char*>(frame.data()), frame.size()};
}

/// A frame built by hand: header, then `field` padded with NUL to `field_size`.
std::string raw_frame(std::uint16_t type, std::string_view field, std::size_t field_size) {
  std::string frame;
  const std::size_t length = kHeaderSize + field_size;
  frame.push_back(static_cast<char>(length >> 8));
  frame.push_back(static_cast<char>(length & 0xFF));
  frame.push_back(static_cast<char>(type >> 8));
  frame.push_back(static_cast<char>(type & 0xFF));
  frame.append(field);
  frame.resize(length, '\0');
  return frame;
}

/// Two logged-in clients that chat all through a test: one talks (a message
/// every millisecond), both read on threads of their own and check that
/// every message arrives, once, in order. Whatever else the test does to the
/// server must not disturb them.
class BystanderPair {
 public:
  /// Logs both in, starts talking and reading; returns once the first message has arrived.
  explicit BystanderPair(std::uint16_t port) : talker_(port), listener_(port) {
    EXPECT_EQ(talker_.login("bystander1"), LoginStatus::ok);
    EXPECT_EQ(listener_.login("bystander2"), LoginStatus::ok);
    EXPECT_EQ(talker_.expect<UserJoined>().user_id, "bystander2");
    readers_.emplace_back([this] { read(talker_, talker_got_); });
    readers_.emplace_back([this] { read(listener_, listener_got_); });
    talking_ = std::thread([this] {
      while (!stop_.load()) {
        const std::string frame = bytes_of(ChatRequest{std::to_string(sent_.load())});
        if (send_all(talker_.socket(), frame)) break;
        sent_.fetch_add(1);
        std::this_thread::sleep_for(1ms);
      }
    });
    // The chat is under way before the test does anything to the server
    // (on a loaded machine the talker's thread may start late).
    EXPECT_TRUE(eventually([&] { return listener_got_.load() > 0; }, kDeadline))
        << "the bystanders never chatted";
  }
  BystanderPair(const BystanderPair&) = delete;
  BystanderPair& operator=(const BystanderPair&) = delete;
  ~BystanderPair() { finish(); }

  /// Stops talking; fails the test unless both received every message in order.
  void finish() {
    if (finished_) return;
    finished_ = true;
    stop_.store(true);
    talking_.join();
    const bool all =
        eventually([&] { return talker_got_.load() >= sent_.load() && listener_got_.load() >= sent_.load(); },
                   kDeadline);
    done_.store(true);
    for (auto& reader : readers_) reader.join();
    EXPECT_TRUE(all) << "bystanders got " << talker_got_.load() << " and " << listener_got_.load() << " of "
                     << sent_.load();
    EXPECT_EQ(wrong_.load(), 0) << "bystander messages out of order or altered";
    EXPECT_GT(sent_.load(), 0);
  }

 private:
  /// Counts the talker's broadcasts as they arrive and checks their order.
  void read(FrameClient& client, std::atomic<int>& got) {
    while (!done_.load()) {
      const auto packet = client.next(100ms);
      if (!packet) {
        if (client.ended()) return;
        continue;
      }
      const auto* chat = std::get_if<ChatBroadcast>(&*packet);
      if (chat == nullptr || chat->user_id != "bystander1") continue;  // others may chat too
      if (chat->message != std::to_string(got.load())) wrong_.fetch_add(1);
      got.fetch_add(1);
    }
  }

  FrameClient talker_;                ///< Sends and reads.
  FrameClient listener_;              ///< Only reads.
  std::atomic<int> sent_{0};          ///< Messages sent.
  std::atomic<int> talker_got_{0};    ///< Received by the talker (its own echo).
  std::atomic<int> listener_got_{0};  ///< Received by the listener.
  std::atomic<int> wrong_{0};         ///< Out of order or altered.
  std::atomic<bool> stop_{false};     ///< Stop talking.
  std::atomic<bool> done_{false};     ///< Stop reading.
  bool finished_ = false;             ///< finish() ran.
  std::thread talking_;               ///< The talker's sending thread.
  std::vector<std::thread> readers_;  ///< One per client.
};

/// Runs a ver.2 ChatServer on the parameter's backend for each test.
class V2Reliability : public testing_support::ServerTest<ChatServer, ServerConfig> {
 protected:
  /// A connected client logged in as `id` (asserting OK).
  std::unique_ptr<FrameClient> member(const std::string& id) { return logged_in_client(server_->port(), id); }

  /// Sends `bytes` from a new client; expects ERROR `code`, then the close.
  void expect_refused(const std::string& bytes, ErrorCode code, const std::string& what) {
    FrameClient client(server_->port());
    client.send_raw(bytes);
    const auto packet = client.next();
    ASSERT_TRUE(packet.has_value()) << what << ": closed without ERROR";
    ASSERT_TRUE(std::holds_alternative<ErrorPacket>(*packet)) << what;
    EXPECT_EQ(std::get<ErrorPacket>(*packet).code, code) << what;
    EXPECT_TRUE(client.sees_close()) << what << ": still open";
  }
};

// --- hostile input ---------------------------------------------------------

// Every bad header class (server_test.cpp has one of each; here all of
// them): each gets its ERROR code and is closed, while a bystander pair
// keeps chatting and misses nothing.
TEST_P(V2Reliability, EveryBadHeaderIsRefusedWithItsCodeWhileBystandersChat) {
  start_server();
  BystanderPair bystanders(server_->port());
  struct Case {
    std::string bytes;
    ErrorCode code;
    const char* what;
  };
  const std::vector<Case> cases = {
      {std::string("\x00\x00\x00\x01", 4), ErrorCode::malformed_frame, "length 0"},
      {std::string("\x00\x01\x00\x03", 4), ErrorCode::malformed_frame, "length 1"},
      {std::string("\x00\x02\x00\x03", 4), ErrorCode::malformed_frame, "length 2"},
      {std::string("\x00\x03\x00\x99", 4), ErrorCode::malformed_frame, "length 3, unknown type"},
      {std::string("\x00\x04\x00\x01", 4), ErrorCode::malformed_frame, "LOGIN_REQUEST of 4 bytes"},
      {std::string("\x00\x13\x00\x01", 4), ErrorCode::malformed_frame, "LOGIN_REQUEST of 19 bytes"},
      {std::string("\x00\x23\x00\x03", 4), ErrorCode::malformed_frame, "CHAT_REQUEST of 35 bytes"},
      {std::string("\x00\x25\x00\x03", 4), ErrorCode::malformed_frame, "CHAT_REQUEST of 37 bytes"},
      {std::string("\xFF\xFF\x00\x01", 4), ErrorCode::malformed_frame, "LOGIN_REQUEST of 0xFFFF bytes"},
      {std::string("\xFF\xFF\x00\x03", 4), ErrorCode::malformed_frame, "CHAT_REQUEST of 0xFFFF bytes"},
      {std::string("\xFF\xFF\xFF\xFF", 4), ErrorCode::unknown_type, "0xFFFF bytes of type 0xFFFF"},
      {std::string("\x00\x04\x00\x00", 4), ErrorCode::unknown_type, "type 0"},
      {std::string("\x00\x08\x00\x08\x00\x00\x00\x00", 8), ErrorCode::unknown_type, "type 8"},
      {std::string("\x00\x04\x01\x00", 4), ErrorCode::unknown_type, "type 0x0100"},
      {bytes_of(LoginResponse{LoginStatus::ok, "x"}), ErrorCode::unknown_type, "a LOGIN_RESPONSE"},
      {bytes_of(ChatBroadcast{"x", "y"}), ErrorCode::unknown_type, "a CHAT_BROADCAST"},
      {bytes_of(UserJoined{"x"}), ErrorCode::unknown_type, "a USER_JOINED"},
      {bytes_of(UserLeft{"x"}), ErrorCode::unknown_type, "a USER_LEFT"},
      // A good frame first, then a bad header: the good one is answered, then the ERROR.
      {bytes_of(ChatRequest{"hi"}) + std::string("\x00\x02\x00\x03", 4), ErrorCode::not_logged_in,
       "CHAT_REQUEST before login, then garbage"},
  };
  for (const Case& bad : cases) expect_refused(bad.bytes, bad.code, bad.what);
  bystanders.finish();
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; }));
}

// Garbage, then a stream that does not stop: the server answers the first
// bad header, stops reading frames, and closes the connection within the
// leave time even though the client keeps sending. Bystanders unaffected.
TEST_P(V2Reliability, GarbageFollowedByAnEndlessStreamIsRefusedAndClosedInBoundedTime) {
  ServerConfig config;
  config.leave_time = 500ms;
  start_server(config);
  BystanderPair bystanders(server_->port());
  FrameClient hostile(server_->port());
  std::atomic<bool> send_failed{false};
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    std::string junk = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";  // type 0x5420: unknown
    junk.resize(4096, '\xA5');
    const auto until = Clock::now() + 3s;
    while (!stop.load() && Clock::now() < until) {
      if (send_all(hostile.socket(), junk)) {
        send_failed.store(true);
        return;
      }
    }
  });
  const auto packet = hostile.next();
  ASSERT_TRUE(packet.has_value());
  ASSERT_TRUE(std::holds_alternative<ErrorPacket>(*packet));
  EXPECT_EQ(std::get<ErrorPacket>(*packet).code, ErrorCode::unknown_type);
  EXPECT_TRUE(hostile.sees_close()) << "no end of stream after the ERROR";
  // The server reads and drops the flood only for leave_time, then closes:
  // the flood's sends start failing (a reset) well before the flood ends.
  flood.join();
  stop.store(true);
  EXPECT_TRUE(send_failed.load()) << "the server kept reading a refused client for 3 s";
  bystanders.finish();
}

// Rule 7 end to end: a stream of frames cut at every offset gives the same
// answers as the stream in one segment; so does one segment of 200 frames.
TEST_P(V2Reliability, FramesCutAtEveryOffsetOrManyInOneSegmentGiveTheSameAnswers) {
  start_server();
  const auto stream_for = [](const std::string& id) {
    return bytes_of(LoginRequest{id}) + bytes_of(ChatRequest{"a"}) + bytes_of(ChatRequest{"bb"}) +
           bytes_of(LoginRequest{id});
  };
  // What a client reads back, presence frames left out (other test clients come and go).
  const auto answers = [](FrameClient& client) {
    std::vector<Packet> got;
    while (got.size() < 4) {
      const auto packet = client.next();
      if (!packet) break;
      if (std::holds_alternative<UserJoined>(*packet) || std::holds_alternative<UserLeft>(*packet)) continue;
      got.push_back(*packet);
    }
    return got;
  };
  const std::size_t total = stream_for("k0").size();
  for (std::size_t cut = 0; cut < total; ++cut) {
    const std::string id = "k" + std::to_string(cut);
    const std::string stream = stream_for(id);
    FrameClient client(server_->port());
    set_no_delay(client.socket());
    if (cut == 0) {
      client.send_raw(stream);  // the reference: everything in one segment
    } else {
      client.send_raw(std::string_view(stream).substr(0, cut));
      std::this_thread::sleep_for(1ms);  // let the first piece travel alone (the test passes either way)
      client.send_raw(std::string_view(stream).substr(cut));
    }
    const std::vector<Packet> expected = {LoginResponse{LoginStatus::ok, id}, ChatBroadcast{id, "a"},
                                          ChatBroadcast{id, "bb"},
                                          LoginResponse{LoginStatus::already_logged_in, id}};
    EXPECT_EQ(answers(client), expected) << "cut at byte " << cut;
  }
  // Many frames in one segment, in order. The clients above have closed;
  // once the server has let them all go, no USER_LEFT of theirs can come
  // between these broadcasts.
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 0; }));
  auto many = member("many");
  std::string segment;
  for (int i = 0; i < 200; ++i) segment += bytes_of(ChatRequest{std::to_string(i)});
  many->send_raw(segment);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(many->expect<ChatBroadcast>().message, std::to_string(i));
}

// The text rules at their edges, end to end (protocol_test.cpp checks them
// on the codec; server_test.cpp has a few ids and one bad message).
TEST_P(V2Reliability, IdsAndMessagesAtTheEdgesGetTheSpecsAnswer) {
  start_server();
  auto watcher = member("watcher");
  constexpr std::uint16_t kLogin = 0x0001;
  constexpr std::uint16_t kChat = 0x0003;
  const std::string hangul = "\xED\x95\x9C";  // 한, 3 bytes
  struct IdCase {
    std::string field;
    LoginStatus status;
    const char* what;
  };
  const std::vector<IdCase> bad_ids = {
      {std::string("ab\0cd", 5), LoginStatus::invalid_id, "embedded NUL"},
      {"", LoginStatus::invalid_id, "all NUL (empty)"},
      {"bell\x07", LoginStatus::invalid_id, "control character"},
      {"del\x7F", LoginStatus::invalid_id, "DEL"},
      {"a b", LoginStatus::invalid_id, "space"},
      {"\xE0\x80\xAF", LoginStatus::invalid_id, "overlong encoding"},
      {hangul + hangul + hangul + hangul + hangul + "\xED", LoginStatus::invalid_id,
       "16 bytes ending in a cut code point"},
      {"\xF4\x90\x80\x80", LoginStatus::invalid_id, "above U+10FFFF"},
  };
  FrameClient client(server_->port());
  for (const IdCase& bad : bad_ids) {
    client.send_raw(raw_frame(kLogin, bad.field, kUserIdSize));
    EXPECT_EQ(client.expect<LoginResponse>().status, bad.status) << bad.what;
  }
  // The connection stayed open through every refusal; exactly 16 bytes is a valid id.
  const std::string sixteen = hangul + hangul + hangul + hangul + hangul + "x";
  ASSERT_EQ(sixteen.size(), kUserIdSize);
  client.send_raw(raw_frame(kLogin, sixteen, kUserIdSize));
  EXPECT_EQ(client.expect<LoginResponse>(), (LoginResponse{LoginStatus::ok, sixteen}));
  EXPECT_EQ(watcher->expect<UserJoined>().user_id, sixteen);

  // Messages: exactly 32 bytes, and control characters other than NUL, pass unchanged.
  const std::vector<std::string> good_messages = {
      std::string(32, 'm'),
      hangul + hangul + hangul + hangul + hangul + hangul + hangul + hangul + hangul + hangul + "ok",
      "tab\there\nnew line\x01\x7F"};
  for (const std::string& message : good_messages) {
    ASSERT_LE(message.size(), kMessageSize);
    client.send_raw(raw_frame(kChat, message, kMessageSize));
    EXPECT_EQ(client.expect<ChatBroadcast>(), (ChatBroadcast{sixteen, message}));
    EXPECT_EQ(watcher->expect<ChatBroadcast>(), (ChatBroadcast{sixteen, message}));
  }
  // Each bad message: INVALID_TEXT, then close; the watcher hears the sender left.
  const std::vector<std::pair<std::string, const char*>> bad_messages = {
      {std::string("a\0b", 3), "embedded NUL"},
      {"", "all NUL (empty)"},
      {std::string(31, 'x') + "\xE2", "32 bytes ending in a cut code point"},
      {"\xC1\xBF", "overlong encoding"},
      {"\xED\xBF\xBF", "surrogate"},
      {"\x80", "stray continuation byte"},
  };
  int n = 0;
  for (const auto& [message, what] : bad_messages) {
    const std::string id = "bad" + std::to_string(n++);
    auto sender = member(id);
    EXPECT_EQ(watcher->expect<UserJoined>().user_id, id);
    sender->send_raw(raw_frame(kChat, message, kMessageSize));
    EXPECT_EQ(sender->expect<ErrorPacket>().code, ErrorCode::invalid_text) << what;
    EXPECT_TRUE(sender->sees_close()) << what;
    sender.reset();  // its FIN lets the server finish the leave at once
    EXPECT_EQ(watcher->expect<UserLeft>().user_id, id) << what;
  }
}

// --- faults ----------------------------------------------------------------

// A sender resets its connection in the middle of a frame: the half frame
// is never broadcast, the others hear it left, and the id is free again.
TEST_P(V2Reliability, AResetInTheMiddleOfAFrameIsAnnouncedAndHarmsNoOne) {
  start_server();
  BystanderPair bystanders(server_->port());
  auto watcher = member("watcher");
  auto mallory = member("mallory");
  const std::string frame = bytes_of(ChatRequest{"never seen"});
  mallory->send_raw(std::string_view(frame).substr(0, 10));
  close_with_reset(mallory->socket());
  // The watcher hears mallory join and leave, and nothing from mallory in
  // between (the bystanders' chat goes by meanwhile).
  std::vector<std::string> heard;
  while (heard.size() < 2) {
    const auto packet = watcher->next();
    ASSERT_TRUE(packet.has_value()) << "watcher closed";
    if (const auto* chat = std::get_if<ChatBroadcast>(&*packet)) {
      ASSERT_EQ(chat->user_id, "bystander1") << "a half frame was broadcast";
    } else if (const auto* joined = std::get_if<UserJoined>(&*packet)) {
      heard.push_back("joined " + joined->user_id);
    } else if (const auto* left = std::get_if<UserLeft>(&*packet)) {
      heard.push_back("left " + left->user_id);
    }
  }
  EXPECT_EQ(heard, (std::vector<std::string>{"joined mallory", "left mallory"}));
  auto again = member("mallory");  // the id was released
  bystanders.finish();
}

// A receiver resets while the server still has sends outstanding to it
// (it stopped reading and its buffers are full): only it is closed, and
// the memory of its queued frames is freed after the last completion
// (ASan and TSan run this).
TEST_P(V2Reliability, AReceiverResetWithSendsOutstandingClosesOnlyIt) {
  start_server();
  auto sender = member("sender");
  auto reader = member("reader");
  auto victim = member("victim");
  reliability::shrink_receive_buffer(victim->socket(), 4096);
  sender->expect<UserJoined>();
  sender->expect<UserJoined>();
  reader->expect<UserJoined>();
  std::atomic<int> read{0};
  std::atomic<int> echoed{0};
  std::atomic<bool> victim_left{false};
  constexpr int kMessages = 6000;  // ~300 KiB to the victim: more than its buffers hold
  std::thread reading([&] {
    while (read.load() < kMessages + 1) {
      const auto packet = reader->next();
      if (!packet) return;
      if (std::holds_alternative<ChatBroadcast>(*packet)) read.fetch_add(1);
      if (std::holds_alternative<UserLeft>(*packet)) victim_left.store(true);
    }
  });
  std::thread draining([&] {
    while (echoed.load() < kMessages + 1) {
      const auto packet = sender->next();
      if (!packet) return;
      if (std::holds_alternative<ChatBroadcast>(*packet)) echoed.fetch_add(1);
    }
  });
  const std::string one = bytes_of(ChatRequest{"0123456789abcdefghijklmnopqrstuv"});
  for (int sent = 0; sent < kMessages; sent += 100) {
    ASSERT_TRUE(eventually([&] { return std::min(read.load(), echoed.load()) + 200 >= sent; }));
    std::string burst;
    for (int i = 0; i < 100; ++i) burst += one;
    sender->send_raw(burst);
  }
  close_with_reset(victim->socket());
  EXPECT_TRUE(eventually([&] { return victim_left.load(); }, kDeadline)) << "no USER_LEFT for the victim";
  sender->send(ChatRequest{"after"});
  reading.join();
  draining.join();
  EXPECT_EQ(read.load(), kMessages + 1);
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; }));
}

// Half-close: a client says its last line and shuts down its sending side.
// It still receives what was queued for it — its own echo — then the end of
// the stream; the others get the line, then USER_LEFT.
TEST_P(V2Reliability, AHalfClosedClientGetsItsLastFramesThenTheEnd) {
  start_server();
  auto alice = member("alice");
  auto bob = member("bob");
  EXPECT_EQ(alice->expect<UserJoined>().user_id, "bob");
  bob->send(ChatRequest{"bye"});
  shutdown_send(bob->socket());
  EXPECT_EQ(bob->expect<ChatBroadcast>(), (ChatBroadcast{"bob", "bye"}));
  EXPECT_TRUE(bob->sees_close());
  EXPECT_EQ(alice->expect<ChatBroadcast>(), (ChatBroadcast{"bob", "bye"}));
  EXPECT_EQ(alice->expect<UserLeft>().user_id, "bob");
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 1; }));
}

// A client that stops reading is dropped once its queue passes a small
// --max-queue-bytes (or has kept its sender waiting for --stall-limit); the
// reason is logged; the others get every message.
TEST_P(V2Reliability, AClientThatStopsReadingIsDroppedAtItsCapWithTheReasonLogged) {
  LogRecorder log;
  ServerConfig config;
  config.max_queue_bytes = 16 * 1024;
  config.stall_limit = 300ms;  // the sleeper goes sooner
  config.leave_time = 300ms;   // the sleeper cannot read its SLOW_CONSUMER: closed after this
  start_server(config);
  auto sender = member("sender");
  auto reader = member("reader");
  auto sleeper = member("sleeper");  // reads nothing from here on
  reliability::shrink_receive_buffer(sleeper->socket(), 4096);
  sender->expect<UserJoined>();
  sender->expect<UserJoined>();
  reader->expect<UserJoined>();
  std::atomic<int> read{0};
  std::atomic<int> echoed{0};
  std::atomic<int> wrong{0};
  std::atomic<int> target{-1};  // set once the sender stops
  std::atomic<bool> sleeper_left{false};
  const auto drain = [&](FrameClient& client, std::atomic<int>& got) {
    for (;;) {
      if (target.load() >= 0 && got.load() >= target.load()) return;
      const auto packet = client.next(100ms);
      if (!packet) {
        if (client.ended()) return;
        continue;
      }
      if (const auto* chat = std::get_if<ChatBroadcast>(&*packet)) {
        if (chat->message != std::to_string(got.load())) wrong.fetch_add(1);
        got.fetch_add(1);
      } else if (const auto* left = std::get_if<UserLeft>(&*packet); left && left->user_id == "sleeper") {
        if (&client == reader.get()) sleeper_left.store(true);
      }
    }
  };
  std::thread reading([&] { drain(*reader, read); });
  std::thread draining([&] { drain(*sender, echoed); });
  int sent = 0;
  // Bursts of 50 messages, never more than 100 ahead of the slower reader
  // (~5 KiB: under half the bound, so only the sleeper can pass it).
  while (!log.contains("slow consumer") && sent < 200000) {
    ASSERT_TRUE(eventually([&] { return std::min(read.load(), echoed.load()) + 100 >= sent + 50; }))
        << "readers stalled at " << read.load() << " and " << echoed.load();
    std::string burst;
    for (int i = 0; i < 50; ++i) burst += bytes_of(ChatRequest{std::to_string(sent++)});
    sender->send_raw(burst);
  }
  target.store(sent);
  reading.join();
  draining.join();
  // Dropped at its cap, or sooner, once its queue has stayed congested for
  // stall_limit (the back-pressure that spares readers from a flooder).
  EXPECT_TRUE(eventually([&] {
    return log.contains("slow consumer: more than 16384 bytes waiting") ||
           log.contains("slow consumer: congested for more than 300 ms");
  })) << log.text();
  EXPECT_EQ(read.load(), sent);
  EXPECT_EQ(echoed.load(), sent);
  EXPECT_EQ(wrong.load(), 0);
  // Dropped: the others hear it left. (When the sleeper itself would see its
  // end is up to TCP: its peer's kernel probes a zero window ever more slowly.)
  if (!sleeper_left.load()) {
    EXPECT_EQ(reader->expect<UserLeft>().user_id, "sleeper");
  }
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; }));
}

// stop() in the middle of a full-rate broadcast returns, closes everyone,
// and frees every connection (ASan/TSan watch for use after free and races).
TEST_P(V2Reliability, StopDuringAFullRateBroadcastReturnsAndClosesEveryone) {
  start_server();
  constexpr int kClients = 12;
  std::vector<std::unique_ptr<FrameClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(member("c" + std::to_string(i)));
  std::atomic<int> received{0};
  std::vector<std::thread> threads;
  for (auto& client : clients) {
    threads.emplace_back([&received, &client] {
      while (client->next()) received.fetch_add(1);
    });
  }
  for (int s = 0; s < 3; ++s) {
    threads.emplace_back([&clients, s] {
      std::string burst;
      for (int i = 0; i < 64; ++i) burst += bytes_of(ChatRequest{"flood " + std::to_string(i)});
      while (!send_all(clients[static_cast<std::size_t>(s)]->socket(), burst)) {
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return received.load() > 5000; }));
  reliability::must_return_within([&] { server_->stop(); }, 20s, "ChatServer::stop()");
  for (auto& thread : threads) thread.join();  // every reader saw its end; every flooder's send failed
  EXPECT_EQ(server_->client_count(), 0);
}

// --- the login timeout -----------------------------------------------------

TEST_P(V2Reliability, AClientThatNeverLogsInIsClosedAfterTheLoginTimeoutWithoutAnError) {
  LogRecorder log;
  ServerConfig config;
  config.login_timeout = 300ms;
  start_server(config);
  auto member_client = member("member");
  const auto connected = Clock::now();
  FrameClient silent(server_->port());
  FrameClient half(server_->port());
  half.send_raw(bytes_of(LoginRequest{"half"}).substr(0, 7));  // never completes its login
  EXPECT_FALSE(silent.next().has_value()) << "a frame was sent to a silent client";
  EXPECT_TRUE(silent.ended());
  EXPECT_GE(Clock::now() - connected, 300ms) << "closed before the timeout";
  EXPECT_TRUE(half.sees_close());
  // The member, logged in before the timeout, stays.
  member_client->send(ChatRequest{"still here"});
  EXPECT_EQ(member_client->expect<ChatBroadcast>().message, "still here");
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 1; }));
  EXPECT_TRUE(log.contains("disconnected: login timeout")) << log.text();
}

// The WinAPI login dialog keeps its connection while a person retypes an id
// after ID_TAKEN: each answered LOGIN_REQUEST starts the timer again.
TEST_P(V2Reliability, EachAnsweredLoginRestartsTheTimer) {
  ServerConfig config;
  config.login_timeout = 300ms;
  start_server(config);
  auto alice = member("alice");
  FrameClient retrying(server_->port());
  const auto until = Clock::now() + 1200ms;  // four timeouts
  while (Clock::now() < until) {
    ASSERT_EQ(retrying.login("alice"), LoginStatus::id_taken);
    std::this_thread::sleep_for(100ms);  // a person retyping (less than a timeout)
  }
  EXPECT_EQ(retrying.login("alice2"), LoginStatus::ok);
  std::this_thread::sleep_for(700ms);  // logged in: no timer any more
  retrying.send(ChatRequest{"made it"});
  EXPECT_EQ(retrying.expect<ChatBroadcast>().message, "made it");
}

TEST_P(V2Reliability, ALoginTimeoutOfZeroNeverCloses) {
  ServerConfig config;
  config.login_timeout = 0ms;
  start_server(config);
  FrameClient silent(server_->port());
  EXPECT_FALSE(silent.next(800ms).has_value());
  EXPECT_FALSE(silent.ended()) << "closed although the timeout is off";
  EXPECT_EQ(silent.login("late"), LoginStatus::ok);
}

// --- load and resources ----------------------------------------------------

// 2,000 connections at once with max_clients 500: every one is either
// admitted (its login answered) or told SERVER_FULL and closed — none
// hangs, none is reset without a word.
TEST_P(V2Reliability, AStormOfTwoThousandConnectionsIsAdmittedOrCleanlyRefused) {
  constexpr std::size_t kStorm = 2000;
  constexpr std::size_t kMax = 500;
  std::string why;
  if (!reliability::raise_descriptor_limit(2 * kStorm + 200, why)) GTEST_SKIP() << why;
  ServerConfig config;
  config.max_clients = kMax;
  start_server(config);
  std::vector<std::unique_ptr<FrameClient>> clients(kStorm);
  std::vector<std::thread> connecting;
  for (std::size_t t = 0; t < 4; ++t) {
    connecting.emplace_back([&, t] {
      for (std::size_t i = t; i < kStorm; i += 4) {
        clients[i] = std::make_unique<FrameClient>(server_->port());
        clients[i]->send(LoginRequest{"s" + std::to_string(i)});
      }
    });
  }
  for (auto& thread : connecting) thread.join();
  std::size_t admitted = 0;
  std::size_t refused = 0;
  std::size_t other = 0;
  for (auto& client : clients) {
    const auto packet = client->next();
    if (packet && std::holds_alternative<LoginResponse>(*packet) &&
        std::get<LoginResponse>(*packet).status == LoginStatus::ok) {
      ++admitted;
    } else if (packet && std::holds_alternative<ErrorPacket>(*packet) &&
               std::get<ErrorPacket>(*packet).code == ErrorCode::server_full && client->sees_close()) {
      ++refused;
    } else {
      ++other;
    }
  }
  EXPECT_EQ(admitted, kMax);
  EXPECT_EQ(refused, kStorm - kMax);
  EXPECT_EQ(other, 0U);
  EXPECT_EQ(server_->client_count(), static_cast<std::int64_t>(kMax));
  clients.clear();
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 0; }));
}

// Churn: clients connect, log in, chat a little and leave, over and over,
// while two stayers broadcast. The stayers lose nothing and see their
// messages in order; afterwards the process's descriptors and the server's
// client count are back to their baseline (Linux counts /proc/self/fd).
TEST_P(V2Reliability, ChurnDuringABroadcastReturnsToTheBaselineAndLosesNothing) {
  start_server();
  const auto seconds = std::chrono::seconds(
      std::getenv("IOCP_CHAT_CHURN_SECONDS") ? std::atoi(std::getenv("IOCP_CHAT_CHURN_SECONDS")) : 3);
  const int baseline_fds = reliability::open_descriptors();
  {
    BystanderPair stayers(server_->port());
    const std::int64_t baseline_clients = server_->client_count();
    std::atomic<int> cycles{0};
    std::vector<std::thread> churners;
    for (int t = 0; t < 3; ++t) {
      churners.emplace_back([&, t] {
        const auto until = Clock::now() + seconds;
        for (int i = 0; Clock::now() < until; ++i) {
          FrameClient client(server_->port());
          const std::string id = "churn" + std::to_string(t) + "_" + std::to_string(i);
          if (i % 3 == 0) {
            close_with_reset(client.socket());  // some leave before a word
          } else if (client.login(id) == LoginStatus::ok) {
            if (i % 3 == 1) client.send(ChatRequest{"hello"});
          }
          cycles.fetch_add(1);
        }
      });
    }
    for (auto& thread : churners) thread.join();
    stayers.finish();
    EXPECT_GT(cycles.load(), 0);
    EXPECT_TRUE(eventually([&] { return server_->client_count() == baseline_clients; }))
        << server_->client_count() << " clients, baseline " << baseline_clients;
  }
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 0; }));
  if (baseline_fds >= 0) {
    EXPECT_TRUE(eventually([&] { return reliability::open_descriptors() == baseline_fds; }))
        << reliability::open_descriptors() << " descriptors open, baseline " << baseline_fds;
  }
}

// [fairness-tests]
/// `count` CHAT_REQUESTs back to back: what a fast client writes at once.
std::string chat_burst(int count) {
  std::string burst;
  for (int i = 0; i < count; ++i) burst += bytes_of(ChatRequest{"0123456789abcdefghijklmnopqrstuv"});
  return burst;
}

/// Bytes of the CHAT_BROADCASTs one CHAT_REQUEST makes for each member.
constexpr std::size_t kBroadcastSize = 52;

/// A logged-in member whose socket now belongs to a PacedReader.
std::unique_ptr<reliability::PacedReader> paced_member(std::uint16_t port, const std::string& id,
                                                       std::size_t bytes_per_second, int receive_buffer = 0) {
  auto client = logged_in_client(port, id);
  if (receive_buffer != 0) reliability::shrink_receive_buffer(client->socket(), receive_buffer);
  return std::make_unique<reliability::PacedReader>(std::move(client->socket()), bytes_per_second);
}

// One member sends as fast as it can (and reads its own echo) while ten
// ordinary members read 2 MB/s each (less under Wine and the sanitizers: ordinary_reader_pace).
// None of the ten is dropped: the flooder is slowed to their pace — its next
// receive waits while a reader's queue is congested, and TCP holds its
// bytes back in its own socket.
TEST_P(V2Reliability, OneFlooderIsSlowedToItsReadersPaceAndNoReaderIsDropped) {
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
    readers.push_back(paced_member(server_->port(), "reader" + std::to_string(i), pace, 64 * 1024));
  }
  auto flooder = paced_member(server_->port(), "flooder", std::size_t{1} << 40);  // reads as fast as it can
  ASSERT_TRUE(eventually([&] { return server_->client_count() == kReaders + 1; }));

  const std::string burst = chat_burst(400);
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
    ASSERT_FALSE(send_all(flooder->socket(), burst));
    sent += 400;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& reader : readers) EXPECT_FALSE(reader->ended()) << "an ordinary reader was dropped";
  EXPECT_FALSE(log.contains("slow consumer")) << log.text();
  EXPECT_EQ(server_->client_count(), kReaders + 1);
  EXPECT_GT(server_->senders_paused(), 0) << "the flooder was never slowed";
  std::printf("flooder sent %.0f messages/s; each reader read %.1f MB\n", static_cast<double>(sent) / seconds,
              static_cast<double>(readers.front()->received()) / 1e6);
}

// A sender whose readers all keep up is never slowed: with the readers at
// most a few bursts behind, no queue ever gets near a quarter of its bound.
TEST_P(V2Reliability, ASenderWhoseReadersKeepUpIsNeverSlowed) {
  ServerConfig config;
  config.max_queue_bytes = 1 << 20;
  start_server(config);
  std::vector<std::unique_ptr<reliability::PacedReader>> readers;
  for (int i = 0; i < 10; ++i) {
    readers.push_back(paced_member(server_->port(), "reader" + std::to_string(i), std::size_t{1} << 40));
  }
  auto sender = paced_member(server_->port(), "sender", std::size_t{1} << 40);
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 11; }));
  // Reader i hears the USER_JOINED of each member after it: 10 - i of them.
  const auto chat_bytes = [&](std::size_t i) {
    const std::size_t joined = (10 - i) * 20;
    return readers[i]->received() - std::min(readers[i]->received(), joined);
  };
  const auto slowest = [&] {
    std::size_t least = sender->received();  // the sender hears no join of its own
    for (std::size_t i = 0; i < readers.size(); ++i) least = std::min(least, chat_bytes(i));
    return least;
  };
  constexpr int kBurst = 100;
  // 40,000 messages, 2 MB to each member; a quarter under Wine, whose sockets are slower.
  const int bursts = GetParam() == Backend::iocp ? 100 : 400;
  const std::string burst = chat_burst(kBurst);
  for (int i = 0; i < bursts; ++i) {
    const std::size_t expected = static_cast<std::size_t>(i) * kBurst * kBroadcastSize;
    ASSERT_TRUE(eventually([&] { return slowest() + 4 * kBurst * kBroadcastSize >= expected; }))
        << "readers stalled";
    ASSERT_FALSE(send_all(sender->socket(), burst));
  }
  EXPECT_TRUE(
      eventually([&] { return slowest() >= static_cast<std::size_t>(bursts) * kBurst * kBroadcastSize; }));
  EXPECT_EQ(server_->senders_paused(), 0) << "a sender was slowed although every reader kept up";
}

// Many members that stop reading, one fast sender, one reader: the queues
// together stay near --max-total-queue-bytes (the largest are dropped; the
// last few, once the total is low again, by the stall limit), the reader
// gets everything, and the process's resident memory shows it. Without the
// total bound, each of the 60 would hold a congested megabyte.
TEST_P(V2Reliability, MembersThatStopReadingCannotPushTheServerPastItsTotalBound) {
  LogRecorder log;
  ServerConfig config;
  config.max_queue_bytes = 4 << 20;
  config.max_total_queue_bytes = 16 << 20;
  config.leave_time = 300ms;
  start_server(config);
  constexpr int kSleepers = 60;
  std::vector<std::unique_ptr<FrameClient>> sleepers;
  for (int i = 0; i < kSleepers; ++i) {
    sleepers.push_back(member("sleeper" + std::to_string(i)));
    reliability::shrink_receive_buffer(sleepers.back()->socket(), 4096);
  }
  auto reader = paced_member(server_->port(), "reader", std::size_t{1} << 40);
  auto sender = paced_member(server_->port(), "sender", std::size_t{1} << 40);
  ASSERT_TRUE(eventually([&] { return server_->client_count() == kSleepers + 2; }));
  const std::size_t start_bytes = reader->received();  // the sender's USER_JOINED
  const std::size_t baseline = reliability::resident_bytes().value_or(0);
  std::size_t peak = 0;
  constexpr int kBurst = 100;
  constexpr int kBursts = 1500;  // 150,000 messages, 8 MB to each member: far past what the kernel holds
  {
    reliability::PeakResidentMemory memory;
    const std::string burst = chat_burst(kBurst);
    for (int i = 0; i < kBursts; ++i) {
      const std::size_t expected = static_cast<std::size_t>(i) * kBurst * kBroadcastSize;
      ASSERT_TRUE(eventually([&] {
        return std::min(reader->received() - start_bytes, sender->received()) + 8 * kBurst * kBroadcastSize >=
               expected;
      })) << "the reader stalled at "
          << reader->received() << " bytes";
      ASSERT_FALSE(send_all(sender->socket(), burst));
    }
    peak = memory.peak();
  }
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; })) << "sleepers still connected";
  EXPECT_TRUE(log.contains("queues together passed 16777216")) << log.text();
  reliability::expect_growth_near_bound(baseline, peak, config.max_total_queue_bytes);
}

// A dropped member leaves the room at once: the others hear USER_LEFT, and
// its id can log in again, while its socket is still open (the server is
// still trying to hand it its SLOW_CONSUMER, for up to leave_time = 30 s).
TEST_P(V2Reliability, ADroppedMemberLeavesTheRoomAtOnceNotWhenItsSocketCloses) {
  LogRecorder log;
  ServerConfig config;
  config.max_queue_bytes = 64 * 1024;
  config.stall_limit = 300ms;
  config.leave_time = 30s;  // far longer than the test's deadline for USER_LEFT
  start_server(config);
  auto sender = member("sender");
  auto watcher = member("watcher");
  auto sleeper = member("sleeper");  // reads nothing from here on
  reliability::shrink_receive_buffer(sleeper->socket(), 4096);
  sender->expect<UserJoined>();
  sender->expect<UserJoined>();
  watcher->expect<UserJoined>();
  std::atomic<int> seen{0};
  std::atomic<bool> left{false};
  std::atomic<Clock::rep> left_at{0};       // when the watcher heard USER_LEFT
  std::atomic<Clock::rep> congested_at{0};  // when the sender was first held back
  std::thread watching([&] {
    while (!left.load()) {
      const auto packet = watcher->next(100ms);
      if (!packet) {
        if (watcher->ended()) return;
        continue;
      }
      if (std::holds_alternative<ChatBroadcast>(*packet)) seen.fetch_add(1);
      if (const auto* gone = std::get_if<UserLeft>(&*packet); gone && gone->user_id == "sleeper") {
        left_at.store(Clock::now().time_since_epoch().count());
        left.store(true);
      }
    }
  });
  std::thread echo([&] {
    while (!left.load()) {
      if (!sender->next(100ms) && sender->ended()) return;
    }
  });
  int sent = 0;
  const auto start = Clock::now();
  while (!left.load() && Clock::now() - start < kDeadline) {
    if (!eventually([&] { return seen.load() + 200 >= sent + 50 || left.load(); }, 5s)) break;
    if (congested_at.load() == 0 && server_->senders_paused() > 0) {
      congested_at.store(Clock::now().time_since_epoch().count());
    }
    std::string burst;
    for (int i = 0; i < 50; ++i) burst += bytes_of(ChatRequest{std::to_string(sent++)});
    sender->send_raw(burst);
  }
  const bool announced = left.load();
  left.store(true);
  watching.join();
  echo.join();
  ASSERT_TRUE(announced) << "no USER_LEFT for the dropped member\n" << log.text();
  EXPECT_EQ(server_->client_count(), 3) << "its socket should still be open (leave_time 30 s)";
  auto again = logged_in_client(server_->port(), "sleeper");  // its id is free already
  if (congested_at.load() != 0) {
    std::printf(
        "USER_LEFT %.0f ms after the sender was first held back (stall limit 300 ms, sweep every 250 ms)\n",
        static_cast<double>(Clock::duration(left_at.load() - congested_at.load()).count()) / 1e6);
  }
  EXPECT_TRUE(log.contains("slow consumer")) << log.text();
}
// [fairness-tests]

INSTANTIATE_TEST_SUITE_P(Backends, V2Reliability, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::v2
