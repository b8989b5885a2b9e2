// Universe runs on td.events (docs/configuration.md, "The universe"): a member of a completed
// group reports its universe run (UniverseStarted, UniverseFinished) and the core records it
// once per session; anything else is ignored with a reason, or dead-lettered when invalid.
#include <gtest/gtest.h>

#include <functional>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

class Universe;
// A report the core must ignore (input_ignored with `reason`), after `setup` built the group
// it names.
struct IgnoreCase {
  std::string name;
  std::function<std::string(Universe&)> setup;
  std::function<Input(const std::string& group)> report;
  std::string reason;
};

class Universe : public CoreTest {
 public:
  static std::vector<IgnoreCase> ignoreCases();

 protected:
  // Peers 1 and 2 share step "a"; 1 runs it and the group completes.
  std::string completedGroup() {
    const std::string g = join(PeerBuilder("1").change("c1").steps(1));
    join(PeerBuilder("2").change("c1").steps(1));
    finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
    EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_COMPLETED);
    return g;
  }
  static td::v1::UniverseStarted started(const std::string& group, const std::string& peer,
                                         const std::string& session = "") {
    td::v1::UniverseStarted s;
    s.set_group_id(group);
    s.set_peer_id(peer);
    s.set_session_id(session.empty() ? sessionOf(peer) : session);
    s.set_started_at_ms(1'700'000'000'000);
    return s;
  }
  static td::v1::UniverseFinished finished(const std::string& group, const std::string& peer,
                                           td::v1::StepOutcome outcome = td::v1::STEP_OUTCOME_SUCCEEDED,
                                           const std::string& session = "") {
    td::v1::UniverseFinished f;
    f.set_group_id(group);
    f.set_peer_id(peer);
    f.set_session_id(session.empty() ? sessionOf(peer) : session);
    f.set_outcome(outcome);
    f.set_exit_code(outcome == td::v1::STEP_OUTCOME_SUCCEEDED ? 0 : 3);
    f.set_duration_ms(4200);
    f.set_started_at_ms(1'700'000'000'000);
    return f;
  }
  // The reason of the one input_ignored `effects` hold ("" if they hold anything else).
  static std::string ignoredReason(const Effects& effects) {
    const auto evs = events(effects);
    if (evs.size() != 1 || !evs[0].has_input_ignored()) return "";
    return evs[0].input_ignored().reason();
  }
  std::uint64_t runsTotal(td::v1::StepOutcome outcome) const {
    return core_.census().universe_runs_total[universeOutcomeIndex(outcome)];
  }
};

TEST_F(Universe, AMembersRunIsRecordedOnceStartedAndOnceFinished) {
  const auto g = completedGroup();
  Effects s = run(started(g, "2"));
  ASSERT_EQ(eventKinds(s), std::vector<std::string>{"universe_started"});
  const auto start = events(s)[0];
  EXPECT_EQ(start.group_id(), g);
  EXPECT_EQ(start.universe_started().peer_id(), "2");
  EXPECT_EQ(start.universe_started().session_id(), "2-s1");
  EXPECT_EQ(start.universe_started().started_at_ms(), 1'700'000'000'000);

  Effects f = run(finished(g, "2", td::v1::STEP_OUTCOME_FAILED));
  ASSERT_EQ(eventKinds(f), std::vector<std::string>{"universe_finished"});
  const auto& end = events(f)[0].universe_finished();
  EXPECT_EQ(end.outcome(), td::v1::STEP_OUTCOME_FAILED);
  EXPECT_EQ(end.exit_code(), 3);
  EXPECT_EQ(end.duration_ms(), 4200u);
  EXPECT_EQ(events(f)[0].sequence(), start.sequence() + 1);
  EXPECT_EQ(runsTotal(td::v1::STEP_OUTCOME_FAILED), 1u);

  // Kafka redelivers: the same reports again change nothing.
  EXPECT_EQ(ignoredReason(run(started(g, "2"))), "duplicate");
  EXPECT_EQ(ignoredReason(run(finished(g, "2", td::v1::STEP_OUTCOME_FAILED))), "duplicate");
  EXPECT_EQ(runsTotal(td::v1::STEP_OUTCOME_FAILED), 1u);
  EXPECT_EQ(deadLetters(all_), 0);
}

