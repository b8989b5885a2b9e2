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

TEST(Session, CancelledGroupEndsTheSessionWithExitFive) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  td::v1::AssignmentRecord cancelled;
  cancelled.mutable_cancelled()->set_group_id("other");
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(cancelled)));
  cancelled.mutable_cancelled()->set_group_id("g");
  cancelled.mutable_cancelled()->set_coordinator_epoch(2);
  auto action = session.onRecord(cancelled);
  ASSERT_TRUE(std::holds_alternative<GroupDone>(action));
  EXPECT_EQ(std::get<GroupDone>(action).exit_code, 5);
  // One of a coordinator that no longer owns the group is stale.
  td::v1::AssignmentRecord owner;
  owner.mutable_owner()->set_group_id("g");
  owner.mutable_owner()->set_coordinator_epoch(3);
  (void)session.onRecord(owner);
  EXPECT_TRUE(std::holds_alternative<IgnoredStale>(session.onRecord(cancelled)));
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

TEST(Session, ASpeculativeAttemptRunsLikeAnyAndItsLostRaceAbortsIt) {
  // docs/architecture.md, "Speculative attempts": the worker runs its own command for a
  // speculative assignment, and kills it on the abort that says another attempt won.
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  auto twin = assigned("a", 2);
  twin.mutable_assigned()->set_speculative(true);
  twin.mutable_assigned()->set_races_attempt(1);
  const Action run = session.onRecord(twin);
  ASSERT_TRUE(std::holds_alternative<RunStep>(run));
  EXPECT_EQ(std::get<RunStep>(run).step->run, "echo a");
  EXPECT_EQ(std::get<RunStep>(run).attempt, 2u);
  auto lost = abortAt(0, "a", 2);
  lost.mutable_abort()->set_won_by_attempt(1);
  lost.mutable_abort()->set_reason("attempt 1 on w2 succeeded first");
  const Action abort = session.onRecord(lost);
  ASSERT_TRUE(std::holds_alternative<AbortRunning>(abort));
  EXPECT_EQ(std::get<AbortRunning>(abort).attempt, 2u);
  // The abort of the other attempt of the race (another peer's) is not for this worker.
  auto other = abortAt(0, "a", 1);
  other.mutable_abort()->set_peer_id("w2");
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(other)));
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


// Sessions the coordinator ended (docs/protocol.md, "Sessions that end").

td::v1::AssignmentRecord sessionEnded(std::uint64_t epoch, td::v1::SessionEnded::Cause cause,
                                      const std::string& peer = "w1",
                                      const std::string& session = "s1") {
  td::v1::AssignmentRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& e = *r.mutable_session_ended();
  e.set_group_id("g");
  e.set_peer_id(peer);
  e.set_session_id(session);
  e.set_cause(cause);
  e.set_reason(cause == td::v1::SessionEnded::CAUSE_REPLACED
                   ? "replaced by a new session of peer w1 (session s2)"
                   : "missed its lease: silent for 5012 ms");
  e.set_replaced_by_session_id(cause == td::v1::SessionEnded::CAUSE_REPLACED ? "s2" : "");
  auto& requeued = *e.add_requeued();
  requeued.set_step_id("a");
  requeued.set_attempt(1);
  e.set_coordinator_epoch(epoch);
  return r;
}

td::v1::AssignmentRecord peerSilent(std::uint64_t epoch, const std::string& peer,
                                    std::int64_t heard_at_ms, const std::string& session = "x1") {
  td::v1::AssignmentRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& p = *r.mutable_peer_silent();
  p.set_group_id("g");
  p.set_peer_id(peer);
  p.set_session_id(session);
  p.set_step_id("compile");
  p.set_attempt(1);
  p.set_silent_for_ms(3100);
  p.set_lease_ms(5000);
  p.set_heard_at_ms(heard_at_ms);
  p.set_coordinator_epoch(epoch);
  return r;
}

TEST(SessionEnd, ReplacedEndsTheSessionAndNothingAfterItIsActedOn) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  ASSERT_TRUE(is<RunStep>(session.onRecord(assignedAt(1, "a", 1))));
  auto action = session.onRecord(sessionEnded(1, td::v1::SessionEnded::CAUSE_REPLACED));
  ASSERT_TRUE(is<EndSession>(action));
  const auto& end = std::get<EndSession>(action);
  EXPECT_EQ(end.cause, EndSession::Cause::kReplaced);
  EXPECT_EQ(end.replaced_by, "s2");
  EXPECT_EQ(end.reason, "replaced by a new session of peer w1 (session s2)");
  EXPECT_TRUE(session.ended());
  // Over: a later assignment, abort or group result for this session changes nothing.
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(assignedAt(1, "b", 1))));
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(abortAt(1, "a", 1))));
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(completedAt(1))));
  EXPECT_TRUE(is<NothingToDo>(
      session.onRecord(sessionEnded(1, td::v1::SessionEnded::CAUSE_REPLACED))));
}

