// room_view_test.cpp — the failure detector and the per-node membership,
// fed messages and times by hand: when a node is declared dead, whose
// silence counts, what is reported and asked for, and how a node declared
// dead is taken back. No NATS, no clock: every time is a number of
// milliseconds after t0.
#include "room_view.hpp"

#include <gtest/gtest.h>

namespace iocp_chat::v3 {
namespace {

using namespace std::chrono_literals;
using Clock = RoomView::Clock;
using Type = ViewEvent::Type;

const Clock::time_point t0 = Clock::time_point{} + 1000h;

Clock::time_point at(std::chrono::milliseconds offset) { return t0 + offset; }

RoomMessage message(MessageKind kind, const std::string& node, std::uint64_t incarnation,
                    std::uint64_t sequence, const std::string& user_id = {}) {
  RoomMessage result;
  result.kind = kind;
  result.node = node;
  result.incarnation = incarnation;
  result.sequence = sequence;
  result.user_id = user_id;
  if (kind == MessageKind::chat) result.text = "hi";
  return result;
}

RoomMessage heartbeat(const std::string& node, std::uint64_t incarnation, std::uint64_t last_sequence = 0) {
  return message(MessageKind::heartbeat, node, incarnation, last_sequence);
}

RoomMessage roster(const std::string& node, std::uint64_t incarnation, std::uint64_t sequence,
                   std::vector<std::string> members,
                   std::uint8_t flags = kRosterFirstPart | kRosterLastPart) {
  RoomMessage result = message(MessageKind::roster, node, incarnation, sequence);
  result.members = std::move(members);
  result.roster_flags = flags;
  return result;
}

std::vector<Type> types(const ViewActions& actions) {
  std::vector<Type> result;
  for (const ViewEvent& event : actions.events) result.push_back(event.type);
  return result;
}

/// View of node "a" (incarnation 1) that hears itself at t0 and knows "b" (incarnation 10) from t0.
struct ViewOfA : ::testing::Test {
  RoomView view{"a", 1, LivenessSettings{}};
  void SetUp() override {
    ASSERT_FALSE(view.on_message(heartbeat("a", 1), at(0ms)).renew_own_ids) << "no one knew it before";
    const ViewActions actions = view.on_message(heartbeat("b", 10), at(0ms));
    ASSERT_EQ(types(actions), std::vector<Type>{Type::node_up});
  }
  /// Own heartbeats every second from t0 up to `until`, with ticks in between.
  ViewActions hear_self_until(std::chrono::milliseconds until) {
    ViewActions last;
    for (auto time = 0ms; time <= until; time += 250ms) {
      if (time.count() % 1000 == 0) view.on_message(heartbeat("a", 1), at(time));
      ViewActions actions = view.on_tick(at(time));
      if (!actions.events.empty()) return actions;
      last = std::move(actions);
    }
    return last;
  }
};

TEST_F(ViewOfA, APeerSilentForDeadAfterIsDeclaredDeadAndItsIdsAreToBeReleased) {
  for (auto time : {1000ms, 2000ms, 3000ms}) view.on_message(heartbeat("a", 1), at(time));
  EXPECT_TRUE(view.on_tick(at(3000ms)).events.empty()) << "3 s of silence is not yet more than dead_after";
  const ViewActions actions = view.on_tick(at(3001ms));
  ASSERT_EQ(types(actions), std::vector<Type>{Type::node_down});
  EXPECT_EQ(actions.events[0].node, "b");
  EXPECT_EQ(actions.events[0].reason, NodeDownReason::silent);
  EXPECT_EQ(actions.release_ids_of, (std::vector<std::pair<std::string, std::uint64_t>>{{"b", 10}}));
  EXPECT_TRUE(view.on_tick(at(4000ms)).events.empty()) << "declared once";
  EXPECT_EQ(view.counters().declared_dead, 1u);
}

TEST_F(ViewOfA, AnyMessageCountsAsBeingHeard) {
  view.on_message(message(MessageKind::chat, "b", 10, 1, "bob"), at(2500ms));
  EXPECT_TRUE(hear_self_until(5500ms).events.empty());
  const ViewActions actions = hear_self_until(5750ms);
  EXPECT_EQ(types(actions), std::vector<Type>{Type::node_down});
}

TEST_F(ViewOfA, ADeafNodeDeclaresNoOneDead) {
  // "a" stops hearing itself after t0 (NATS is down): nobody is judged.
  for (auto time = 250ms; time <= 10000ms; time += 250ms) {
    EXPECT_TRUE(view.on_tick(at(time)).events.empty()) << time.count();
  }
  EXPECT_TRUE(view.deaf());
  // It hears itself again at 10 s: it renews its ids, and b's clock restarts.
  const ViewActions back = view.on_message(heartbeat("a", 1), at(10000ms));
  EXPECT_TRUE(back.renew_own_ids);
  EXPECT_FALSE(view.deaf());
  view.on_message(heartbeat("a", 1), at(11000ms));
  view.on_message(heartbeat("a", 1), at(12000ms));
  view.on_message(heartbeat("a", 1), at(13000ms));
  EXPECT_TRUE(view.on_tick(at(13000ms)).events.empty());
  EXPECT_EQ(types(view.on_tick(at(13001ms))), std::vector<Type>{Type::node_down});
}

TEST_F(ViewOfA, LosingTheConnectionMakesItDeafAtOnce) {
  view.on_connection_lost();
  EXPECT_TRUE(view.deaf());
  EXPECT_TRUE(view.on_tick(at(3500ms)).events.empty());
}

TEST_F(ViewOfA, HeartbeatsWithinTheBoundKeepAPeerAlive) {
  for (auto time = 0ms; time <= 20000ms; time += 1000ms) {
    view.on_message(heartbeat("a", 1), at(time));
    view.on_message(heartbeat("b", 10), at(time + 500ms));
    EXPECT_TRUE(view.on_tick(at(time + 750ms)).events.empty());
  }
}

TEST_F(ViewOfA, TheMembersAPeerHadAreReportedWithItsDeath) {
  EXPECT_EQ(types(view.on_message(message(MessageKind::joined, "b", 10, 1, "x"), at(0ms))),
            std::vector<Type>{Type::member_joined});
  view.on_message(message(MessageKind::joined, "b", 10, 2, "y"), at(0ms));
  EXPECT_EQ(types(view.on_message(message(MessageKind::left, "b", 10, 3, "x"), at(0ms))),
            std::vector<Type>{Type::member_left});
  view.on_message(message(MessageKind::joined, "b", 10, 4, "z"), at(0ms));
  const ViewActions actions = hear_self_until(4000ms);
  ASSERT_EQ(types(actions), std::vector<Type>{Type::node_down});
  EXPECT_EQ(actions.events[0].members, (std::vector<std::string>{"y", "z"}));
}

TEST_F(ViewOfA, AGoodbyeReportsTheMembersAtOnceAndNeedsNoRelease) {
  view.on_message(message(MessageKind::joined, "b", 10, 1, "x"), at(0ms));
  const ViewActions actions = view.on_message(message(MessageKind::goodbye, "b", 10, 1), at(100ms));
  ASSERT_EQ(types(actions), std::vector<Type>{Type::node_down});
  EXPECT_EQ(actions.events[0].reason, NodeDownReason::goodbye);
  EXPECT_EQ(actions.events[0].members, std::vector<std::string>{"x"});
  EXPECT_TRUE(actions.release_ids_of.empty());
  EXPECT_TRUE(hear_self_until(10000ms).events.empty())
      << "a node that said goodbye is not declared dead again";
  EXPECT_TRUE(view.on_message(heartbeat("b", 10, 1), at(10000ms)).tell_declared.empty());
}

TEST_F(ViewOfA, ANewerIncarnationMeansTheOldOneIsGone) {
  view.on_message(message(MessageKind::joined, "b", 10, 1, "x"), at(0ms));
  const ViewActions actions = view.on_message(heartbeat("b", 11), at(500ms));
  ASSERT_EQ(types(actions), (std::vector<Type>{Type::node_down, Type::node_up}));
  EXPECT_EQ(actions.events[0].reason, NodeDownReason::restarted);
  EXPECT_EQ(actions.events[0].members, std::vector<std::string>{"x"});
  EXPECT_TRUE(actions.release_ids_of.empty()) << "a restarted node cleans up after its previous life itself";
  EXPECT_TRUE(view.on_message(message(MessageKind::chat, "b", 10, 2, "x"), at(600ms)).events.empty());
  EXPECT_EQ(view.counters().late, 1u);
}

TEST_F(ViewOfA, AGapIsCountedAndTheRosterAskedForADuplicateIsDropped) {
  view.on_message(message(MessageKind::chat, "b", 10, 1, "bob"), at(0ms));
  view.on_message(message(MessageKind::chat, "b", 10, 2, "bob"), at(0ms));
  const ViewActions gap = view.on_message(message(MessageKind::chat, "b", 10, 4, "bob"), at(0ms));
  EXPECT_EQ(types(gap), std::vector<Type>{Type::chat}) << "what arrived is still delivered";
  EXPECT_EQ(gap.sync_requests, std::vector<std::string>{"b"});
  EXPECT_EQ(view.counters().gaps, 1u);
  EXPECT_TRUE(view.on_message(message(MessageKind::chat, "b", 10, 4, "bob"), at(0ms)).events.empty());
  EXPECT_TRUE(view.on_message(message(MessageKind::chat, "b", 10, 3, "bob"), at(0ms)).events.empty());
  EXPECT_EQ(view.counters().duplicates, 2u);
}

TEST_F(ViewOfA, AHeartbeatRevealsALostTail) {
  view.on_message(message(MessageKind::chat, "b", 10, 1, "bob"), at(0ms));
  EXPECT_TRUE(view.on_message(heartbeat("b", 10, 1), at(1000ms)).sync_requests.empty());
  EXPECT_EQ(view.on_message(heartbeat("b", 10, 3), at(2000ms)).sync_requests, std::vector<std::string>{"b"});
}

TEST(RoomView, ANodeMetMidStreamIsAskedForItsRoster) {
  RoomView view{"a", 1, LivenessSettings{}};
  const ViewActions from_start = view.on_message(heartbeat("b", 10, 0), at(0ms));
  EXPECT_TRUE(from_start.sync_requests.empty());
  const ViewActions mid_stream = view.on_message(heartbeat("c", 20, 57), at(0ms));
  EXPECT_EQ(mid_stream.sync_requests, std::vector<std::string>{"c"});
  const ViewActions chat_first = view.on_message(message(MessageKind::chat, "d", 30, 9, "dan"), at(0ms));
  EXPECT_EQ(types(chat_first), (std::vector<Type>{Type::node_up, Type::chat}));
  EXPECT_EQ(chat_first.sync_requests, std::vector<std::string>{"d"});
}

TEST_F(ViewOfA, ARosterIsTheTruthAndOnlyTheDifferenceIsReported) {
  view.on_message(message(MessageKind::joined, "b", 10, 1, "x"), at(0ms));
  view.on_message(message(MessageKind::joined, "b", 10, 2, "y"), at(0ms));
  EXPECT_TRUE(view.on_message(roster("b", 10, 3, {"y", "z"}, kRosterFirstPart), at(0ms)).events.empty());
  const ViewActions actions = view.on_message(roster("b", 10, 4, {"w"}, kRosterLastPart), at(0ms));
  ASSERT_EQ(actions.events.size(), 3u);
  EXPECT_EQ(actions.events[0].type, Type::member_joined);
  EXPECT_EQ(actions.events[0].user_id, "w");
  EXPECT_EQ(actions.events[1].type, Type::member_joined);
  EXPECT_EQ(actions.events[1].user_id, "z");
  EXPECT_EQ(actions.events[2].type, Type::member_left);
  EXPECT_EQ(actions.events[2].user_id, "x");
  EXPECT_EQ(view.peers().at(0).members, (std::set<std::string>{"w", "y", "z"}));
}

TEST_F(ViewOfA, ARosterWithAMissingPartIsNotTaken) {
  view.on_message(roster("b", 10, 1, {"x"}, kRosterFirstPart), at(0ms));
  // part 2 lost: number 3 arrives
  EXPECT_TRUE(view.on_message(roster("b", 10, 3, {"y"}, kRosterLastPart), at(0ms)).events.empty());
  EXPECT_TRUE(view.peers().at(0).members.empty());
}

TEST_F(ViewOfA, SyncRequestsForItOrForAllAreAnswered) {
  RoomMessage request = message(MessageKind::sync_request, "b", 10, 0);
  EXPECT_TRUE(view.on_message(request, at(0ms)).send_roster);
  request.target = "a";
  EXPECT_TRUE(view.on_message(request, at(0ms)).send_roster);
  request.target = "c";
  EXPECT_FALSE(view.on_message(request, at(0ms)).send_roster);
}

TEST_F(ViewOfA, BeingToldItWasDeclaredDeadMakesItRenewOnlyForThisLife) {
  RoomMessage notice = message(MessageKind::declared_dead, "b", 10, 0);
  notice.target = "a";
  notice.target_incarnation = 1;
  EXPECT_TRUE(view.on_message(notice, at(0ms)).renew_own_ids);
  notice.target_incarnation = 2;
  EXPECT_FALSE(view.on_message(notice, at(0ms)).renew_own_ids);
  notice.target = "c";
  notice.target_incarnation = 1;
  EXPECT_FALSE(view.on_message(notice, at(0ms)).renew_own_ids);
}

TEST_F(ViewOfA, ANodeDeclaredDeadIsToldAndTakenBackOnlyAfterTheRelease) {
  view.on_message(message(MessageKind::joined, "b", 10, 1, "x"), at(0ms));
  ASSERT_EQ(types(hear_self_until(4000ms)), std::vector<Type>{Type::node_down});

  // b was only cut off: it speaks again. It is told, and its chat is not delivered.
  ViewActions actions = view.on_message(heartbeat("b", 10, 1), at(5000ms));
  EXPECT_EQ(actions.tell_declared, (std::vector<std::pair<std::string, std::uint64_t>>{{"b", 10}}));
  EXPECT_TRUE(view.on_message(message(MessageKind::chat, "b", 10, 2, "x"), at(5100ms)).events.empty());
  EXPECT_TRUE(view.on_message(heartbeat("b", 10, 2), at(5200ms)).tell_declared.empty())
      << "once per interval";

  // Its roster before this node's release is done is not taken...
  actions = view.on_message(roster("b", 10, 3, {"x"}), at(6000ms));
  EXPECT_TRUE(actions.events.empty());
  EXPECT_FALSE(actions.tell_declared.empty()) << "told again: it must renew after the release";
  // ...after it, it is.
  view.on_release_done("b", 10);
  actions = view.on_message(roster("b", 10, 4, {"x"}), at(7000ms));
  EXPECT_EQ(types(actions), (std::vector<Type>{Type::node_up, Type::member_joined}));
  EXPECT_EQ(view.counters().rejoined, 1u);
  EXPECT_EQ(types(view.on_message(message(MessageKind::chat, "b", 10, 5, "x"), at(7100ms))),
            std::vector<Type>{Type::chat});
}

TEST(RoomView, ItsOwnChatIsIgnoredAndAnotherLifeUnderItsNameIsAClash) {
  RoomView view{"a", 1, LivenessSettings{}};
  EXPECT_TRUE(view.on_message(message(MessageKind::chat, "a", 1, 1, "me"), at(0ms)).events.empty());
  EXPECT_TRUE(view.on_message(heartbeat("a", 2), at(0ms)).name_clash);
  EXPECT_TRUE(view.peers().empty());
}

}  // namespace
}  // namespace iocp_chat::v3
