// server_test.cpp — ver.2's session rules 1–7 (docs/protocol.md) against the
// real server, in-process on 127.0.0.1 with an ephemeral port, on every
// backend, with clients that speak frames over real sockets.
//
// Built a second time as v3_session_tests (v3_cluster/tests/CMakeLists.txt,
// IOCP_CHAT_V3_SESSIONS): the same tests against one ver.3 node and a real
// nats-server, since a ver.2 client must not tell the two apart.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
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
#ifdef IOCP_CHAT_V3_SESSIONS
#include "session_nats.hpp"
#endif

namespace iocp_chat::v2 {
namespace {

using namespace std::chrono_literals;
using testing_support::eventually;

/// The ver.2 test client (tests/support/frame_client.hpp), shared with tests/reliability.
using test::FrameClient;
using test::logged_in_client;

#ifdef IOCP_CHAT_V3_SESSIONS
using Server = v3::ChatServer;  ///< One ver.3 node (its NATS settings: session_nats.hpp).
using Config = v3::ServerConfig;
#else
using Server = ChatServer;  ///< The ver.2 server.
using Config = ServerConfig;
#endif

class V2ServerTest : public testing_support::ServerTest<Server, Config> {
 protected:
  /// A connected client logged in as `id` (asserting OK).
  std::unique_ptr<FrameClient> member(const std::string& id) { return logged_in_client(server_->port(), id); }
};

// Rule 1: login, LOGIN_RESPONSE, USER_JOINED to the others (not to the joiner).
TEST_P(V2ServerTest, LoginAnnouncesTheNewIdToTheOthersOnly) {
  start_server();
  auto alice = member("alice");
  auto bob = member("bob");
  EXPECT_EQ(alice->expect<UserJoined>().user_id, "bob");
  // Bob's first frame after his own LOGIN_RESPONSE is his own chat, not his own join.
  bob->send(ChatRequest{"hi"});
  EXPECT_EQ(bob->expect<ChatBroadcast>(), (ChatBroadcast{"bob", "hi"}));
  EXPECT_EQ(alice->expect<ChatBroadcast>(), (ChatBroadcast{"bob", "hi"}));
}

TEST_P(V2ServerTest, IdTakenKeepsTheConnectionOpenForARetry) {
  start_server();
  auto alice = member("alice");
  FrameClient second(server_->port());
  EXPECT_EQ(second.login("alice"), LoginStatus::id_taken);
  EXPECT_EQ(second.login("alice2"), LoginStatus::ok);
  // Alice hears only the successful login.
  EXPECT_EQ(alice->expect<UserJoined>().user_id, "alice2");
}

TEST_P(V2ServerTest, InvalidIdsAreRefusedWithoutClosing) {
  start_server();
  auto watcher = member("watcher");
  FrameClient client(server_->port());
  EXPECT_EQ(client.login("two words"), LoginStatus::invalid_id);
  EXPECT_EQ(client.login(std::string("tab\there")), LoginStatus::invalid_id);
  EXPECT_EQ(client.login(std::string("\xC0\xAF", 2)), LoginStatus::invalid_id);  // overlong UTF-8
  EXPECT_EQ(client.login("민수"), LoginStatus::ok);
  EXPECT_EQ(watcher->expect<UserJoined>().user_id, "민수");
}

TEST_P(V2ServerTest, ASecondLoginIsAlreadyLoggedInAndKeepsTheFirstId) {
  start_server();
  auto alice = member("alice");
  EXPECT_EQ(alice->login("alicia"), LoginStatus::already_logged_in);
  alice->send(ChatRequest{"still alice"});
  EXPECT_EQ(alice->expect<ChatBroadcast>().user_id, "alice");
}

// The server gathers a receive's chat messages into one run per recipient;
// a login in the same segment must still be answered after the broadcasts
// of the messages sent before it, and before those sent after it.
TEST_P(V2ServerTest, ALoginAnswerKeepsItsPlaceAmongTheSendersMessages) {
  start_server();
  auto alice = member("alice");
  std::string segment;
  const auto append = [&segment](const Packet& packet) {
    const auto frame = encode(packet);
    segment.append(reinterpret_cast<const char*>(frame.data()), frame.size());
  };
  append(ChatRequest{"first"});
  append(ChatRequest{"second"});
  append(LoginRequest{"alicia"});
  append(ChatRequest{"third"});
  alice->send_raw(segment);  // one segment: the server reads it in one receive
  EXPECT_EQ(alice->expect<ChatBroadcast>().message, "first");
  EXPECT_EQ(alice->expect<ChatBroadcast>().message, "second");
  EXPECT_EQ(alice->expect<LoginResponse>().status, LoginStatus::already_logged_in);
  EXPECT_EQ(alice->expect<ChatBroadcast>().message, "third");
}

// Rule 2: CHAT_BROADCAST to every logged-in client, the sender included;
// a client that is not logged in gets nothing.
TEST_P(V2ServerTest, ChatReachesEveryLoggedInClientButNotTheOthers) {
  start_server();
  FrameClient outsider(server_->port());
  auto alice = member("alice");
  auto bob = member("bob");
  alice->expect<UserJoined>();
  bob->send(ChatRequest{"안녕하세요"});
  EXPECT_EQ(alice->expect<ChatBroadcast>(), (ChatBroadcast{"bob", "안녕하세요"}));
  EXPECT_EQ(bob->expect<ChatBroadcast>(), (ChatBroadcast{"bob", "안녕하세요"}));
  // The outsider's first frame is the answer to its own login: nothing came before it.
  EXPECT_EQ(outsider.login("carol"), LoginStatus::ok);
}

// Rule 3: per-sender order, no loss, no duplicate — 10,000 messages from
// four senders to 100 clients.
TEST_P(V2ServerTest, EachSendersOrderHoldsForTenThousandMessagesToAHundredClients) {
  constexpr int kSenders = 4;
  constexpr int kClients = 100;
  constexpr int kPerSender = 2500;
  start_server();
  std::vector<std::unique_ptr<FrameClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(member("c" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return server_->client_count() == kClients; }));
  // Everyone drains the joins of those who came after them. Joins of
  // different clients may arrive in any order (only each sender's own frames
  // are ordered), so compare sets.
  for (int i = 0; i < kClients; ++i) {
    std::set<std::string> joined;
    std::set<std::string> expected;
    for (int j = i + 1; j < kClients; ++j) {
      joined.insert(clients[static_cast<std::size_t>(i)]->expect<UserJoined>().user_id);
      expected.insert("c" + std::to_string(j));
    }
    ASSERT_EQ(joined, expected) << "client " << i;
  }
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      std::string burst;
      for (int m = 0; m < kPerSender; ++m) {
        const auto frame = encode(ChatRequest{std::to_string(m)});
        burst.append(reinterpret_cast<const char*>(frame.data()), frame.size());
        if (burst.size() > 3600 || m + 1 == kPerSender) {
          clients[static_cast<std::size_t>(s)]->send_raw(burst);  // many frames per segment
          burst.clear();
        }
      }
    });
  }
  for (auto& sender : senders) sender.join();
  int wrong = 0;
  for (int c = 0; c < kClients; ++c) {
    std::vector<int> next_expected(kSenders, 0);
    for (int i = 0; i < kSenders * kPerSender; ++i) {
      const auto broadcast = clients[static_cast<std::size_t>(c)]->expect<ChatBroadcast>();
      const int sender = std::stoi(broadcast.user_id.substr(1));
      if (sender < 0 || sender >= kSenders ||
          broadcast.message != std::to_string(next_expected[static_cast<std::size_t>(sender)]++)) {
        ++wrong;
      }
    }
  }
  EXPECT_EQ(wrong, 0) << "messages lost, duplicated or out of order";
}

