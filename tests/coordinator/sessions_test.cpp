// Sessions that end while their process may still run (docs/protocol.md, "Sessions that
// end"): a replaced session is told and its step aborted, a lost session is told once, and a
// member silent for half its lease is announced once per silent spell. On simulated time.
#include <gtest/gtest.h>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using std::chrono::milliseconds;
using td::v1::AssignmentRecord;

class Sessions : public CoreTest {
 protected:
  static td::v1::PeerHeartbeat heartbeat(const std::string& group, const std::string& peer,
                                         const std::string& session = "") {
    return heartbeatRecord(group, peer, session);
  }
  // Advances time by `total` in 100 ms ticks; `alive` peers heartbeat every `every`.
  Effects passTime(Millis total, const std::string& group, const std::vector<std::string>& alive,
                   Millis every = Millis(1000)) {
    Effects all;
    for (Millis t{0}; t < total; t += Millis(100)) {
      clock_.advance(Millis(100));
      if ((t + Millis(100)) % every == Millis(0)) {
        for (const auto& peer : alive) append(all, run(heartbeat(group, peer)));
      }
      append(all, run(Tick{}));
    }
    return all;
  }
  // The assignment-topic records of `effects` with this body, in order.
  static std::vector<AssignmentRecord> records(const Effects& effects,
                                               AssignmentRecord::BodyCase kind) {
    std::vector<AssignmentRecord> out;
    for (const auto& e : effects) {
      if (const auto* p = std::get_if<PublishAssignment>(&e); p && p->record.body_case() == kind) {
        out.push_back(p->record);
      }
    }
    return out;
  }
  // Index in `effects` of the first assignment record with this body, or -1.
  static int indexOf(const Effects& effects, AssignmentRecord::BodyCase kind) {
    for (std::size_t i = 0; i < effects.size(); ++i) {
      if (const auto* p = std::get_if<PublishAssignment>(&effects[i]);
          p && p->record.body_case() == kind) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
};

TEST_F(Sessions, ReplacementAbortsTheOldSessionsStepAndTellsItBeforeTheStepRunsAgain) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));   // 1-s1 runs a, attempt 1
  Effects e = run(Registration{.peer = PeerBuilder("1").change("c1").steps(1).session("1-s2").build()});

  auto aborts = records(e, AssignmentRecord::kAbort);
  ASSERT_EQ(aborts.size(), 1u);
  const auto& abort = aborts[0].abort();
  EXPECT_EQ(abort.group_id(), g);
  EXPECT_EQ(abort.peer_id(), "1");
  EXPECT_EQ(abort.session_id(), "1-s1");
  EXPECT_EQ(abort.step_id(), "a");
  EXPECT_EQ(abort.attempt(), 1u);
  EXPECT_EQ(abort.reason(), "replaced by a new session of peer 1 (session 1-s2)");
  EXPECT_EQ(abort.coordinator_epoch(), core_.config().epoch);

  auto ended = records(e, AssignmentRecord::kSessionEnded);
  ASSERT_EQ(ended.size(), 1u);
  const auto& notice = ended[0].session_ended();
  EXPECT_EQ(notice.peer_id(), "1");
  EXPECT_EQ(notice.session_id(), "1-s1");
  EXPECT_EQ(notice.cause(), td::v1::SessionEnded::CAUSE_REPLACED);
  EXPECT_EQ(notice.replaced_by_session_id(), "1-s2");
  EXPECT_EQ(notice.reason(), abort.reason());
  ASSERT_EQ(notice.requeued_size(), 1);
  EXPECT_EQ(notice.requeued(0).step_id(), "a");
  EXPECT_EQ(notice.requeued(0).attempt(), 1u);

  // The abort and the notice come before the step is handed out again.
  auto a = assignments(e);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].session_id(), "1-s2");
  EXPECT_EQ(a[0].attempt(), 2u);
  EXPECT_LT(indexOf(e, AssignmentRecord::kAbort), indexOf(e, AssignmentRecord::kSessionEnded));
  EXPECT_LT(indexOf(e, AssignmentRecord::kSessionEnded), indexOf(e, AssignmentRecord::kAssigned));
  // td.events: step_aborted (so an auditor sees the abort before attempt 2), then the lost
  // attempt, then attempt 2.
  auto kinds = eventKinds(e);
  auto at = [&](const std::string& kind) {
    return std::find(kinds.begin(), kinds.end(), kind) - kinds.begin();
  };
  EXPECT_LT(at("peer_left"), at("step_aborted"));
  EXPECT_LT(at("step_aborted"), at("step_finished"));
  EXPECT_LT(at("step_finished"), at("step_assigned"));

  // The old session's answer (its killed step, aborted) is refused and changes nothing, but
  // its times are on record for an auditor.
  auto late = finishedRecord(g, "1", "a", 1, td::v1::STEP_OUTCOME_ABORTED, "1-s1");
  late.set_duration_ms(1234);
  late.set_output_tail("killed");
  Effects answer = run(late);
  EXPECT_TRUE(records(answer, AssignmentRecord::kAssigned).empty());
  const auto answered = events(answer);
  ASSERT_EQ(answered.size(), 1u);
  const auto& ignored = answered[0].input_ignored();
  EXPECT_EQ(ignored.reason(), "stale_attempt");
  ASSERT_TRUE(ignored.has_finished());
  EXPECT_EQ(ignored.finished().duration_ms(), 1234u);
  EXPECT_EQ(ignored.finished().outcome(), td::v1::STEP_OUTCOME_ABORTED);
  EXPECT_TRUE(ignored.finished().output_tail().empty());
}

