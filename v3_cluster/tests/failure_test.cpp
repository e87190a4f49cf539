// failure_test.cpp — the failures ver.3 promises to survive, each with its
// bound, against a real nats-server:
//   * a node killed with SIGKILL is declared dead within the bound (default
//     ≤ 5 s from the kill) with the members it had, and its ids are free;
//   * a node that stops cleanly is reported gone at once;
//   * nats-server stopped and restarted: every node reports the loss, answers
//     "unavailable" (TRY_LATER) to claims, declares no one dead meanwhile,
//     and comes back by itself with its ids still its own.
// The bounds follow from the settings (README "Failure bounds"); the tests
// check the default bound, which has a wide margin over the detector's
// 3.25 s, so a slow machine does not fail them.
#include <gtest/gtest.h>
#include <signal.h>

#include "nats_fixture.hpp"

namespace iocp_chat::v3::test {
namespace {

using Clock = std::chrono::steady_clock;
using Failure = NatsTest;

/// The documented default bound, from a node's death to the others
/// reporting it and its ids being free.
constexpr auto kDeathBound = 5s;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

/// v3_backplane_node on this test's server, claiming `ids`.
std::unique_ptr<Process> start_node(const NatsTest& test, const std::string& url, const std::string& node,
                                    const std::filesystem::path& credentials,
                                    const std::filesystem::path& output,
                                    const std::vector<std::string>& ids) {
  (void)test;
  std::vector<std::string> arguments{"--nats", url, "--node", node, "--credentials", credentials.string()};
  for (const std::string& id : ids) {
    arguments.push_back("--claim");
    arguments.push_back(id);
  }
  return std::make_unique<Process>(IOCP_CHAT_V3_NODE, arguments, output);
}

TEST_F(Failure, AKilledNodeIsDeclaredDeadWithinTheBoundAndItsIdsAreFreed) {
  start_server();
  RecordingListener heard;
  Backplane observer(settings("observer"), heard);
  observer.start();
  std::unique_ptr<Process> victim = start_node(*this, server_->url(), "victim", credentials_,
                                               directory_.path() / "victim.out", {"alice", "bob"});
  ASSERT_TRUE(victim->wait_for_output("ready", 15s)) << victim->output();
  ASSERT_TRUE(heard.wait_for([](const Recorded& e) { return e.kind == "joined" && e.user_id == "bob"; }, 5s));
  EXPECT_EQ(observer.claim_and_wait("alice").status, ClaimStatus::taken);

  const auto killed = Clock::now();
  victim->signal(SIGKILL);
  const std::optional<Recorded> down = heard.wait_for("down", "victim", 10s);
  ASSERT_TRUE(down) << "the killed node was never declared dead";
  const auto detected = std::chrono::duration_cast<std::chrono::milliseconds>(down->at - killed);
  EXPECT_EQ(down->reason, NodeDownReason::silent);
  EXPECT_EQ(down->ids, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_LE(detected, kDeathBound);
  EXPECT_GE(detected, 2s) << "declared dead before dead_after minus one heartbeat: not by silence?";

  // Its ids are free for a new login within the same bound.
  ClaimResult again;
  ASSERT_TRUE(eventually(
      [&] { return (again = observer.claim_and_wait("alice")).status == ClaimStatus::claimed; }, 10s));
  EXPECT_LE(since(killed), kDeathBound);
  EXPECT_EQ(observer.claim_and_wait("bob").status, ClaimStatus::claimed);
  RecordProperty("detected_ms", static_cast<int>(detected.count()));
  RecordProperty("ids_free_ms", static_cast<int>(since(killed).count()));
}

TEST_F(Failure, ANodeThatStopsCleanlyIsReportedGoneAtOnce) {
  start_server();
  RecordingListener heard;
  Backplane observer(settings("observer"), heard);
  observer.start();
  std::unique_ptr<Process> leaver =
      start_node(*this, server_->url(), "leaver", credentials_, directory_.path() / "leaver.out", {"lea"});
  ASSERT_TRUE(leaver->wait_for_output("ready", 15s)) << leaver->output();
  ASSERT_TRUE(heard.wait_for("joined", "leaver", 5s));
  const auto stopped = Clock::now();
  leaver->signal(SIGTERM);
  const std::optional<Recorded> down = heard.wait_for("down", "leaver", 5s);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->reason, NodeDownReason::goodbye);
  EXPECT_EQ(down->ids, std::vector<std::string>{"lea"});
  EXPECT_LT(down->at - stopped, 1s);
  EXPECT_EQ(observer.claim_and_wait("lea").status, ClaimStatus::claimed) << "released before the goodbye";
  EXPECT_EQ(leaver->wait(5s), 0);
}

TEST_F(Failure, NatsStoppedAndRestartedEveryNodeReportsLostThenBackAndKeepsItsIds) {
  start_server();
  RecordingListener heard_a, heard_b;
  Backplane a(settings("a"), heard_a), b(settings("b"), heard_b);
  a.start();
  b.start();
  ASSERT_EQ(a.claim_and_wait("amy").status, ClaimStatus::claimed);
  ASSERT_TRUE(heard_b.wait_for("joined", "a", 5s));

  server_->stop();
  ASSERT_TRUE(heard_a.wait_for("lost", "", 5s));
  ASSERT_TRUE(heard_b.wait_for("lost", "", 5s));
  const ClaimResult while_down = a.claim_and_wait("zed");
  EXPECT_EQ(while_down.status, ClaimStatus::unavailable) << "a login that cannot be checked gets TRY_LATER";
  EXPECT_FALSE(a.publish_chat("amy", "into the void")) << "at-most-once: not queued for later";
  // Longer than dead_after: a node that cannot hear itself judges no one.
  std::this_thread::sleep_for(4s);

  server_->start();
  ASSERT_TRUE(heard_a.wait_for("back", "", 15s)) << "no reconnect without a restart";
  ASSERT_TRUE(heard_b.wait_for("back", "", 15s));
  ClaimResult after;
  ASSERT_TRUE(
      eventually([&] { return (after = a.claim_and_wait("zed")).status == ClaimStatus::claimed; }, 10s))
      << after.error;
  EXPECT_EQ(b.claim_and_wait("amy").status, ClaimStatus::taken) << "amy is still a's: never held twice";
  EXPECT_EQ(a.registry().lookup("amy")->holder, a.holder());
  ASSERT_TRUE(a.publish_chat("amy", "back again"));
  ASSERT_TRUE(heard_b.wait_for("chat", "a", 5s));
  // Some seconds after the return, still nobody was declared dead.
  std::this_thread::sleep_for(4s);
  EXPECT_EQ(heard_a.count("down"), 0u);
  EXPECT_EQ(heard_b.count("down"), 0u);
  EXPECT_EQ(a.local_ids(), (std::vector<std::string>{"amy", "zed"}));
  EXPECT_FALSE(heard_a.overlapped());
}

}  // namespace
}  // namespace iocp_chat::v3::test