// Rule 4: USER_LEFT when a logged-in client disconnects, resets, or is dropped.
TEST_P(V2ServerTest, LeavingNormallyIsAnnounced) {
  start_server();
  auto alice = member("alice");
  {
    auto bob = member("bob");
    alice->expect<UserJoined>();
  }
  EXPECT_EQ(alice->expect<UserLeft>().user_id, "bob");
}

// A client may send its LOGIN_REQUEST and close its sending side at once
// (a script, `printf ... | nc`): it is still answered, joins, and then
// leaves like any client whose stream ended — on ver.3 too, where the
// answer waits for a NATS round trip.
TEST_P(V2ServerTest, ALoginFollowedAtOnceByEndOfStreamIsAnsweredThenLeaves) {
  start_server();
  auto alice = member("alice");
  FrameClient brief(server_->port());
  brief.send(LoginRequest{"brief"});
  shutdown_send(brief.socket());
  const auto answer = brief.expect<LoginResponse>();
  EXPECT_EQ(answer.status, LoginStatus::ok);
  EXPECT_EQ(answer.user_id, "brief");
  EXPECT_EQ(alice->expect<UserJoined>().user_id, "brief");
  EXPECT_EQ(alice->expect<UserLeft>().user_id, "brief");
  EXPECT_TRUE(brief.sees_close());
}