TEST(SessionEnd, LostEndsTheSession) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  auto action = session.onRecord(sessionEnded(1, td::v1::SessionEnded::CAUSE_LOST));
  ASSERT_TRUE(is<EndSession>(action));
  EXPECT_EQ(std::get<EndSession>(action).cause, EndSession::Cause::kLost);
  EXPECT_NE(std::get<EndSession>(action).reason.find("missed its lease"), std::string::npos);
}

TEST(SessionEnd, OnlyForItsOwnSessionAndAKnownCause) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  EXPECT_TRUE(is<NothingToDo>(
      session.onRecord(sessionEnded(1, td::v1::SessionEnded::CAUSE_LOST, "w2", "x"))));
  // The same peer's newer session being told is not this one's business either.
  EXPECT_TRUE(is<NothingToDo>(
      session.onRecord(sessionEnded(1, td::v1::SessionEnded::CAUSE_LOST, "w1", "s0"))));
  EXPECT_TRUE(is<NothingToDo>(
      session.onRecord(sessionEnded(1, td::v1::SessionEnded::CAUSE_UNSPECIFIED))));
  EXPECT_FALSE(session.ended());
  EXPECT_TRUE(is<RunStep>(session.onRecord(assignedAt(1, "a", 1))));
}

TEST(SessionFencing, ASessionEndedOfAnOlderOwnerIsIgnoredAsStale) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  (void)session.onRecord(ownerChanged(2));
  auto action = session.onRecord(sessionEnded(1, td::v1::SessionEnded::CAUSE_LOST));
  ASSERT_TRUE(is<IgnoredStale>(action));
  EXPECT_EQ(std::get<IgnoredStale>(action).record_epoch, 1u);
  EXPECT_FALSE(session.ended());
  // The owner's own notice counts; epoch 0 is never fenced.
  Session other("w1", "s1", "g", schema);
  (void)other.onRecord(ownerChanged(2));
  EXPECT_TRUE(is<EndSession>(other.onRecord(sessionEnded(0, td::v1::SessionEnded::CAUSE_LOST))));
  Session third("w1", "s1", "g", schema);
  EXPECT_TRUE(is<EndSession>(third.onRecord(sessionEnded(3, td::v1::SessionEnded::CAUSE_LOST))));
  EXPECT_EQ(third.ownerEpoch(), 3u);
}

TEST(SessionSilentPeer, WarnsOncePerSpellAndSaysWhenItIsAboutItself) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  auto action = session.onRecord(peerSilent(1, "a2", 1000));
  ASSERT_TRUE(is<WarnSilentPeer>(action));
  const auto& warn = std::get<WarnSilentPeer>(action);
  EXPECT_EQ(warn.peer_id, "a2");
  EXPECT_EQ(warn.step_id, "compile");
  EXPECT_EQ(warn.silent_for_ms, 3100u);
  EXPECT_EQ(warn.lease_ms, 5000u);
  EXPECT_FALSE(warn.about_me);
  // A re-published copy is the same spell; a new spell (heard since) warns again.
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(peerSilent(1, "a2", 1000))));
  EXPECT_TRUE(is<WarnSilentPeer>(session.onRecord(peerSilent(1, "a2", 9000))));
  EXPECT_TRUE(std::get<WarnSilentPeer>(session.onRecord(peerSilent(1, "w1", 1000, "s1"))).about_me);
  // An earlier session of this peer (it was frozen, declared lost, and is back): history.
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(peerSilent(1, "w1", 2000, "s0"))));
  // Another group's, or a stale owner's, says nothing.
  auto other_group = peerSilent(1, "a3", 1000);
  other_group.mutable_peer_silent()->set_group_id("h");
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(other_group)));
  (void)session.onRecord(ownerChanged(2));
  EXPECT_TRUE(is<NothingToDo>(session.onRecord(peerSilent(1, "a4", 1000))));
}

}  // namespace
}  // namespace td::worker
