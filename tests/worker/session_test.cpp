// What a worker does with assignment-topic records (guarantee 5: only its own schema's steps).
#include "worker/session.h"

#include <gtest/gtest.h>

namespace td::worker {
namespace {

schema::Schema twoSteps() {
  auto parsed = schema::parse("name: s\nsteps:\n  - id: a\n    run: echo a\n  - id: b\n    run: echo b\n",
                              "inline");
  EXPECT_TRUE(parsed.has_value());
  return *parsed;
}

td::v1::AssignmentRecord assigned(const std::string& step, std::uint32_t attempt,
                                  const std::string& peer = "w1",
                                  const std::string& session = "s1",
                                  const std::string& group = "g") {
  td::v1::AssignmentRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& a = *r.mutable_assigned();
  a.set_group_id(group);
  a.set_step_id(step);
  a.set_attempt(attempt);
  a.set_peer_id(peer);
  a.set_session_id(session);
  return r;
}

// An assignment for w1/s1 in group g written by the owner of `epoch`.
td::v1::AssignmentRecord assignedAt(std::uint64_t epoch, const std::string& step,
                                    std::uint32_t attempt, const std::string& peer = "w1") {
  auto r = assigned(step, attempt, peer);
  r.mutable_assigned()->set_coordinator_epoch(epoch);
  return r;
}

td::v1::AssignmentRecord ownerChanged(std::uint64_t epoch, const std::string& group = "g") {
  td::v1::AssignmentRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& o = *r.mutable_owner();
  o.set_group_id(group);
  o.set_coordinator_epoch(epoch);
  o.set_coordinator_id("c" + std::to_string(epoch));
  return r;
}

td::v1::AssignmentRecord abortAt(std::uint64_t epoch, const std::string& step,
                                 std::uint32_t attempt) {
  td::v1::AssignmentRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& a = *r.mutable_abort();
  a.set_group_id("g");
  a.set_step_id(step);
  a.set_attempt(attempt);
  a.set_peer_id("w1");
  a.set_session_id("s1");
  a.set_reason("group failed");
  a.set_coordinator_epoch(epoch);
  return r;
}

td::v1::AssignmentRecord completedAt(std::uint64_t epoch) {
  td::v1::AssignmentRecord r;
  r.mutable_completed()->set_group_id("g");
  r.mutable_completed()->set_coordinator_epoch(epoch);
  return r;
}

td::v1::AssignmentRecord failedAt(std::uint64_t epoch) {
  td::v1::AssignmentRecord r;
  r.mutable_failed()->set_group_id("g");
  r.mutable_failed()->set_coordinator_epoch(epoch);
  return r;
}

template <typename T>
bool is(const Action& action) {
  return std::holds_alternative<T>(action);
}

TEST(Session, RunsItsOwnCommandForAnAssignedStep) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  auto action = session.onRecord(assigned("b", 1));
  ASSERT_TRUE(std::holds_alternative<RunStep>(action));
  EXPECT_EQ(std::get<RunStep>(action).step->run, "echo b");
  EXPECT_EQ(std::get<RunStep>(action).attempt, 1u);
}

TEST(Session, RejectsAStepIdThatIsNotInItsSchema) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  auto action = session.onRecord(assigned("rm -rf /", 1));
  ASSERT_TRUE(std::holds_alternative<RejectStep>(action));
  EXPECT_NE(std::get<RejectStep>(action).reason.find("not in this worker's schema"),
            std::string::npos);
}

TEST(Session, IgnoresOtherPeersSessionsGroupsAndRepeats) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1, "w2"))));
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1, "w1", "old"))));
  EXPECT_TRUE(
      std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1, "w1", "s1", "h"))));
  EXPECT_TRUE(std::holds_alternative<RunStep>(session.onRecord(assigned("a", 1))));
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1))));
  EXPECT_TRUE(std::holds_alternative<RunStep>(session.onRecord(assigned("a", 2))));
}

TEST(Session, GroupResultsEndTheSession) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  td::v1::AssignmentRecord done;
  done.mutable_completed()->set_group_id("g");
  auto action = session.onRecord(done);
  ASSERT_TRUE(std::holds_alternative<GroupDone>(action));
  EXPECT_EQ(std::get<GroupDone>(action).exit_code, 0);
  td::v1::AssignmentRecord failed;
  failed.mutable_failed()->set_group_id("g");
  EXPECT_EQ(std::get<GroupDone>(session.onRecord(failed)).exit_code, 1);
  failed.mutable_failed()->set_group_id("other");
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(failed)));
}

TEST(Session, AbortOnlyForItsOwnAttempt) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  td::v1::AssignmentRecord abort;
  auto& a = *abort.mutable_abort();
  a.set_group_id("g");
  a.set_step_id("a");
  a.set_attempt(1);
  a.set_peer_id("w1");
  a.set_session_id("s1");
  EXPECT_TRUE(std::holds_alternative<AbortRunning>(session.onRecord(abort)));
  a.set_session_id("other");
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(abort)));
}

// Fencing by coordinator epoch (worker/session.h).

