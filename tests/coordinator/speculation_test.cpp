// Speculative attempts for stragglers (docs/architecture.md, "Speculative attempts"): once the
// queue is empty and a member idles, an attempt that ran longer than
// max(2 x expected, expected + 2 s) gets a twin on the idle member; the first success wins and
// the other attempt is aborted; a failure or loss of one attempt while the other runs neither
// fails the step nor queues it again.
#include <gtest/gtest.h>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using std::chrono::seconds;
using td::v1::AssignmentRecord;

constexpr auto kSucceeded = td::v1::STEP_OUTCOME_SUCCEEDED;
constexpr auto kFailed = td::v1::STEP_OUTCOME_FAILED;

std::vector<td::v1::AbortStep> aborts(const Effects& effects) {
  std::vector<td::v1::AbortStep> out;
  for (const auto& e : effects) {
    const auto* a = std::get_if<PublishAssignment>(&e);
    if (a != nullptr && a->record.has_abort()) out.push_back(a->record.abort());
  }
  return out;
}


// Three peers, steps a, b, c: "1" runs a (the straggler), "2" and "3" finish b and c in one
// second each, so the group's median is 1 s and a is raced once it has run over 3 s
// (max(2 x 1 s, 1 s + 2 s)).
class Speculation : public CoreTest {
 protected:
  Speculation() = default;
  explicit Speculation(CoreConfig config) : CoreTest(std::move(config)) {}

  // Forms the group and leaves "2" and "3" idle at +1 s; returns the group id.
  std::string straggle(PeerBuilder one = PeerBuilder("1"), std::uint32_t max_attempts = 3) {
    const std::string g = join(one.change("c1").steps(3, max_attempts));
    join(PeerBuilder("2").change("c1").steps(3, max_attempts));
    join(PeerBuilder("3").change("c1").steps(3, max_attempts));
    clock_.advance(seconds(1));
    run(finishedIn(g, "2", "b", 1, kSucceeded, 1000));
    run(finishedIn(g, "3", "c", 1, kSucceeded, 1000));
    return g;
  }
  static int countEvents(const Effects& effects, std::string_view kind) {
    int n = 0;
    for (const auto& k : eventKinds(effects)) n += k == kind ? 1 : 0;
    return n;
  }
  static td::v1::StepFinished finishedIn(const std::string& g, const std::string& peer,
                                         const std::string& step, std::uint32_t attempt,
                                         td::v1::StepOutcome outcome, std::uint64_t ms) {
    auto f = finishedRecord(g, peer, step, attempt, outcome);
    f.set_duration_ms(ms);
    return f;
  }
  // Advances `by` in 100 ms ticks, every present peer heartbeating; returns the effects.
  Effects pass(const std::string& g, Millis by, const std::vector<std::string>& alive = {"1", "2",
                                                                                          "3"}) {
    Effects all;
    for (Millis t{0}; t < by; t += Millis(100)) {
      clock_.advance(Millis(100));
      for (const auto& peer : alive) run(heartbeatRecord(g, peer));
      append(all, run(Tick{}));
    }
    return all;
  }
  // Brings the straggler to its speculative twin (on "2", attempt 2); returns the group id.
  std::string raced(PeerBuilder one = PeerBuilder("1"), std::uint32_t max_attempts = 3) {
    const std::string g = straggle(std::move(one), max_attempts);
    Effects e = pass(g, seconds(3));   // a has run 4 s
    auto twin = assignments(e);
    EXPECT_EQ(twin.size(), 1u);
    return g;
  }
  td::v1::StepSnapshot stepOf(const std::string& g, const std::string& id) {
    auto s = core_.snapshot(g, clock_.now());
    EXPECT_TRUE(s.has_value());
    for (const auto& step : s->steps()) {
      if (step.spec().id() == id) return step;
    }
    ADD_FAILURE() << "no step " << id;
    return {};
  }
};

TEST_F(Speculation, ASlowAttemptGetsASpeculativeTwinOnAnIdlePeer) {
  const std::string g = straggle();
  // a has run 1 s; at 3 s it has run exactly max(2 x 1 s, 1 s + 2 s): not longer.
  EXPECT_TRUE(assignments(pass(g, seconds(2))).empty());
  Effects e = pass(g, Millis(200));
  auto twin = assignments(e);
  ASSERT_EQ(twin.size(), 1u);
  EXPECT_EQ(twin[0].step_id(), "a");
  EXPECT_EQ(twin[0].peer_id(), "2");   // the first idle member, never "1" which runs it
  EXPECT_EQ(twin[0].attempt(), 2u);
  EXPECT_TRUE(twin[0].speculative());
  EXPECT_EQ(twin[0].races_attempt(), 1u);
  EXPECT_EQ(twin[0].expected_ms(), 1000u);
  // The event says so too, and nothing was queued or aborted for it.
  bool event_says = false;
  for (const auto& ev : events(e)) {
    event_says |= ev.has_step_assigned() && ev.step_assigned().speculative();
  }
  EXPECT_TRUE(event_says);
  EXPECT_EQ(countEvents(e, "step_queued"), 0);
  EXPECT_TRUE(aborts(e).empty());
  // One speculative attempt per step: nothing more however long it runs.
  EXPECT_TRUE(assignments(pass(g, seconds(3))).empty());
}

