// The queue manager inside a group: assignment, retries, completion, failure, stale input.
#include <gtest/gtest.h>

#include <map>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using QueueManager = CoreTest;
using td::v1::AssignmentRecord;

TEST_F(QueueManager, EachIdlePeerGetsTheNextStepInSchemaOrder) {
  auto g = join(PeerBuilder("1").change("c1").steps(4));
  auto a1 = assignments(all_, "1");
  ASSERT_EQ(a1.size(), 1u);
  EXPECT_EQ(a1[0].step_id(), "a");
  EXPECT_EQ(a1[0].attempt(), 1u);
  Effects e = run(Registration{.peer = PeerBuilder("2").change("c1").steps(4).build()});
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "b");
  EXPECT_EQ(assignments(e)[0].peer_id(), "2");
  EXPECT_EQ(assignments(e)[0].group_id(), g);
}

TEST_F(QueueManager, SuccessFreesThePeerForTheNextStepAndAllSucceededCompletes) {
  auto g = join(PeerBuilder("1").change("c1").steps(3));
  for (const char* step : {"a", "b"}) {
    Effects e = finish(g, "1", step, 1, td::v1::STEP_OUTCOME_SUCCEEDED);
    ASSERT_EQ(assignments(e).size(), 1u);
    EXPECT_FALSE(has(e, AssignmentRecord::kCompleted));
  }
  Effects e = finish(g, "1", "c", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_TRUE(has(e, AssignmentRecord::kCompleted));
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_COMPLETED);
}

TEST_F(QueueManager, RetryPrefersAPeerThatHasNotFailedTheStep) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));   // 1 runs a
  join(PeerBuilder("2").change("c1").steps(2));            // 2 runs b
  finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);  // 2 idle, nothing queued
  Effects e = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);
  auto assigned = assignments(e);
  ASSERT_EQ(assigned.size(), 1u);
  EXPECT_EQ(assigned[0].step_id(), "a");
  EXPECT_EQ(assigned[0].attempt(), 2u);
  EXPECT_EQ(assigned[0].peer_id(), "2");
}

TEST_F(QueueManager, RetryFallsBackToTheSamePeerOnlyAfterTheBackoff) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  Effects e = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_TIMED_OUT);
  EXPECT_TRUE(assignments(e).empty()) << "the same peer waits for the backoff";
  const auto queued = events(e).back().step_queued();
  EXPECT_GE(queued.backoff_ms(), 800u);   // 1 s +- 20 % jitter
  EXPECT_LE(queued.backoff_ms(), 1200u);
  clock_.advance(Millis(queued.backoff_ms() - 1));
  EXPECT_TRUE(assignments(run(Tick{})).empty());
  clock_.advance(Millis(1));
  Effects retried = run(Tick{});
  ASSERT_EQ(assignments(retried).size(), 1u);
  EXPECT_EQ(assignments(retried)[0].peer_id(), "1");
  EXPECT_EQ(assignments(retried)[0].attempt(), 2u);
}

TEST_F(QueueManager, StepThatAlwaysFailsRunsExactlyMaxAttemptsThenTheGroupFails) {
  auto g = join(PeerBuilder("1").change("c1").step("bad", 3).step("slow", 3));
  join(PeerBuilder("2").change("c1").step("bad", 3).step("slow", 3));
  join(PeerBuilder("3").change("c1").step("bad", 3).step("slow", 3));
  // 1 runs bad, 2 runs slow, 3 idle.
  std::map<std::string, int> runs_of_bad;
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    std::string runner;
    for (const auto& a : assignments(all_)) {
      if (a.step_id() == "bad" && a.attempt() == attempt) runner = a.peer_id();
    }
    if (runner.empty()) {   // only peers that failed it are idle: wait out the backoff
      clock_.advance(std::chrono::seconds(3));
      run(Tick{});
      for (const auto& a : assignments(all_)) {
        if (a.step_id() == "bad" && a.attempt() == attempt) runner = a.peer_id();
      }
    }
    ASSERT_FALSE(runner.empty()) << "attempt " << attempt << " was not assigned";
    ++runs_of_bad[runner];
    finish(g, runner, "bad", attempt, td::v1::STEP_OUTCOME_FAILED);
  }
  EXPECT_EQ(runs_of_bad.size(), 2u) << "peer 2 is busy, so the attempts spread over 1 and 3";
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_FAILED);
  EXPECT_TRUE(has(all_, AssignmentRecord::kFailed));
  // The in-flight step of peer 2 is aborted.
  bool aborted = false;
  for (const auto& e : all_) {
    const auto* a = std::get_if<PublishAssignment>(&e);
    if (a && a->record.has_abort()) aborted = a->record.abort().peer_id() == "2";
  }
  EXPECT_TRUE(aborted);
  EXPECT_EQ(assignments(all_).size(), 4u) << "3 runs of bad and 1 of slow, nothing more";
  // Its aborted answer is recorded and changes nothing.
  Effects e = finish(g, "2", "slow", 1, td::v1::STEP_OUTCOME_ABORTED);
  EXPECT_EQ(eventKinds(e), std::vector<std::string>{"step_finished"});
}