TEST_P(V2ServerTest, AResetIsAnnouncedAndReleasesTheId) {
  start_server();
  auto alice = member("alice");
  auto bob = member("bob");
  alice->expect<UserJoined>();
  close_with_reset(bob->socket());
  EXPECT_EQ(alice->expect<UserLeft>().user_id, "bob");
  auto bob_again = member("bob");  // the id was released
  EXPECT_EQ(alice->expect<UserJoined>().user_id, "bob");
}

// Rule 5: bad input → ERROR with its code, then close; no one else affected.
TEST_P(V2ServerTest, ChatBeforeLoginIsNotLoggedInThenClosedWhileOthersChat) {
  start_server();
  auto alice = member("alice");
  FrameClient rude(server_->port());
  rude.send(ChatRequest{"me first"});
  EXPECT_EQ(rude.expect<ErrorPacket>().code, ErrorCode::not_logged_in);
  EXPECT_TRUE(rude.sees_close());
  alice->send(ChatRequest{"unaffected"});
  EXPECT_EQ(alice->expect<ChatBroadcast>().message, "unaffected");
}

TEST_P(V2ServerTest, EachKindOfBadFrameGetsItsErrorCode) {
  start_server();
  auto alice = member("alice");
  struct Case {
    std::string bytes;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {std::string("\x00\x03\x00\x01", 4), ErrorCode::malformed_frame},  // length < 4
      {std::string("\x00\x15\x00\x01", 4), ErrorCode::malformed_frame},  // 21-byte LOGIN_REQUEST
      {std::string("\xFF\xFF\x00\x03", 4), ErrorCode::malformed_frame},  // 0xFFFF
      {std::string("\x00\x06\x00\x09\x00\x00", 6), ErrorCode::unknown_type},
      {std::string("\x00\x06\x00\x07\x00\x01", 6), ErrorCode::unknown_type},  // ERROR is server-to-client
  };
  for (const Case& bad : cases) {
    FrameClient client(server_->port());
    client.send_raw(bad.bytes);
    EXPECT_EQ(client.expect<ErrorPacket>().code, bad.code);
    EXPECT_TRUE(client.sees_close());
  }
  alice->send(ChatRequest{"still fine"});
  EXPECT_EQ(alice->expect<ChatBroadcast>().message, "still fine");
}

TEST_P(V2ServerTest, AnInvalidMessageIsInvalidTextThenClosedAndAnnounced) {
  start_server();
  auto alice = member("alice");
  auto mallory = member("mallory");
  alice->expect<UserJoined>();
  mallory->send(ChatRequest{std::string("\xED\xA0\x80", 3)});  // a UTF-16 surrogate in UTF-8
  EXPECT_EQ(mallory->expect<ErrorPacket>().code, ErrorCode::invalid_text);
  EXPECT_TRUE(mallory->sees_close());
  EXPECT_EQ(alice->expect<UserLeft>().user_id, "mallory");
}