TEST_F(Sessions, AReplacedIdleSessionIsToldWithoutAnAbort) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  join(PeerBuilder("2").change("c1").steps(1));   // idle: a runs on 1
  Effects e = run(Registration{.peer = PeerBuilder("2").change("c1").steps(1).session("2-s2").build()});
  EXPECT_TRUE(records(e, AssignmentRecord::kAbort).empty());
  auto ended = records(e, AssignmentRecord::kSessionEnded);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].session_ended().session_id(), "2-s1");
  EXPECT_EQ(ended[0].session_ended().requeued_size(), 0);
  EXPECT_EQ(core_.groupOfPeerForTest("2"), g);
}

TEST_F(Sessions, ALostSessionIsToldOnceAtItsLossNotPerHeartbeatAndMayRejoin) {
  // No speculative twin races a on the idle 2 meanwhile: a is re-queued when 1 is lost.
  auto g = join(PeerBuilder("1").change("c1").steps(2).noSpeculation());   // 1 runs a
  join(PeerBuilder("2").change("c1").steps(2).noSpeculation());            // 2 runs b
  finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  Effects e = passTime(core_.config().lease + milliseconds(500), g, {"2"});
  auto ended = records(e, AssignmentRecord::kSessionEnded);
  ASSERT_EQ(ended.size(), 1u);
  const auto& notice = ended[0].session_ended();
  EXPECT_EQ(notice.group_id(), g);
  EXPECT_EQ(notice.peer_id(), "1");
  EXPECT_EQ(notice.session_id(), "1-s1");
  EXPECT_EQ(notice.cause(), td::v1::SessionEnded::CAUSE_LOST);
  EXPECT_NE(notice.reason().find("missed its lease"), std::string::npos) << notice.reason();
  ASSERT_EQ(notice.requeued_size(), 1);
  EXPECT_EQ(notice.requeued(0).step_id(), "a");
  EXPECT_TRUE(records(e, AssignmentRecord::kAbort).empty()) << "nobody to abort: it is silent";
  // a went to 2 right after the notice.
  EXPECT_LT(indexOf(e, AssignmentRecord::kSessionEnded), indexOf(e, AssignmentRecord::kAssigned));

  // It wakes up: its heartbeats are ignored, and told nothing more (it has the notice).
  Effects later;
  for (int i = 0; i < 5; ++i) append(later, run(heartbeat(g, "1")));
  EXPECT_TRUE(records(later, AssignmentRecord::kSessionEnded).empty());
  ASSERT_EQ(events(later).size(), 5u);
  for (const auto& ev : events(later)) EXPECT_EQ(ev.input_ignored().reason(), "not_a_member");

  // It registers again with a new session and is back in the same group.
  Effects again =
      run(Registration{.peer = PeerBuilder("1").change("c1").steps(2).session("1-s2").build()});
  EXPECT_EQ(core_.groupOfPeerForTest("1"), g);
  EXPECT_TRUE(records(again, AssignmentRecord::kSessionEnded).empty()) << "told once already";
  EXPECT_TRUE(core_.findGroupForTest(g)->isPresentSession("1", "1-s2"));
}

