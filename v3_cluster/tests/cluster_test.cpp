// cluster_test.cpp — a three-node NATS cluster (routes, all on 127.0.0.1):
// backplanes attached to different NATS nodes exchange chat in order;
// killing the NATS node one is attached to moves it to another within a
// bound, without anyone declaring it dead; and a node cut off long enough to
// be declared dead learns it when it returns, keeps the ids nobody took and
// gives up those somebody did.
#include <gtest/gtest.h>

#include "nats_fixture.hpp"

namespace iocp_chat::v3::test {
namespace {

using Clock = std::chrono::steady_clock;

class Cluster : public NatsTest {
 protected:
  void SetUp() override {
    NatsTest::SetUp();
    NatsAuth auth;
    auth.token = token_;
    cluster_ = std::make_unique<NatsCluster>(directory_.path(), auth);
    cluster_->start();
  }
  /// Node settings: these NATS nodes in this order; the bucket on all three.
  BackplaneSettings on(const std::string& node, const std::vector<std::size_t>& nats_nodes) const {
    std::vector<std::string> urls;
    for (std::size_t index : nats_nodes) urls.push_back(cluster_->node(index).url());
    BackplaneSettings result = settings(node, urls);
    result.registry.replicas = 3;
    result.registry.setup_timeout = 30s;
    return result;
  }
  std::string port_of(std::size_t index) const { return ":" + std::to_string(cluster_->node(index).port()); }
  std::unique_ptr<NatsCluster> cluster_;
};

/// Checks that `heard` got `count` chats from `node` numbered without gaps
/// and carrying "0", "1", ... in order.
void expect_in_order(const RecordingListener& heard, const std::string& node, int count) {
  std::vector<Recorded> chats;
  for (const Recorded& event : heard.events()) {
    if (event.kind == "chat" && event.node == node) chats.push_back(event);
  }
  ASSERT_EQ(chats.size(), static_cast<std::size_t>(count)) << "lost or duplicated";
  for (std::size_t i = 0; i < chats.size(); ++i) {
    EXPECT_EQ(chats[i].text, std::to_string(i));
    if (i > 0) {
      EXPECT_EQ(chats[i].sequence, chats[i - 1].sequence + 1) << "a gap in the numbering";
    }
  }
}

TEST_F(Cluster, NodesOnDifferentNatsServersChatInOrder) {
  RecordingListener heard_a, heard_b;
  Backplane a(on("a", {0, 1, 2}), heard_a), b(on("b", {1, 2, 0}), heard_b);
  a.start();
  b.start();
  EXPECT_NE(a.connected_url().find(port_of(0)), std::string::npos) << a.connected_url();
  EXPECT_NE(b.connected_url().find(port_of(1)), std::string::npos) << b.connected_url();
  ASSERT_EQ(a.claim_and_wait("ann").status, ClaimStatus::claimed);
  ASSERT_EQ(b.claim_and_wait("ben").status, ClaimStatus::claimed);
  ASSERT_TRUE(heard_b.wait_for("joined", "a", 5s));
  ASSERT_TRUE(heard_a.wait_for("joined", "b", 5s));
  EXPECT_EQ(b.claim_and_wait("ann").status, ClaimStatus::taken) << "unique across the NATS cluster";

  constexpr int kLines = 300;
  for (int i = 0; i < kLines; ++i) {
    ASSERT_TRUE(a.publish_chat("ann", std::to_string(i)));
    ASSERT_TRUE(b.publish_chat("ben", std::to_string(i)));
  }
  ASSERT_TRUE(
      eventually([&] { return heard_b.count("chat") == kLines && heard_a.count("chat") == kLines; }, 10s));
  expect_in_order(heard_b, "a", kLines);
  expect_in_order(heard_a, "b", kLines);
  EXPECT_EQ(b.stats().view.gaps, 0u);
  EXPECT_EQ(a.stats().view.gaps, 0u);
}

TEST_F(Cluster, KillingTheAttachedNatsNodeMovesTheNodeToAnotherWithinTheBound) {
  RecordingListener heard_a, heard_b;
  Backplane a(on("a", {0, 1, 2}), heard_a), b(on("b", {1, 2, 0}), heard_b);
  a.start();
  b.start();
  ASSERT_EQ(a.claim_and_wait("ann").status, ClaimStatus::claimed);
  ASSERT_TRUE(heard_b.wait_for("joined", "a", 5s));

  cluster_->node(0).kill();
  const std::optional<Recorded> lost = heard_a.wait_for("lost", "", 5s);
  ASSERT_TRUE(lost);
  const std::optional<Recorded> back = heard_a.wait_for("back", "", 10s);
  ASSERT_TRUE(back) << "a did not move to another NATS node";
  const auto failover = std::chrono::duration_cast<std::chrono::milliseconds>(back->at - lost->at);
  EXPECT_LE(failover, 2s) << "failover bound: another server is tried at once";
  EXPECT_EQ(back->text.find(port_of(0)), std::string::npos) << "back on the killed node? " << back->text;
  RecordProperty("failover_ms", static_cast<int>(failover.count()));

  // It talks again through its new server, and nobody declared it dead.
  ASSERT_TRUE(a.publish_chat("ann", "after failover"));
  ASSERT_TRUE(
      heard_b.wait_for([](const Recorded& e) { return e.kind == "chat" && e.text == "after failover"; }, 5s));
  std::this_thread::sleep_for(4s);
  EXPECT_EQ(heard_b.count("down"), 0u);
  // The bucket has three replicas: it survives the loss of one NATS node.
  // If the killed node led the bucket (or JetStream itself), the other two
  // elect new leaders first: NATS's elections wait 4–9 s of silence each,
  // so allow for two of them on a loaded machine.
  ClaimResult claim;
  ASSERT_TRUE(
      eventually([&] { return (claim = a.claim_and_wait("art")).status == ClaimStatus::claimed; }, 30s))
      << claim.error;
  EXPECT_EQ(b.claim_and_wait("ann").status, ClaimStatus::taken);
}

TEST_F(Cluster, ANodeCutOffAndDeclaredDeadGivesUpTheIdsOthersTookAndKeepsTheRest) {
  // a can reach only NATS node 1, b only node 2: killing node 1 cuts a off
  // while b and the bucket (two of three replicas) carry on.
  BackplaneSettings only_first = on("a", {0});
  only_first.ignore_discovered_servers = true;
  BackplaneSettings only_second = on("b", {1});
  only_second.ignore_discovered_servers = true;
  RecordingListener heard_a, heard_b;
  Backplane a(only_first, heard_a), b(only_second, heard_b);
  a.start();
  b.start();
  ASSERT_EQ(a.claim_and_wait("dora").status, ClaimStatus::claimed);
  ASSERT_EQ(a.claim_and_wait("ed").status, ClaimStatus::claimed);
  ASSERT_TRUE(
      heard_b.wait_for([](const Recorded& e) { return e.kind == "joined" && e.user_id == "ed"; }, 5s));

  cluster_->node(0).kill();
  ASSERT_TRUE(heard_a.wait_for("lost", "", 5s));
  const std::optional<Recorded> down = heard_b.wait_for("down", "a", 10s);
  ASSERT_TRUE(down) << "b never declared the cut-off node dead";
  EXPECT_EQ(down->ids, (std::vector<std::string>{"dora", "ed"}));
  // b's release lets a new client take dora (the bucket may need a moment
  // to elect a new leader if node 1 led it).
  ClaimResult taken_over;
  ASSERT_TRUE(
      eventually([&] { return (taken_over = b.claim_and_wait("dora")).status == ClaimStatus::claimed; }, 20s))
      << taken_over.error;

  // a comes back: it must learn that dora is no longer its own, and may keep ed.
  cluster_->node(0).start(false);
  ASSERT_TRUE(heard_a.wait_for("back", "", 30s))
      << "NATS node 0 " << (cluster_->node(0).wait_healthy(1s) ? "is healthy" : "is not healthy")
      << "; its log:\n"
      << cluster_->node(0).log();
  const std::optional<Recorded> revoked = heard_a.wait_for("revoked", "", 30s);
  ASSERT_TRUE(revoked) << "a kept serving an id that b's client holds";
  EXPECT_EQ(revoked->ids, std::vector<std::string>{"dora"});
  ASSERT_TRUE(eventually([&] { return a.local_ids() == std::vector<std::string>{"ed"}; }, 10s));
  // b takes a back, with the members it still has.
  ASSERT_TRUE(heard_b.wait_for("up", "a", 20s));
  ASSERT_TRUE(heard_b.wait_for(
      [&](const Recorded& e) { return e.kind == "joined" && e.user_id == "ed" && e.at > down->at; }, 10s));
  EXPECT_EQ(a.registry().lookup("ed")->holder, a.holder());
  EXPECT_EQ(a.registry().lookup("dora")->holder, b.holder());
}

}  // namespace
}  // namespace iocp_chat::v3::test