TEST_F(QueueManager, DuplicateCompletionNeverDoubleCounts) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  Effects dup = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_TRUE(assignments(dup).empty());
  ASSERT_EQ(events(dup).size(), 1u);
  EXPECT_EQ(events(dup)[0].input_ignored().reason(), "duplicate");
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
  Effects done = finish(g, "1", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_TRUE(has(done, AssignmentRecord::kCompleted));
}

TEST_F(QueueManager, CompletionForAStaleAttemptIsIgnored) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);   // attempt 2 now runs
  Effects late = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  ASSERT_EQ(events(late).size(), 1u);
  EXPECT_EQ(events(late)[0].input_ignored().reason(), "stale_attempt");
  Effects future = finish(g, "1", "a", 7, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_EQ(events(future)[0].input_ignored().reason(), "unassigned_attempt");
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
}

TEST_F(QueueManager, CompletionFromAnotherSessionIsIgnored) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  Effects e = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED, "old-session");
  EXPECT_EQ(events(e)[0].input_ignored().reason(), "stale_session");
}

TEST_F(QueueManager, NewSessionOfAPeerRequeuesItsRunningStep) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  Effects e = run(Registration{.peer = PeerBuilder("1").change("c1").steps(1).session("1-s2").build()});
  auto a = assignments(e);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].session_id(), "1-s2");
  EXPECT_EQ(a[0].attempt(), 2u);
  EXPECT_EQ(core_.groupOfPeerForTest("1"), g);
}

TEST_F(QueueManager, LeavingPeerHasItsStepRequeuedToAnother) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  join(PeerBuilder("2").change("c1").steps(1));
  td::v1::PeerLeft left;
  left.set_peer_id("1");
  left.set_session_id(sessionOf("1"));
  left.set_group_id(g);
  left.set_reason("SIGTERM");
  Effects e = run(left);
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].peer_id(), "2");
}

TEST_F(QueueManager, DependenciesGateQueueing) {
  auto g = join(PeerBuilder("1").change("c1").step("build").step("test", 3, {"build"}));
  join(PeerBuilder("2").change("c1").step("build").step("test", 3, {"build"}));
  EXPECT_EQ(assignments(all_).size(), 1u) << "test waits for build";
  Effects e = finish(g, "1", "build", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "test");
}

TEST_F(QueueManager, EventSequenceHasNoGaps) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  join(PeerBuilder("2").change("c1").steps(2));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);
  finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  finish(g, "2", "a", 2, td::v1::STEP_OUTCOME_SUCCEEDED);
  std::uint64_t expected = 1;
  for (const auto& e : events(all_)) {
    EXPECT_EQ(e.group_id(), g);
    EXPECT_EQ(e.sequence(), expected++);
  }
  EXPECT_GT(expected, 10u);
}

TEST_F(QueueManager, InvalidRegistrationIsDeadLetteredAndRejected) {
  auto bad = PeerBuilder("1").build();
  bad.mutable_steps(0)->set_max_attempts(0);
  Effects e = run(Registration{.peer = bad});
  EXPECT_EQ(deadLetters(e), 1);
  ASSERT_TRUE(std::holds_alternative<PublishJoin>(e.back()));
  EXPECT_TRUE(std::get<PublishJoin>(e.back()).record.has_rejected());
  EXPECT_EQ(core_.groupCount(), 0u);

  auto wrong_key = PeerBuilder("1").build();
  wrong_key.set_compatibility_key("forged");
  EXPECT_EQ(deadLetters(run(Registration{.peer = wrong_key})), 1);

  auto cycle = PeerBuilder("1").step("x", 1, {"y"}).step("y", 1, {"x"}).build();
  EXPECT_EQ(deadLetters(run(Registration{.peer = cycle})), 1);
}

TEST_F(QueueManager, CompletionForAnUnknownGroupIsDeadLettered) {
  Effects e = finish("nope", "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_EQ(deadLetters(e), 1);
  Effects bad = finish("nope", "1", "a", 0, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_EQ(deadLetters(bad), 1);
}

TEST_F(QueueManager, CompletionBeforeRegistrationChangesNothing) {
  // Registrations and completions travel on two topics; a completion can overtake.
  Effects e = finish("s-000000000000", "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_EQ(deadLetters(e), 1);
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
}

}  // namespace
}  // namespace td::coordinator::testing