TEST_F(Sessions, ASilentMemberRunningAStepIsAnnouncedOncePerSilentSpell) {
  const Millis lease = core_.config().lease;
  const auto silent_after = Group::silentAfter(core_.config());
  ASSERT_TRUE(silent_after.has_value());
  EXPECT_EQ(*silent_after, lease / 2);
  auto g = join(PeerBuilder("1").change("c1").steps(2));   // 1 runs a
  join(PeerBuilder("2").change("c1").steps(2));            // 2 runs b
  // Everyone heartbeats for a while: no notice.
  Effects quiet = passTime(lease * 2, g, {"1", "2"});
  EXPECT_TRUE(records(quiet, AssignmentRecord::kPeerSilent).empty());

  // 1 falls silent for most of a lease: one notice, about 1 and its step.
  Effects spell = passTime(lease - Millis(600), g, {"2"});
  auto notices = records(spell, AssignmentRecord::kPeerSilent);
  ASSERT_EQ(notices.size(), 1u);
  const auto& n = notices[0].peer_silent();
  EXPECT_EQ(n.group_id(), g);
  EXPECT_EQ(n.peer_id(), "1");
  EXPECT_EQ(n.session_id(), "1-s1");
  EXPECT_EQ(n.step_id(), "a");
  EXPECT_EQ(n.attempt(), 1u);
  EXPECT_GE(n.silent_for_ms(), static_cast<std::uint64_t>(silent_after->count()));
  EXPECT_LT(n.silent_for_ms(), static_cast<std::uint64_t>(lease.count()));
  EXPECT_EQ(n.lease_ms(), static_cast<std::uint64_t>(lease.count()));
  EXPECT_EQ(n.coordinator_epoch(), core_.config().epoch);
  for (const auto& ev : events(spell)) EXPECT_FALSE(ev.has_peer_lost());

  // Heard again: the spell ends; a second silence is a second spell with its own notice.
  run(heartbeat(g, "1"));
  Effects second = passTime(lease - Millis(600), g, {"2"});
  auto again = records(second, AssignmentRecord::kPeerSilent);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].peer_silent().heard_at_ms(), n.heard_at_ms());
  // ... and when the lease runs out it is lost, with no further notice.
  Effects lost = passTime(Millis(1000), g, {"2"});
  EXPECT_TRUE(records(lost, AssignmentRecord::kPeerSilent).empty());
  EXPECT_EQ(records(lost, AssignmentRecord::kSessionEnded).size(), 1u);
}

TEST_F(Sessions, TheSilentNoticeNamesTheStepItsHeartbeatsSaidItRuns) {
  // With two slots, 1 holds a (taken ahead) and b; its heartbeats say it runs b.
  auto g = join(PeerBuilder("1").change("c1").steps(2).slots(2));
  join(PeerBuilder("2").change("c1").steps(2));
  passTime(core_.config().lease * 2, g, {"1", "2"});
  auto hb = heartbeat(g, "1");
  hb.set_running_step_id("b");
  hb.set_running_attempt(1);
  run(hb);
  Effects e = passTime(core_.config().lease - Millis(600), g, {"2"});
  auto notices = records(e, AssignmentRecord::kPeerSilent);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].peer_silent().step_id(), "b");
}

TEST_F(Sessions, AnIdleSilentMemberIsNotAnnounced) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));   // 1 runs a
  join(PeerBuilder("2").change("c1").steps(1));            // 2 is idle
  passTime(core_.config().lease * 2, g, {"1", "2"});
  Effects e = passTime(core_.config().lease - Millis(600), g, {"1"});
  EXPECT_TRUE(records(e, AssignmentRecord::kPeerSilent).empty()) << "nobody waits for 2";
}

TEST(SilentAfter, HalfTheLeaseAtLeastTwoHeartbeatsAndNoneWhenNotBelowTheLease) {
  EXPECT_EQ(Group::silentAfter(CoreConfig{.lease = Millis(5000), .heartbeat_interval = Millis(1000)}),
            Millis(2500));
  EXPECT_EQ(Group::silentAfter(CoreConfig{.lease = Millis(3000), .heartbeat_interval = Millis(1000)}),
            Millis(2000));
  EXPECT_EQ(Group::silentAfter(CoreConfig{.lease = Millis(2000), .heartbeat_interval = Millis(1000)}),
            std::nullopt);
}

}  // namespace
}  // namespace td::coordinator::testing