TEST_F(Universe, AFinishWithoutAStartIsRecorded) {
  // The worker does not wait for its start report: it may be lost while the finish arrives.
  const auto g = completedGroup();
  EXPECT_EQ(eventKinds(run(finished(g, "1"))), std::vector<std::string>{"universe_finished"});
  EXPECT_EQ(ignoredReason(run(started(g, "1"))), "duplicate") << "a start after the finish";
  EXPECT_EQ(runsTotal(td::v1::STEP_OUTCOME_SUCCEEDED), 1u);
}

TEST_F(Universe, ALateJoinerOfACompletedGroupReportsItsRun) {
  const auto g = completedGroup();
  ASSERT_EQ(join(PeerBuilder("3").change("c1").steps(1)), g);
  EXPECT_EQ(eventKinds(run(started(g, "3"))), std::vector<std::string>{"universe_started"});
  EXPECT_EQ(eventKinds(run(finished(g, "3"))), std::vector<std::string>{"universe_finished"});
}

std::vector<IgnoreCase> Universe::ignoreCases() {
  return {
      {"GroupStillRunning",
       [](Universe& t) { return t.join(PeerBuilder("1").change("c1").steps(2)); },
       [](const std::string& g) { return Input{started(g, "1")}; }, "group_not_completed"},
      {"GroupFailed",
       [](Universe& t) {
         const auto g = t.join(PeerBuilder("1").change("c1").step("a", 1));
         t.finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);
         return g;
       },
       [](const std::string& g) { return Input{finished(g, "1")}; }, "group_not_completed"},
      {"PeerNeverJoined", [](Universe& t) { return t.completedGroup(); },
       [](const std::string& g) { return Input{finished(g, "9")}; }, "not_a_member"},
      {"PeerLeft",
       [](Universe& t) {
         const auto g = t.completedGroup();
         td::v1::PeerLeft left;
         left.set_group_id(g);
         left.set_peer_id("2");
         left.set_session_id(sessionOf("2"));
         left.set_reason("signal");
         t.run(left);
         return g;
       },
       [](const std::string& g) { return Input{started(g, "2")}; }, "not_a_member"},
      {"AnEarlierSessionOfThePeer",
       [](Universe& t) {
         const auto g = t.completedGroup();
         t.run(Registration{.peer = PeerBuilder("2").change("c1").steps(1).session("2-s2").build()});
         return g;
       },
       [](const std::string& g) { return Input{finished(g, "2")}; }, "stale_session"},
      {"FinishedTwice",
       [](Universe& t) {
         const auto g = t.completedGroup();
         t.run(finished(g, "2", td::v1::STEP_OUTCOME_TIMED_OUT));
         return g;
       },
       [](const std::string& g) { return Input{finished(g, "2", td::v1::STEP_OUTCOME_TIMED_OUT)}; },
       "duplicate"},
      {"StartedTwice",
       [](Universe& t) {
         const auto g = t.completedGroup();
         t.run(started(g, "1"));
         return g;
       },
       [](const std::string& g) { return Input{started(g, "1")}; }, "duplicate"},
  };
}

class UniverseIgnores : public Universe, public ::testing::WithParamInterface<IgnoreCase> {};