TEST(SessionFencing, RecordsOfAnOlderOwnerAfterOwnerChangedAreIgnoredAsStale) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(ownerChanged(2))));
  EXPECT_EQ(session.ownerEpoch(), 2u);

  auto stale = session.onRecord(assignedAt(1, "a", 1));
  ASSERT_TRUE(is<IgnoredStale>(stale));
  EXPECT_EQ(std::get<IgnoredStale>(stale).record_epoch, 1u);
  EXPECT_EQ(std::get<IgnoredStale>(stale).owner_epoch, 2u);
  EXPECT_EQ(std::get<IgnoredStale>(stale).what, "step_assigned step=a attempt=1");
  EXPECT_TRUE(is<IgnoredStale>(session.onRecord(abortAt(1, "a", 1))));
  EXPECT_TRUE(is<IgnoredStale>(session.onRecord(completedAt(1))));
  EXPECT_TRUE(is<IgnoredStale>(session.onRecord(failedAt(1))));

  // The owner's own records still count.
  EXPECT_TRUE(is<RunStep>(session.onRecord(assignedAt(2, "b", 1))));
  EXPECT_TRUE(is<AbortRunning>(session.onRecord(abortAt(2, "b", 1))));
  EXPECT_EQ(std::get<GroupDone>(session.onRecord(failedAt(2))).exit_code, 1);
}

TEST(SessionFencing, AFencedAssignmentIsNotActedOnSoTheOwnerMayHandOutTheSameAttempt) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  (void)session.onRecord(ownerChanged(2));
  EXPECT_TRUE(is<IgnoredStale>(session.onRecord(assignedAt(1, "a", 3))));
  EXPECT_TRUE(is<RunStep>(session.onRecord(assignedAt(2, "a", 3))));
}

TEST(SessionFencing, TheOwnerEpochOnlyRises) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  (void)session.onRecord(ownerChanged(3));
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(ownerChanged(2))));
  EXPECT_EQ(session.ownerEpoch(), 3u);
  EXPECT_TRUE(is<IgnoredStale>(session.onRecord(assignedAt(2, "a", 1))));
  // Another group's owner change is not ours.
  (void)session.onRecord(ownerChanged(9, "h"));
  EXPECT_EQ(session.ownerEpoch(), 3u);
  EXPECT_TRUE(is<RunStep>(session.onRecord(assignedAt(3, "a", 1))));
}

TEST(SessionFencing, ARecordWithAHigherEpochRaisesTheOwnerEpochWhoeverItIsFor) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  EXPECT_TRUE(is<RunStep>(session.onRecord(assignedAt(1, "a", 1))));
  // The new owner's OwnerChanged is not needed: its first record (for another peer) fences.
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(assignedAt(2, "b", 1, "w2"))));
  EXPECT_EQ(session.ownerEpoch(), 2u);
  EXPECT_TRUE(is<IgnoredStale>(session.onRecord(assignedAt(1, "b", 2))));
  // A stale record for another peer is none of this worker's business: no warning.
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(assignedAt(1, "a", 2, "w2"))));
}

TEST(SessionFencing, EpochZeroIsAcceptedForCompatibility) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  (void)session.onRecord(ownerChanged(2));
  EXPECT_TRUE(is<RunStep>(session.onRecord(assigned("a", 1))));
  EXPECT_TRUE(is<AbortRunning>(session.onRecord(abortAt(0, "a", 1))));
  EXPECT_TRUE(is<GroupDone>(session.onRecord(completedAt(0))));
  EXPECT_EQ(session.ownerEpoch(), 2u);
}

TEST(SessionFencing, ARepublishedAssignmentNeverRunsAStepTwice) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  const auto original = assignedAt(1, "a", 1);
  EXPECT_TRUE(is<RunStep>(session.onRecord(original)));
  // The new owner re-publishes the predecessor's outbox (the same bytes), before or after its
  // OwnerChanged, and may even assign the same attempt under its own epoch.
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(original)));
  (void)session.onRecord(ownerChanged(2));
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(original)));
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(assignedAt(2, "a", 1))));
}

TEST(SessionFencing, EarlierEpochsBeforeTheNewOwnersOwnerChangedAreHistoryAndCount) {
  // A late joiner of a group that completed under epoch 1 and was then taken over (its
  // GroupJoined says epoch 2) reads the topic from the start: the GroupCompleted of epoch 1
  // comes before OwnerChanged(2) and must end its session.
  auto schema = twoSteps();
  Session late("w1", "s1", "g", schema);
  EXPECT_TRUE(is<NothingToDo>(late.onRecord(assignedAt(1, "a", 1, "w2"))));
  EXPECT_EQ(std::get<GroupDone>(late.onRecord(completedAt(1))).exit_code, 0);

  // A worker whose first assignment was written by the old owner and re-published by the new
  // one ahead of its OwnerChanged runs it.
  Session joined("w1", "s1", "g", schema);
  EXPECT_TRUE(is<RunStep>(joined.onRecord(assignedAt(1, "b", 1))));
  (void)joined.onRecord(ownerChanged(2));
  EXPECT_TRUE(is<RunStep>(joined.onRecord(assignedAt(2, "a", 1))));
}

}  // namespace
}  // namespace td::worker
