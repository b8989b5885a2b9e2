// Core::census(): the counts behind the coordinator's metrics follow every transition, and
// groups that are forgotten, restored or dropped with their partition add or remove theirs.
#include <gtest/gtest.h>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using std::chrono::seconds;

class CensusTest : public CoreTest {
 protected:
  static std::int64_t steps(const Census& c) {
    return c.steps_waiting + c.steps_queued + c.steps_running + c.steps_succeeded +
           c.steps_failed;
  }
  static std::uint64_t retries(const Census& c, RetryReason reason) {
    return c.retries_total[static_cast<std::size_t>(reason)];
  }
  td::v1::PeerHeartbeat heartbeat(const std::string& group, const std::string& peer) {
    td::v1::PeerHeartbeat hb;
    hb.set_group_id(group);
    hb.set_peer_id(peer);
    hb.set_session_id(sessionOf(peer));
    return hb;
  }
};

TEST_F(CensusTest, FollowsAGroupFromCreationThroughARetryToCompletionAndForgetting) {
  const auto& c = core_.census();
  EXPECT_EQ(c.groups_running, 0);
  auto g = join(PeerBuilder("1").change("c1").steps(3));   // 1 runs a; b, c queued
  EXPECT_EQ(c.groups_running, 1);
  EXPECT_EQ(c.groups_created_total, 1u);
  EXPECT_EQ(c.steps_running, 1);
  EXPECT_EQ(c.steps_queued, 2);
  EXPECT_EQ(c.steps_assigned_total, 1u);

  Effects e = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);   // a retried; 1 takes b
  EXPECT_EQ(retries(c, RetryReason::kFailed), 1u);
  EXPECT_EQ(retries(c, RetryReason::kLost), 0u);
  EXPECT_EQ(c.steps_running, 1);
  EXPECT_EQ(c.steps_queued, 2);
  EXPECT_EQ(steps(c), 3);

  // Finish whatever is assigned until the group completes (a's backoff passes on the way).
  for (int round = 0; round < 20 && c.groups_completed == 0; ++round) {
    auto assigned = assignments(e);
    if (assigned.empty()) {
      clock_.advance(seconds(1));
      e = run(Tick{});
      continue;
    }
    for (const auto& a : assigned) {
      e = finish(g, "1", a.step_id(), a.attempt(), td::v1::STEP_OUTCOME_SUCCEEDED);
    }
  }
  EXPECT_EQ(c.groups_running, 0);
  EXPECT_EQ(c.groups_completed, 1);
  EXPECT_EQ(c.groups_completed_total, 1u);
  EXPECT_EQ(c.steps_succeeded, 3);
  EXPECT_EQ(c.steps_running + c.steps_queued + c.steps_waiting + c.steps_failed, 0);
  EXPECT_EQ(c.steps_assigned_total, 4u);

  clock_.advance(core_.config().finished_group_retention + seconds(1));
  (void)run(Tick{});
  EXPECT_EQ(core_.groupCount(), 0u);
  EXPECT_EQ(c.groups_completed, 0) << "forgotten groups are no longer held";
  EXPECT_EQ(steps(c), 0);
  EXPECT_EQ(c.groups_completed_total, 1u) << "totals never decrease";
}

TEST_F(CensusTest, CountsWaitingStepsAndAFailedGroup) {
  const auto& c = core_.census();
  auto g = join(PeerBuilder("1").change("c1").step("a", 1).step("b", 1, {"a"}));
  EXPECT_EQ(c.steps_running, 1);
  EXPECT_EQ(c.steps_waiting, 1);
  (void)finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);   // max_attempts 1: group fails
  EXPECT_EQ(c.groups_running, 0);
  EXPECT_EQ(c.groups_failed, 1);
  EXPECT_EQ(c.groups_failed_total, 1u);
  EXPECT_EQ(c.steps_failed, 2);
  EXPECT_EQ(retries(c, RetryReason::kFailed), 0u);
}

TEST_F(CensusTest, CountsLostPeersAndRetriesAfterLost) {
  const auto& c = core_.census();
  // No speculative twin races a on the idle 2 meanwhile: a is re-queued when 1 is lost.
  auto g = join(PeerBuilder("1").change("c1").steps(2).noSpeculation());   // 1 runs a
  join(PeerBuilder("2").change("c1").steps(2).noSpeculation());            // 2 runs b
  finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  for (Millis t{0}; t < core_.config().lease + seconds(1); t += Millis(500)) {
    clock_.advance(Millis(500));
    (void)run(heartbeat(g, "2"));
    (void)run(Tick{});
  }
  EXPECT_EQ(c.peers_lost_total, 1u);
  EXPECT_EQ(retries(c, RetryReason::kLost), 1u);
  EXPECT_EQ(c.steps_running, 1) << "a runs again, on 2";
  EXPECT_EQ(c.steps_succeeded, 1);
}

TEST_F(CensusTest, RestoredGroupsAreCountedAndDroppedPartitionsUncounted) {
  auto g = join(PeerBuilder("1").change("c1").steps(3));
  auto snapshot = core_.snapshot(g, clock_.now());
  ASSERT_TRUE(snapshot.has_value());
  const auto partition = *core_.partitionOf(g);

  Core next(CoreConfig{.coordinator_id = "next"});
  (void)next.restore(partition, 2, {*snapshot}, {}, clock_.now());
  const auto& c = next.census();
  EXPECT_EQ(c.groups_running, 1);
  EXPECT_EQ(c.steps_running, 1);
  EXPECT_EQ(c.steps_queued, 2);
  EXPECT_EQ(c.groups_created_total, 0u) << "a restore creates nothing";

  next.dropPartition(partition);
  EXPECT_EQ(c.groups_running, 0);
  EXPECT_EQ(steps(c), 0);
}

}  // namespace
}  // namespace td::coordinator::testing