TEST_F(Speculation, TheSpeculativeAttemptWinsAndTheOriginalIsAborted) {
  const std::string g = raced();
  Effects won = run(finishedIn(g, "2", "a", 2, kSucceeded, 900));
  auto abort = aborts(won);
  ASSERT_EQ(abort.size(), 1u);
  EXPECT_EQ(abort[0].peer_id(), "1");
  EXPECT_EQ(abort[0].attempt(), 1u);
  EXPECT_EQ(abort[0].won_by_attempt(), 2u);
  EXPECT_TRUE(has(won, AssignmentRecord::kCompleted));
  // The loser's result, success or abort, does not count: ignored as stale, never recorded as
  // a second success.
  Effects late = run(finishedIn(g, "1", "a", 1, kSucceeded, 9000));
  ASSERT_EQ(events(late).size(), 1u);
  EXPECT_EQ(events(late)[0].input_ignored().reason(), "group_finished");
  EXPECT_EQ(core_.census().speculative_started_total, 1u);
  EXPECT_EQ(core_.census().speculative_won_total, 1u);
  EXPECT_EQ(core_.census().speculative_lost_total, 0u);
}

TEST_F(Speculation, TheOriginalWinsAndTheSpeculativeAttemptIsAbortedAndItsPeerFreed) {
  // Four steps: d waits for a, so the group goes on after the race.
  const std::string g = join(PeerBuilder("1").change("c1").step("a").step("b").step("c").step(
      "d", 3, {"a"}));
  join(PeerBuilder("2").change("c1").step("a").step("b").step("c").step("d", 3, {"a"}));
  join(PeerBuilder("3").change("c1").step("a").step("b").step("c").step("d", 3, {"a"}));
  clock_.advance(seconds(1));
  run(finishedIn(g, "2", "b", 1, kSucceeded, 1000));
  run(finishedIn(g, "3", "c", 1, kSucceeded, 1000));
  ASSERT_EQ(assignments(pass(g, seconds(3)), "2").size(), 1u);
  Effects won = run(finishedIn(g, "1", "a", 1, kSucceeded, 4000));
  auto abort = aborts(won);
  ASSERT_EQ(abort.size(), 1u);
  EXPECT_EQ(abort[0].peer_id(), "2");
  EXPECT_EQ(abort[0].attempt(), 2u);
  EXPECT_EQ(abort[0].won_by_attempt(), 1u);
  // d is queued and handed out at once: "1" just finished, "2" was freed by the abort.
  auto next = assignments(won);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].step_id(), "d");
  EXPECT_FALSE(next[0].speculative());
  EXPECT_EQ(stepOf(g, "a").state(), td::v1::STEP_STATE_SUCCEEDED);
  EXPECT_FALSE(stepOf(g, "a").has_racing());
  // The loser's late success is ignored, not a second success.
  Effects late = run(finishedIn(g, "2", "a", 2, kSucceeded, 500));
  ASSERT_EQ(events(late).size(), 1u);
  EXPECT_EQ(events(late)[0].input_ignored().reason(), "stale_attempt");
  EXPECT_EQ(core_.census().speculative_lost_total, 1u);
}

TEST_F(Speculation, ASpeculativeAttemptThatFailsWhileTheOriginalRunsChangesNothingElse) {
  const std::string g = raced();
  Effects failed = run(finishedIn(g, "2", "a", 2, kFailed, 100));
  EXPECT_EQ(countEvents(failed, "step_queued"), 0);
  EXPECT_FALSE(has(failed, AssignmentRecord::kFailed));
  EXPECT_TRUE(aborts(failed).empty());
  const auto a = stepOf(g, "a");
  EXPECT_EQ(a.state(), td::v1::STEP_STATE_RUNNING);
  EXPECT_EQ(a.peer_id(), "1");
  EXPECT_EQ(a.attempt(), 1u);
  EXPECT_EQ(a.failures(), 1u);   // a speculative attempt that fails counts
  EXPECT_FALSE(a.has_racing());
  // No second twin for the step, though "2" and "3" idle.
  EXPECT_TRUE(assignments(pass(g, seconds(5))).empty());
  Effects done = run(finishedIn(g, "1", "a", 1, kSucceeded, 9000));
  EXPECT_TRUE(has(done, AssignmentRecord::kCompleted));
  EXPECT_TRUE(aborts(done).empty());
}

