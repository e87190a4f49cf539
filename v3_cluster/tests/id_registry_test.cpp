// id_registry_test.cpp — cluster-wide unique ids on the real JetStream
// key-value bucket: of two claims racing on two connections exactly one
// wins; a release is by revision and never removes someone else's later
// claim; a renewal moves a claim to a new revision and defeats a stale
// release.
#include "id_registry.hpp"

#include <gtest/gtest.h>

#include <barrier>
#include <thread>

#include "nats_fixture.hpp"

namespace iocp_chat::v3::test {
namespace {

class Registry : public NatsTest {
 protected:
  void SetUp() override {
    NatsTest::SetUp();
    start_server();
    natsStatus status = NATS_OK;
    first_connection_ = connect_raw(server_->url(), status, token_);
    ASSERT_EQ(status, NATS_OK);
    second_connection_ = connect_raw(server_->url(), status, token_);
    ASSERT_EQ(status, NATS_OK);
    first_ = std::make_unique<IdRegistry>(first_connection_.get(), "lobby", RegistrySettings{});
    second_ = std::make_unique<IdRegistry>(second_connection_.get(), "lobby", RegistrySettings{});
  }
  nats::Connection first_connection_, second_connection_;
  std::unique_ptr<IdRegistry> first_, second_;
};

TEST_F(Registry, OfTwoRacingClaimsOnTwoConnectionsExactlyOneWins) {
  constexpr int kIds = 40;
  std::vector<ClaimResult> results_a(kIds), results_b(kIds);
  std::barrier start_line(2);
  auto racer = [&](IdRegistry& registry, const std::string& holder, std::vector<ClaimResult>& results) {
    for (int i = 0; i < kIds; ++i) {
      start_line.arrive_and_wait();  // both claim id i at the same moment
      results[static_cast<std::size_t>(i)] = registry.claim("racer" + std::to_string(i), holder);
    }
  };
  std::thread a([&] { racer(*first_, "a 1", results_a); });
  std::thread b([&] { racer(*second_, "b 2", results_b); });
  a.join();
  b.join();
  int a_won = 0;
  for (int i = 0; i < kIds; ++i) {
    const ClaimResult& ra = results_a[static_cast<std::size_t>(i)];
    const ClaimResult& rb = results_b[static_cast<std::size_t>(i)];
    SCOPED_TRACE("racer" + std::to_string(i));
    ASSERT_NE(ra.status, ClaimStatus::unavailable) << ra.error;
    ASSERT_NE(rb.status, ClaimStatus::unavailable) << rb.error;
    ASSERT_NE(ra.status == ClaimStatus::claimed, rb.status == ClaimStatus::claimed) << "exactly one must win";
    const ClaimResult& winner = ra.status == ClaimStatus::claimed ? ra : rb;
    const ClaimResult& loser = ra.status == ClaimStatus::claimed ? rb : ra;
    EXPECT_EQ(loser.holder, winner.holder) << "the loser is told who holds it";
    EXPECT_EQ(loser.revision, winner.revision);
    const std::optional<IdEntry> entry = first_->lookup("racer" + std::to_string(i));
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->holder, winner.holder);
    a_won += ra.status == ClaimStatus::claimed ? 1 : 0;
  }
  RecordProperty("claims_won_by_a", a_won);
}

TEST_F(Registry, AReleaseIsByRevisionAndNeverRemovesALaterClaim) {
  const ClaimResult first_claim = first_->claim("carol", "a 1");
  ASSERT_EQ(first_claim.status, ClaimStatus::claimed);
  EXPECT_EQ(second_->claim("carol", "b 2").status, ClaimStatus::taken);
  EXPECT_EQ(first_->release("carol", first_claim.revision), ReleaseStatus::released);
  EXPECT_FALSE(first_->lookup("carol")) << "released";

  const ClaimResult second_claim = second_->claim("carol", "b 2");
  ASSERT_EQ(second_claim.status, ClaimStatus::claimed) << "a released id (a tombstone) can be claimed again";
  EXPECT_GT(second_claim.revision, first_claim.revision);
  // a's late, repeated release carries a's revision: refused.
  EXPECT_EQ(first_->release("carol", first_claim.revision), ReleaseStatus::changed);
  EXPECT_EQ(first_->release("carol", 0), ReleaseStatus::changed);
  const std::optional<IdEntry> entry = first_->lookup("carol");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->holder, "b 2");
  EXPECT_EQ(entry->revision, second_claim.revision);
  EXPECT_EQ(second_->release("carol", second_claim.revision), ReleaseStatus::released);
}