TEST_P(UniverseIgnores, TheReportWithItsReason) {
  const std::string g = GetParam().setup(*this);
  Effects e = run(GetParam().report(g));
  EXPECT_EQ(ignoredReason(e), GetParam().reason);
  EXPECT_EQ(deadLetters(e), 0);
  EXPECT_EQ(core_.census().universe_runs_total[universeOutcomeIndex(td::v1::STEP_OUTCOME_TIMED_OUT)],
            GetParam().name == "FinishedTwice" ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Cases, UniverseIgnores, ::testing::ValuesIn(Universe::ignoreCases()),
                         [](const auto& info) { return info.param.name; });

TEST_F(Universe, InvalidOrUnplaceableReportsAreDeadLetteredWithTheProblem) {
  const auto g = completedGroup();
  struct Case {
    std::function<void(td::v1::UniverseFinished&)> spoil;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {[](auto& f) { f.clear_peer_id(); }, "invalid universe finished: peer_id: empty"},
      {[](auto& f) { f.set_session_id("a b"); },
       "invalid universe finished: session_id: contains a control or space character"},
      {[](auto& f) { f.set_group_id(std::string(300, 'g')); },
       "invalid universe finished: group_id: 300 bytes, at most 256"},
      {[](auto& f) { f.set_started_at_ms(-5); },
       "invalid universe finished: started_at_ms: -5 is negative"},
      {[](auto& f) { f.set_outcome(td::v1::STEP_OUTCOME_LOST); },
       "invalid universe finished: outcome: 5 is not a universe outcome"},
      {[](auto& f) { f.set_outcome(td::v1::STEP_OUTCOME_UNSPECIFIED); },
       "invalid universe finished: outcome: 0 is not a universe outcome"},
      {[](auto& f) { f.set_exit_code(300); },
       "invalid universe finished: exit_code: 300 not in -1..255"},
      {[](auto& f) { f.set_signal(-1); }, "invalid universe finished: signal: -1 not in 0..64"},
      {[](auto& f) { f.set_output_tail(std::string(protocol::kMaxOutputTailBytes + 1, 'x')); },
       "invalid universe finished: output_tail: 65537 bytes, at most 65536"},
      {[](auto& f) { f.set_group_id("nobody-knows"); }, "unknown group nobody-knows"},
  };
  for (const auto& c : cases) {
    auto report = finished(g, "2");
    c.spoil(report);
    Effects e = run(report);
    ASSERT_EQ(e.size(), 1u) << c.reason;
    const auto* dead = std::get_if<DeadLetter>(&e[0]);
    ASSERT_NE(dead, nullptr) << c.reason;
    EXPECT_EQ(dead->reason, c.reason);
  }
  auto start = started(g, "2");
  start.set_peer_id("tab\there");
  Effects e = run(start);
  ASSERT_EQ(deadLetters(e), 1);
  EXPECT_EQ(std::get<DeadLetter>(e[0]).reason,
            "invalid universe started: peer_id: contains a control or space character");
  EXPECT_EQ(runsTotal(td::v1::STEP_OUTCOME_SUCCEEDED), 0u) << "nothing was recorded";
}

TEST_F(Universe, ARestoredGroupRemembersWhichRunsItRecorded) {
  const auto g = completedGroup();
  run(started(g, "1"));
  run(finished(g, "2"));
  const auto snapshot = core_.snapshot(g, clock_.now());
  ASSERT_TRUE(snapshot.has_value());

  Core next(CoreConfig{.coordinator_id = "next"});
  Effects restored = next.restore(0, 2, {*snapshot}, {}, clock_.now());
  EXPECT_EQ(deadLetters(restored), 0);
  auto reason = [&](const Input& input) { return ignoredReason(next.handle(input, clock_.now())); };
  EXPECT_EQ(reason(started(g, "1")), "duplicate");
  EXPECT_EQ(reason(finished(g, "2")), "duplicate");
  Effects e = next.handle(finished(g, "1"), clock_.now());
  ASSERT_EQ(eventKinds(e), std::vector<std::string>{"universe_finished"});
  EXPECT_EQ(events(e)[0].coordinator_epoch(), 2u);
}

}  // namespace
}  // namespace td::coordinator::testing