TEST_F(Speculation, AnOriginalThatFailsWhileTheSpeculativeAttemptRunsChangesNothingElse) {
  const std::string g = raced();
  Effects failed = run(finishedIn(g, "1", "a", 1, kFailed, 4000));
  EXPECT_EQ(countEvents(failed, "step_queued"), 0);
  EXPECT_FALSE(has(failed, AssignmentRecord::kFailed));
  EXPECT_TRUE(assignments(failed).empty());   // "1" idles now, but a still runs on "2"
  const auto a = stepOf(g, "a");
  EXPECT_EQ(a.state(), td::v1::STEP_STATE_RUNNING);
  EXPECT_EQ(a.peer_id(), "2");
  EXPECT_EQ(a.attempt(), 2u);
  EXPECT_TRUE(a.speculative());
  Effects done = run(finishedIn(g, "2", "a", 2, kSucceeded, 900));
  EXPECT_TRUE(has(done, AssignmentRecord::kCompleted));
  EXPECT_EQ(core_.census().speculative_won_total, 1u);
}

TEST_F(Speculation, WhenBothAttemptsFailTheStepIsRetriedWithTheNextAttemptNumber) {
  const std::string g = raced();
  run(finishedIn(g, "2", "a", 2, kFailed, 100));
  Effects second = run(finishedIn(g, "1", "a", 1, kFailed, 4000));
  bool queued = false;
  for (const auto& ev : events(second)) {
    if (ev.has_step_queued()) {
      queued = true;
      EXPECT_EQ(ev.step_queued().next_attempt(), 3u);   // 2 was the speculative one
    }
  }
  EXPECT_TRUE(queued);
  EXPECT_EQ(stepOf(g, "a").failures(), 2u);
}

TEST_F(Speculation, TheStepDoesNotFailWhileAnAttemptOfItRuns) {
  // max_attempts 1: the speculative attempt's failure uses it up, yet the original runs on
  // and may still succeed; had it failed too, the group would fail.
  const std::string g = raced(PeerBuilder("1"), 1);
  Effects failed = run(finishedIn(g, "2", "a", 2, kFailed, 100));
  EXPECT_FALSE(has(failed, AssignmentRecord::kFailed));
  Effects done = run(finishedIn(g, "1", "a", 1, kSucceeded, 9000));
  EXPECT_TRUE(has(done, AssignmentRecord::kCompleted));
}

TEST_F(Speculation, TheLastAttemptFailingFailsTheStepAsUsual) {
  const std::string g = raced(PeerBuilder("1"), 1);
  run(finishedIn(g, "1", "a", 1, kFailed, 4000));
  Effects failed = run(finishedIn(g, "2", "a", 2, kFailed, 100));
  EXPECT_TRUE(has(failed, AssignmentRecord::kFailed));
}

TEST_F(Speculation, ALostPeerRunningTheOriginalRequeuesNothing) {
  const std::string g = raced();
  // "1" goes silent past its lease; "2" runs the twin on.
  Effects e = pass(g, core_.config().lease + seconds(1), {"2", "3"});
  EXPECT_EQ(countEvents(e, "peer_lost"), 1);
  EXPECT_EQ(countEvents(e, "step_queued"), 0);
  EXPECT_TRUE(assignments(e).empty());
  const auto a = stepOf(g, "a");
  EXPECT_EQ(a.state(), td::v1::STEP_STATE_RUNNING);
  EXPECT_EQ(a.peer_id(), "2");
  EXPECT_EQ(a.lost(), 1u);
  Effects done = run(finishedIn(g, "2", "a", 2, kSucceeded, 900));
  EXPECT_TRUE(has(done, AssignmentRecord::kCompleted));
}

TEST_F(Speculation, ALostPeerRunningTheTwinRequeuesNothing) {
  const std::string g = raced();
  Effects e = pass(g, core_.config().lease + seconds(1), {"1", "3"});
  EXPECT_EQ(countEvents(e, "peer_lost"), 1);
  EXPECT_EQ(countEvents(e, "step_queued"), 0);
  const auto a = stepOf(g, "a");
  EXPECT_EQ(a.peer_id(), "1");
  EXPECT_EQ(a.attempt(), 1u);
  EXPECT_FALSE(a.has_racing());
  EXPECT_EQ(core_.census().speculative_lost_total, 1u);
  EXPECT_TRUE(has(run(finishedIn(g, "1", "a", 1, kSucceeded, 9000)), AssignmentRecord::kCompleted));
}