TEST_F(Registry, ARenewalMovesTheClaimAndDefeatsAStaleRelease) {
  const ClaimResult claimed = first_->claim("dave", "a 1");
  ASSERT_EQ(claimed.status, ClaimStatus::claimed);
  const ClaimResult renewed = first_->renew("dave", "a 1", claimed.revision);
  ASSERT_EQ(renewed.status, ClaimStatus::claimed);
  EXPECT_GT(renewed.revision, claimed.revision);
  // A peer that read the old revision (it declared a dead) cannot release it.
  EXPECT_EQ(second_->release("dave", claimed.revision), ReleaseStatus::changed);
  EXPECT_EQ(first_->lookup("dave")->holder, "a 1");

  // The peer was first this time: the renewal finds it gone and claims again.
  EXPECT_EQ(second_->release("dave", renewed.revision), ReleaseStatus::released);
  const ClaimResult again = first_->renew("dave", "a 1", renewed.revision);
  ASSERT_EQ(again.status, ClaimStatus::claimed);

  // And if someone else took it meanwhile, the renewal says who.
  EXPECT_EQ(second_->release("dave", again.revision), ReleaseStatus::released);
  ASSERT_EQ(second_->claim("dave", "b 2").status, ClaimStatus::claimed);
  const ClaimResult lost = first_->renew("dave", "a 1", again.revision);
  EXPECT_EQ(lost.status, ClaimStatus::taken);
  EXPECT_EQ(lost.holder, "b 2");
}

TEST_F(Registry, EntriesListsTheLiveIdsWithTheirHolders) {
  ASSERT_EQ(first_->claim("x", "a 1").status, ClaimStatus::claimed);
  const ClaimResult y = first_->claim("y", "a 1");
  ASSERT_EQ(second_->claim("민수", "b 2").status, ClaimStatus::claimed);
  ASSERT_EQ(first_->release("y", y.revision), ReleaseStatus::released);
  std::map<std::string, std::string> holders;
  for (const IdEntry& entry : second_->entries()) holders[entry.user_id] = entry.holder;
  EXPECT_EQ(holders, (std::map<std::string, std::string>{{"x", "a 1"}, {"민수", "b 2"}}));
}

// The same race end to end: two backplanes (two nodes, two connections)
// claim one id at once, as two clients logging in on two servers would.
TEST_F(Registry, TwoNodesRacingForOneIdGetExactlyOneOk) {
  RecordingListener heard_a, heard_b;
  Backplane a(settings("a"), heard_a), b(settings("b"), heard_b);
  a.start();
  b.start();
  for (int i = 0; i < 10; ++i) {
    const std::string id = "login" + std::to_string(i);
    std::barrier start_line(2);
    ClaimResult result_a, result_b;
    std::thread ta([&] {
      start_line.arrive_and_wait();
      result_a = a.claim_and_wait(id);
    });
    std::thread tb([&] {
      start_line.arrive_and_wait();
      result_b = b.claim_and_wait(id);
    });
    ta.join();
    tb.join();
    ASSERT_NE(result_a.status == ClaimStatus::claimed, result_b.status == ClaimStatus::claimed) << id;
    // The loser's node hears that the winner's client joined.
    Backplane& winner = result_a.status == ClaimStatus::claimed ? a : b;
    RecordingListener& loser_heard = result_a.status == ClaimStatus::claimed ? heard_b : heard_a;
    EXPECT_TRUE(loser_heard.wait_for(
        [&](const Recorded& event) {
          return event.kind == "joined" && event.user_id == id && event.node == winner.node();
        },
        5s))
        << id;
  }
  EXPECT_FALSE(heard_a.overlapped());
  EXPECT_FALSE(heard_b.overlapped());
}

}  // namespace
}  // namespace iocp_chat::v3::test