// Rule 6: a client that does not read is dropped alone; the others hear it left.
TEST_P(V2ServerTest, ASlowConsumerIsDroppedAndAnnouncedWhileOthersGetEverything) {
  Config config;
  config.max_queue_bytes = 64 * 1024;
  config.stall_limit = std::chrono::milliseconds(300);  // the client that never reads goes sooner
  start_server(config);
  auto sender = member("sender");
  auto reader = member("reader");
  auto sleeper = member("sleeper");  // never reads again
  sender->expect<UserJoined>();
  sender->expect<UserJoined>();
  reader->expect<UserJoined>();
  std::atomic<int> read{0};
  std::atomic<int> drained{0};
  std::atomic<bool> sleeper_left{false};
  // The sender goes on until the sleeper is gone — once the kernel's socket
  // buffers toward it (about 4 MiB on Linux) and its 64 KiB queue are full —
  // and then sends kAfterDrop more, which the two readers must still get.
  // kMaxMessages (20 MiB of broadcasts) is more than any socket buffers hold:
  // a server that never drops the sleeper fails the test.
  constexpr int kMaxMessages = 400000;
  constexpr int kAfterDrop = 20000;
  std::atomic<int> last{kMaxMessages};  // how many will be sent; lowered once
  std::thread reading([&] {
    while (read.load() < last.load()) {
      auto packet = reader->next();
      if (!packet) return;
      if (std::holds_alternative<ChatBroadcast>(*packet)) read.fetch_add(1);
      if (std::holds_alternative<UserLeft>(*packet)) sleeper_left.store(true);
    }
  });
  std::thread draining([&] {
    while (drained.load() < last.load()) {
      auto packet = sender->next();
      if (!packet) return;
      if (std::holds_alternative<ChatBroadcast>(*packet)) drained.fetch_add(1);
    }
  });
  const auto frame = encode(ChatRequest{"0123456789abcdefghijklmnopqrstuv"});
  const std::string one(reinterpret_cast<const char*>(frame.data()), frame.size());
  for (int sent = 0; sent < last.load(); sent += 100) {
    // At most 400 messages (~21 KiB, with the burst in hand) ahead of the slower reader: a queue can
    // hold up to twice that (an in-flight send counts until its completion is
    // handled), still well under the 64 KiB bound.
    if (!eventually([&] { return std::min(read.load(), drained.load()) + 300 >= sent; })) {
      ADD_FAILURE() << "readers stalled at " << read.load() << " and " << drained.load() << " of " << sent;
      break;  // the reading threads end at their own deadline
    }
    // Lowered before this burst is sent, so neither reader has reached it yet.
    if (sleeper_left.load() && last.load() == kMaxMessages)
      last.store(std::min(kMaxMessages, sent + kAfterDrop));
    std::string burst;
    for (int i = 0; i < 100; ++i) burst += one;
    sender->send_raw(burst);
  }
  reading.join();
  draining.join();
  EXPECT_EQ(read.load(), last.load());
  // The sleeper cannot read its SLOW_CONSUMER notice, so it is closed when
  // its leave time runs out; the others then hear it left.
  if (!sleeper_left.load()) {
    EXPECT_EQ(reader->expect<UserLeft>().user_id, "sleeper");
  }
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 2; }));
}

// Rule 7: frames split anywhere and frames merged in one segment.
TEST_P(V2ServerTest, FramesSplitByteByByteOrMergedAreUnderstood) {
  start_server();
  FrameClient client(server_->port());
  const auto login = encode(LoginRequest{"splitter"});
  for (const std::byte byte : login) {
    client.send_raw(std::string(1, static_cast<char>(byte)));
    std::this_thread::sleep_for(1ms);  // let each byte travel alone (the test passes either way)
  }
  EXPECT_EQ(client.expect<LoginResponse>().status, LoginStatus::ok);
  std::string merged;
  for (int i = 0; i < 3; ++i) {
    const auto frame = encode(ChatRequest{"m" + std::to_string(i)});
    merged.append(reinterpret_cast<const char*>(frame.data()), frame.size());
  }
  client.send_raw(merged);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client.expect<ChatBroadcast>().message, "m" + std::to_string(i));
}

TEST_P(V2ServerTest, PastMaxClientsTheNextOneIsToldServerFull) {
  Config config;
  config.max_clients = 2;
  start_server(config);
  auto alice = member("alice");
  auto bob = member("bob");
  FrameClient third(server_->port());
  EXPECT_EQ(third.expect<ErrorPacket>().code, ErrorCode::server_full);
  EXPECT_TRUE(third.sees_close());
  EXPECT_EQ(server_->client_count(), 2);
}

TEST_P(V2ServerTest, StopClosesEveryClient) {
  start_server();
  auto alice = member("alice");
  auto bob = member("bob");
  server_->stop();
  EXPECT_TRUE(alice->sees_close());
  EXPECT_TRUE(bob->sees_close());
  EXPECT_EQ(server_->client_count(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, V2ServerTest, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::v2
