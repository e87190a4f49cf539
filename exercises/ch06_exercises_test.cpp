// ch06_exercises_test.cpp — the checks of chapter 6's exercises: new session
// rules in ChatRoom (common/protocol/chat_room.hpp), checked on the room
// alone where that is enough, and end to end on ver.2's server in-process
// on 127.0.0.1, once per backend, with clients that speak frames.
//
// Ideas checked: the rules live in a class with no I/O, which answers each
// frame with Effects (frames for groups of clients, in order); 6.1 an answer
// for the sender only; 6.2 a delivery to a group of two; 6.3 the registry of
// ids under the room's lock deciding what "the same id" means.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "chat_server.hpp"
#include "common/protocol/chat_room.hpp"
#include "common/protocol/packets.hpp"
#include "frame_client.hpp"
#include "port_fixture.hpp"

namespace iocp_chat::exercises {
namespace {

using test::FrameClient;
using testing_support::eventually;

/// ver.2's server on the parameter's backend.
class V2Exercise : public testing_support::ServerTest<v2::ChatServer, v2::ServerConfig> {
 protected:
  /// A connected client logged in as `id` (asserting OK).
  std::unique_ptr<FrameClient> member(const std::string& id) {
    return test::logged_in_client(server_->port(), id);
  }
};

// Exercise 6.1: "/who" is answered to the sender alone, one USER_JOINED per member.
TEST_P(V2Exercise, Exercise6_1_WhoListsTheMembersToTheAskerOnly) {
  start_server();
  auto alice = member("alice");
  auto bob = member("bob");
  ASSERT_EQ(alice->expect<v2::UserJoined>().user_id, "bob");
  alice->send(v2::ChatRequest{"/who"});
  std::set<std::string> listed;
  for (int i = 0; i < 2; ++i) {
    const auto packet = alice->next();
    ASSERT_TRUE(packet && std::holds_alternative<v2::UserJoined>(*packet))
        << "exercise 6.1: '/who' should be answered with one USER_JOINED per logged-in member, "
           "to the sender only (ChatRoom::on_chat in common/protocol/chat_room.hpp); "
           "it was not (broadcast as chat?)";
    listed.insert(std::get<v2::UserJoined>(*packet).user_id);
  }
  EXPECT_EQ(listed, (std::set<std::string>{"alice", "bob"}));
  bob->send(v2::ChatRequest{"hi"});
  EXPECT_EQ(bob->expect<v2::ChatBroadcast>(), (v2::ChatBroadcast{"bob", "hi"}))
      << "exercise 6.1: the others hear nothing of a '/who'";
}

// Exercise 6.2: "/msg ID text" reaches ID and the sender, and no one else.
TEST_P(V2Exercise, Exercise6_2_APrivateMessageReachesOnlyItsTwoEnds) {
  start_server();
  auto alice = member("alice");
  auto bob = member("bob");
  auto carol = member("carol");
  ASSERT_EQ(alice->expect<v2::UserJoined>().user_id, "bob");
  ASSERT_EQ(alice->expect<v2::UserJoined>().user_id, "carol");
  ASSERT_EQ(bob->expect<v2::UserJoined>().user_id, "carol");
  alice->send(v2::ChatRequest{"/msg bob psst"});
  const v2::ChatBroadcast whisper{"alice", "psst"};
  EXPECT_EQ(bob->expect<v2::ChatBroadcast>(), whisper)
      << "exercise 6.2: '/msg bob psst' from alice reaches bob as CHAT_BROADCAST {alice, psst}";
  EXPECT_EQ(alice->expect<v2::ChatBroadcast>(), whisper) << "exercise 6.2: the sender gets its copy too";
  carol->send(v2::ChatRequest{"hello"});
  EXPECT_EQ(carol->expect<v2::ChatBroadcast>(), (v2::ChatBroadcast{"carol", "hello"}))
      << "exercise 6.2: carol must not hear alice's private message";
}

/// LOGIN_REQUEST `id` from `client` to `room`, and the status it answers.
v2::LoginStatus login(v2::ChatRoom<int>& room, int client, const std::string& id) {
  v2::LoginStatus status = v2::LoginStatus::invalid_id;
  const auto frame = v2::encode(v2::LoginRequest{id});
  room.on_frame(client, frame, [&status](const SharedBuffer& response) {
    const v2::Decoded decoded = v2::decode(*response);
    if (decoded.packet) status = std::get<v2::LoginResponse>(*decoded.packet).status;
    return true;
  });
  return status;
}

// Exercise 6.3: ids that differ only in ASCII case are the same id.
TEST(Exercise6_3, IdsDifferingOnlyInCaseAreTaken) {
  v2::ChatRoom<int> room;  // the rules alone, no sockets: clients are numbers
  ASSERT_EQ(login(room, 1, "alice"), v2::LoginStatus::ok);
  EXPECT_EQ(login(room, 2, "ALICE"), v2::LoginStatus::id_taken)
      << "exercise 6.3: 'ALICE' is taken while 'alice' is logged in (compare ids with ASCII "
         "letters folded to lower case in ChatRoom::on_login)";
  EXPECT_EQ(login(room, 2, "Alice"), v2::LoginStatus::id_taken) << "exercise 6.3";
  EXPECT_EQ(login(room, 2, "민수"), v2::LoginStatus::ok) << "exercise 6.3: other ids still log in";
  room.on_leave(1);
  EXPECT_EQ(login(room, 3, "ALICE"), v2::LoginStatus::ok)
      << "exercise 6.3: once alice left, 'ALICE' is free (release the folded id too)";
  EXPECT_EQ(room.id_of(3), std::optional<std::string>("ALICE"))
      << "exercise 6.3: the id keeps the case it was given";
}

INSTANTIATE_TEST_SUITE_P(Backends, V2Exercise, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::exercises