TEST_F(Speculation, SpeculativeFalseNeverRaces) {
  const std::string g = straggle(PeerBuilder("1").noSpeculation());
  EXPECT_TRUE(assignments(pass(g, seconds(4))).empty());
}

TEST_F(Speculation, WithoutAnyExpectationNothingIsRaced) {
  // No history and no finished step in the group: nobody knows what "slow" is.
  const std::string g = join(PeerBuilder("1").change("c1").steps(1));
  join(PeerBuilder("2").change("c1").steps(1));
  EXPECT_TRUE(assignments(pass(g, seconds(4), {"1", "2"})).empty());
}

TEST_F(Speculation, DurationHistoryComesBeforeTheGroupsOwnSteps) {
  // a is known to take 10 s (b and c 1 s, so a still goes first): it is raced after 20 s,
  // not after 3 s.
  for (const auto& [id, ms] : std::vector<std::pair<std::string, std::uint64_t>>{
           {"a", 10'000}, {"b", 1000}, {"c", 1000}}) {
    td::v1::StepStats stats;
    stats.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    stats.set_schema_name("s");
    stats.set_step_id(id);
    stats.set_expected_ms(ms);
    stats.set_samples(5);
    ASSERT_EQ(core_.learnStepStats("s/" + id, stats), "");
  }
  const std::string g = straggle();
  EXPECT_TRUE(assignments(pass(g, seconds(18))).empty());
  auto twin = assignments(pass(g, seconds(2)));
  ASSERT_EQ(twin.size(), 1u);
  EXPECT_EQ(twin[0].expected_ms(), 10'000u);
}

TEST_F(Speculation, NotWithoutAnIdleMember) {
  // Two peers, three steps: b finishes, "2" takes c; nobody idles, so a is not raced.
  const std::string g = join(PeerBuilder("1").change("c1").steps(3));
  join(PeerBuilder("2").change("c1").steps(3));
  clock_.advance(seconds(1));
  run(finishedIn(g, "2", "b", 1, kSucceeded, 1000));
  Effects e = pass(g, seconds(10), {"1", "2"});
  EXPECT_TRUE(assignments(e).empty());
}

class SpeculationLimit : public Speculation {
 protected:
  SpeculationLimit()
      : Speculation(CoreConfig{.coordinator_id = "test", .max_speculative_per_group = 2}) {}
};

TEST_F(SpeculationLimit, AtMostMaxSpeculativePerGroupAtOnce) {
  const std::vector<std::string> peers = {"1", "2", "3", "4", "5", "6"};
  std::string g;
  for (const auto& p : peers) g = join(PeerBuilder(p).change("c1").steps(6));
  clock_.advance(seconds(1));
  // "4", "5", "6" finish d, e, f; "1", "2", "3" straggle on a, b, c.
  run(finishedIn(g, "4", "d", 1, kSucceeded, 1000));
  run(finishedIn(g, "5", "e", 1, kSucceeded, 1000));
  run(finishedIn(g, "6", "f", 1, kSucceeded, 1000));
  auto twins = assignments(pass(g, seconds(4), peers));
  ASSERT_EQ(twins.size(), 2u);
  EXPECT_EQ(twins[0].step_id(), "a");   // equally overdue: schema order
  EXPECT_EQ(twins[0].peer_id(), "4");
  EXPECT_EQ(twins[1].step_id(), "b");
  EXPECT_EQ(twins[1].peer_id(), "5");
}

class NoSpeculation : public Speculation {
 protected:
  NoSpeculation() : Speculation(CoreConfig{.coordinator_id = "test", .speculation = false}) {}
};

TEST_F(NoSpeculation, TheCoordinatorSwitchTurnsItOffForEveryGroup) {
  const std::string g = straggle();
  EXPECT_TRUE(assignments(pass(g, seconds(10))).empty());
}

TEST_F(Speculation, ARestoredGroupKeepsBothAttempts) {
  const std::string g = raced();
  auto snapshot = core_.snapshot(g, clock_.now());
  ASSERT_TRUE(snapshot.has_value());
  // Through the wire form, as td.state carries it.
  td::v1::StateRecord record;
  ASSERT_TRUE(record.ParseFromString(*core_.encodeState(g, clock_.now(), "")));
  const auto& a = record.group().steps(0);
  ASSERT_TRUE(a.has_racing());
  EXPECT_EQ(a.racing().peer_id(), "2");
  EXPECT_EQ(a.racing().attempt(), 2u);
  EXPECT_EQ(a.attempts_handed_out(), 2u);
  EXPECT_TRUE(a.speculated());

  Core next(CoreConfig{.coordinator_id = "next"});
  Effects restored = next.restore(0, 2, {record.group()}, {}, clock_.now());
  EXPECT_EQ(deadLetters(restored), 0);
  // Either attempt's report is still taken; the first success wins and aborts the other.
  Effects won = next.handle(finishedIn(g, "2", "a", 2, kSucceeded, 900), clock_.now());
  auto abort = aborts(won);
  ASSERT_EQ(abort.size(), 1u);
  EXPECT_EQ(abort[0].peer_id(), "1");
  EXPECT_EQ(abort[0].won_by_attempt(), 2u);
  EXPECT_TRUE(has(won, AssignmentRecord::kCompleted));
}

TEST_F(Speculation, ACoordinatorFromBeforeSpeculationRestoresTheRaceAsTheOriginalAlone) {
  // A rolling upgrade: an older owner does not know StepSnapshot.racing (unknown fields, here
  // cleared). The snapshot is still valid for it: "2" is idle there, a runs on "1".
  const std::string g = raced();
  auto snapshot = *core_.snapshot(g, clock_.now());
  for (const auto& m : snapshot.members()) {
    if (m.peer_id() == "2") {
      EXPECT_EQ(m.running_size(), 0);
    }
  }
  for (auto& step : *snapshot.mutable_steps()) {
    step.clear_racing();
    step.clear_attempts_handed_out();
    step.clear_speculated();
  }
  Core older(CoreConfig{.coordinator_id = "older", .speculation = false});
  Effects restored = older.restore(0, 2, {snapshot}, {}, clock_.now());
  EXPECT_EQ(deadLetters(restored), 0);
  Effects twin = older.handle(finishedIn(g, "2", "a", 2, kSucceeded, 900), clock_.now());
  ASSERT_EQ(events(twin).size(), 1u);
  EXPECT_EQ(events(twin)[0].input_ignored().reason(), "unassigned_attempt");
  EXPECT_TRUE(has(older.handle(finishedIn(g, "1", "a", 1, kSucceeded, 9000), clock_.now()),
                  AssignmentRecord::kCompleted));
}

TEST_F(Speculation, ARestoredGroupRacesNoSecondTwin) {
  const std::string g = raced();
  run(finishedIn(g, "2", "a", 2, kFailed, 100));   // the twin failed; a runs on on "1"
  Core next(CoreConfig{.coordinator_id = "next"});
  (void)next.restore(0, 2, {*core_.snapshot(g, clock_.now())}, {}, clock_.now());
  Effects all;
  for (int i = 0; i < 30; ++i) {
    clock_.advance(Millis(100));
    for (const char* p : {"1", "2", "3"}) (void)next.handle(heartbeatRecord(g, p), clock_.now());
    append(all, next.handle(Tick{}, clock_.now()));
  }
  EXPECT_TRUE(assignments(all).empty());
}

TEST_F(Speculation, ASnapshotWithoutAssignmentTimesNeverRaces) {
  // A snapshot from before speculation has no assignment time: not raced at all.
  const std::string g = straggle();
  auto snapshot = *core_.snapshot(g, clock_.now());
  for (auto& step : *snapshot.mutable_steps()) step.clear_assigned_at_ms();
  Core next(CoreConfig{.coordinator_id = "next"});
  (void)next.restore(0, 2, {snapshot}, {}, clock_.now());
  Effects all;
  for (int i = 0; i < 50; ++i) {
    clock_.advance(Millis(100));
    for (const char* p : {"1", "2", "3"}) (void)next.handle(heartbeatRecord(g, p), clock_.now());
    append(all, next.handle(Tick{}, clock_.now()));
  }
  EXPECT_TRUE(assignments(all).empty());
}

TEST_F(Speculation, ACancelledGroupAbortsBothAttempts) {
  const std::string g = raced();
  td::v1::CancelGroup cancel;
  cancel.set_group_id(g);
  cancel.set_reason("test");
  cancel.set_requested_by("me");
  cancel.set_request_id("r1");
  cancel.set_sent_at_ms(clock_.now().wall.count());
  Effects e = run(cancel);
  auto abort = aborts(e);
  ASSERT_EQ(abort.size(), 2u);
  EXPECT_EQ(abort[0].attempt() + abort[1].attempt(), 3u);
}

}  // namespace
}  // namespace td::coordinator::testing
