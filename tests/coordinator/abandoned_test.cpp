// Abandoned groups (docs/architecture.md, "Abandoned groups"): a running group whose members all
// left or were lost is ended as abandoned after CoreConfig::abandoned_group_timeout and
// forgotten at the next tick; a peer that joins it before then resumes it; the timer survives a
// restore. On simulated time.
#include <gtest/gtest.h>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class Abandoned : public CoreTest {
 protected:
  Millis timeout() const { return core_.config().abandoned_group_timeout; }
  static td::v1::PeerLeft left(const std::string& group, const std::string& peer,
                               const std::string& session = "") {
    td::v1::PeerLeft msg;
    msg.set_group_id(group);
    msg.set_peer_id(peer);
    msg.set_session_id(session.empty() ? sessionOf(peer) : session);
    msg.set_reason("SIGTERM");
    return msg;
  }
  // Advances `total` in one-second ticks; `alive` (group, peer, session) heartbeat each second.
  Effects passTime(Millis total,
                   const std::vector<std::tuple<std::string, std::string, std::string>>& alive) {
    Effects all;
    for (Millis t{0}; t < total; t += Millis(1000)) {
      clock_.advance(std::min(Millis(1000), total - t));
      for (const auto& [g, p, s] : alive) append(all, run(heartbeatRecord(g, p, s)));
      append(all, run(Tick{}));
    }
    return all;
  }
  static std::vector<td::v1::GroupAbandoned> abandonedEvents(const Effects& effects) {
    std::vector<td::v1::GroupAbandoned> out;
    for (const auto& e : events(effects)) {
      if (e.has_group_abandoned()) out.push_back(e.group_abandoned());
    }
    return out;
  }
  static std::int64_t steps(const Census& c) {
    return c.steps_waiting + c.steps_queued + c.steps_running + c.steps_succeeded +
           c.steps_failed;
  }
  // Group g: peers 1 and 2 of change c1, steps a, b, c; 2 finished b. Both leave.
  std::string groupWhoseMembersLeft() {
    auto g = join(PeerBuilder("1").change("c1").steps(3));   // 1 runs a
    join(PeerBuilder("2").change("c1").steps(3));            // 2 runs b
    finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);  // 2 runs c
    run(left(g, "1"));
    run(left(g, "2"));
    return g;
  }
};

TEST_F(Abandoned, AGroupWhoseMembersAllLeftIsAbandonedAfterTheTimeoutThenForgotten) {
  const auto& c = core_.census();
  auto g = groupWhoseMembersLeft();
  ASSERT_TRUE(core_.findGroupForTest(g)->memberlessSince().has_value());
  EXPECT_EQ(c.steps_queued, 2) << "a and c were re-queued when their peers left";

  clock_.advance(timeout() - seconds(1));
  Effects before = run(Tick{});
  EXPECT_TRUE(abandonedEvents(before).empty());
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);

  clock_.advance(seconds(2));
  Effects e = run(Tick{});
  auto abandoned = abandonedEvents(e);
  ASSERT_EQ(abandoned.size(), 1u);
  EXPECT_EQ(abandoned[0].group_id(), g);
  EXPECT_EQ(abandoned[0].memberless_for_ms(),
            static_cast<std::uint64_t>((timeout() + seconds(1)).count()));
  EXPECT_EQ(abandoned[0].last_peer_id(), "2");
  EXPECT_EQ(abandoned[0].steps_succeeded(), 1u);
  EXPECT_EQ(abandoned[0].steps_not_run(), 2u);
  ASSERT_EQ(abandoned[0].steps_size(), 3);
  EXPECT_EQ(abandoned[0].steps(1).outcome(), td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_EQ(abandoned[0].steps(0).outcome(), td::v1::STEP_OUTCOME_LOST);
  EXPECT_EQ(e.size(), 1u) << "nothing runs, so nothing to abort or publish";
  const Group* group = core_.findGroupForTest(g);
  ASSERT_NE(group, nullptr) << "held until the next tick, so this tick's snapshot records it";
  EXPECT_EQ(group->status(), td::v1::GROUP_STATUS_ABANDONED);
  EXPECT_EQ(core_.snapshot(g, clock_.now())->status(), td::v1::GROUP_STATUS_ABANDONED);
  EXPECT_EQ(c.groups_running, 0);
  EXPECT_EQ(c.groups_abandoned, 1);
  EXPECT_EQ(c.groups_abandoned_total, 1u);
  EXPECT_EQ(c.steps_queued + c.steps_waiting + c.steps_running, 0) << "not run: failed";
  EXPECT_TRUE(core_.takeForgotten().empty());

  (void)run(Tick{});   // the next tick, at the same instant
  EXPECT_EQ(core_.findGroupForTest(g), nullptr);
  auto forgotten = core_.takeForgotten();
  ASSERT_EQ(forgotten.size(), 1u);
  EXPECT_EQ(forgotten[0].group_id(), g);
  EXPECT_EQ(forgotten[0].peer_ids_size(), 2);
  EXPECT_EQ(c.groups_abandoned, 0);
  EXPECT_EQ(c.groups_running, 0);
  EXPECT_EQ(steps(c), 0);
  EXPECT_EQ(c.groups_abandoned_total, 1u) << "totals never decrease";

  // A later peer of the same change starts a new group; a replay of a member's session is
  // refused (its group was forgotten).
  auto again = join(PeerBuilder("1").change("c1").steps(3).session("1-s2"));
  EXPECT_FALSE(again.empty());
  EXPECT_NE(again, g);
  EXPECT_EQ(deadLetters(run(Registration{.peer = PeerBuilder("2").change("c1").steps(3).build()})),
            1);
}

TEST_F(Abandoned, NoTimerWhileAMemberRemains) {
  auto g = join(PeerBuilder("1").change("c1").steps(3));
  join(PeerBuilder("2").change("c1").steps(3));
  run(left(g, "1"));
  EXPECT_FALSE(core_.findGroupForTest(g)->memberlessSince().has_value());
  Effects e = passTime(timeout() * 2, {{g, "2", sessionOf("2")}});
  EXPECT_TRUE(abandonedEvents(e).empty());
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
}

TEST_F(Abandoned, AMemberThatComesBackBeforeTheTimeoutResumesTheGroup) {
  auto g = groupWhoseMembersLeft();
  clock_.advance(timeout() - seconds(10));
  (void)run(Tick{});
  // 1 comes back with a new session: it joins the same group and takes the queued steps.
  Effects back = run(Registration{.peer = PeerBuilder("1").change("c1").steps(3).session("1-s2").build()});
  EXPECT_EQ(core_.groupOfPeerForTest("1"), g);
  EXPECT_FALSE(core_.findGroupForTest(g)->memberlessSince().has_value());
  auto assigned = assignments(back, "1");
  ASSERT_EQ(assigned.size(), 1u);
  // Past the first deadline: nothing happens.
  Effects later = passTime(seconds(20), {{g, "1", "1-s2"}});
  EXPECT_TRUE(abandonedEvents(later).empty());
  // The group completes as usual.
  Effects e = finish(g, "1", assigned[0].step_id(), assigned[0].attempt(),
                     td::v1::STEP_OUTCOME_SUCCEEDED, "1-s2");
  assigned = assignments(e, "1");
  ASSERT_EQ(assigned.size(), 1u);
  e = finish(g, "1", assigned[0].step_id(), assigned[0].attempt(), td::v1::STEP_OUTCOME_SUCCEEDED,
             "1-s2");
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_COMPLETED);
  // Leaving a completed group arms nothing.
  run(left(g, "1", "1-s2"));
  EXPECT_TRUE(abandonedEvents(passTime(timeout() + seconds(2), {})).empty());
  EXPECT_EQ(core_.census().groups_abandoned_total, 0u);
}

TEST_F(Abandoned, ANewPeerOfTheChangeThatJoinsBeforeTheTimeoutResumesTheGroup) {
  auto g = groupWhoseMembersLeft();
  clock_.advance(timeout() / 2);
  EXPECT_EQ(join(PeerBuilder("3").change("c1").steps(3)), g);
  Effects e = passTime(timeout(), {{g, "3", sessionOf("3")}});
  EXPECT_TRUE(abandonedEvents(e).empty());
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
}

TEST_F(Abandoned, AGroupWhoseLastMemberWasLostIsAbandoned) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));   // 1 runs a
  // Another group's peer keeps input flowing, so leases may lapse.
  auto other = join(PeerBuilder("x").change("c9").schema("other").steps(1));
  ASSERT_NE(other, g);
  Effects e = passTime(core_.config().lease * 2, {{other, "x", sessionOf("x")}});
  bool lost = false;
  for (const auto& ev : events(e)) lost = lost || (ev.group_id() == g && ev.has_peer_lost());
  ASSERT_TRUE(lost);
  const Millis lost_at = *core_.findGroupForTest(g)->memberlessSince();
  EXPECT_TRUE(abandonedEvents(e).empty());
  e = passTime(timeout(), {{other, "x", sessionOf("x")}});
  auto abandoned = abandonedEvents(e);
  ASSERT_EQ(abandoned.size(), 1u);
  EXPECT_EQ(abandoned[0].group_id(), g);
  EXPECT_EQ(abandoned[0].last_peer_id(), "1");
  EXPECT_GE(abandoned[0].memberless_for_ms(), static_cast<std::uint64_t>(timeout().count()));
  EXPECT_LT(abandoned[0].memberless_for_ms(),
            static_cast<std::uint64_t>((timeout() + seconds(2)).count()));
  EXPECT_GT(clock_.now().mono, lost_at + timeout());
  EXPECT_EQ(core_.findGroupForTest(g), nullptr) << "forgotten at the tick after";
  EXPECT_EQ(core_.findGroupForTest(other)->status(), td::v1::GROUP_STATUS_RUNNING);
}

TEST_F(Abandoned, AZeroTimeoutNeverAbandons) {
  td::testing::ManualClock clock;
  Core core(CoreConfig{.coordinator_id = "t", .abandoned_group_timeout = Millis(0)});
  (void)core.handle(Registration{.peer = PeerBuilder("1").change("c1").steps(2).build()},
                    clock.now());
  const std::string g = core.groupOfPeerForTest("1");
  (void)core.handle(left(g, "1"), clock.now());
  clock.advance(std::chrono::hours(24));
  Effects e = core.handle(Tick{}, clock.now());
  EXPECT_TRUE(abandonedEvents(e).empty());
  EXPECT_EQ(core.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
}

TEST_F(Abandoned, ARestoredMemberlessGroupKeepsItsTimer) {
  auto g = groupWhoseMembersLeft();
  clock_.advance(seconds(100));
  auto snapshot = core_.snapshot(g, clock_.now());
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->memberless_since_ms(), (clock_.now().wall - seconds(100)).count());

  Core next(CoreConfig{.coordinator_id = "next"});
  (void)next.restore(0, 2, {*snapshot}, {}, clock_.now());
  ASSERT_TRUE(next.findGroupForTest(g)->memberlessSince().has_value());
  clock_.advance(timeout() - seconds(101));
  EXPECT_TRUE(abandonedEvents(next.handle(Tick{}, clock_.now())).empty());
  clock_.advance(seconds(2));
  Effects e = next.handle(Tick{}, clock_.now());
  auto abandoned = abandonedEvents(e);
  ASSERT_EQ(abandoned.size(), 1u);
  EXPECT_EQ(abandoned[0].memberless_for_ms(),
            static_cast<std::uint64_t>((timeout() + seconds(1)).count()));
  EXPECT_EQ(abandoned[0].coordinator_epoch(), 2u);
  (void)next.handle(Tick{}, clock_.now());
  EXPECT_EQ(next.findGroupForTest(g), nullptr);
  EXPECT_EQ(next.takeForgotten().size(), 1u);

  // A snapshot without the time (an older coordinator's) runs the timer from the restore.
  snapshot->clear_memberless_since_ms();
  Core older(CoreConfig{.coordinator_id = "older"});
  (void)older.restore(0, 3, {*snapshot}, {}, clock_.now());
  clock_.advance(timeout() - seconds(1));
  EXPECT_TRUE(abandonedEvents(older.handle(Tick{}, clock_.now())).empty());
  clock_.advance(seconds(1));
  EXPECT_EQ(abandonedEvents(older.handle(Tick{}, clock_.now())).size(), 1u);
}

TEST_F(Abandoned, ARestoredAbandonedGroupIsForgottenAtOnce) {
  auto g = groupWhoseMembersLeft();
  clock_.advance(timeout());
  ASSERT_EQ(abandonedEvents(run(Tick{})).size(), 1u);
  auto snapshot = core_.snapshot(g, clock_.now());   // the tick's td.state record
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->memberless_since_ms(), 0);
  Core next(CoreConfig{.coordinator_id = "next"});
  Effects restored = next.restore(0, 2, {*snapshot}, {}, clock_.now());
  EXPECT_EQ(deadLetters(restored), 0);
  EXPECT_EQ(next.census().groups_abandoned, 1);
  (void)next.handle(Tick{}, clock_.now());
  EXPECT_EQ(next.findGroupForTest(g), nullptr);
  EXPECT_EQ(next.takeForgotten().size(), 1u);
  EXPECT_EQ(next.census().groups_abandoned, 0);
}

TEST_F(Abandoned, AnAttemptStillRunningIsAbortedBeforeTheGroupIsAbandoned) {
  // A snapshot whose member is gone while its step runs (written mid-change by an older
  // coordinator): the attempt must be seen to end.
  auto g = join(PeerBuilder("1").change("c1").steps(2));   // 1 runs a
  auto snapshot = core_.snapshot(g, clock_.now());
  ASSERT_TRUE(snapshot.has_value());
  snapshot->mutable_members(0)->set_present(false);
  Core next(CoreConfig{.coordinator_id = "next"});
  Effects restored = next.restore(0, 2, {*snapshot}, {}, clock_.now());
  ASSERT_EQ(deadLetters(restored), 0);
  clock_.advance(timeout());
  Effects e = next.handle(Tick{}, clock_.now());
  auto kinds = eventKinds(e);
  ASSERT_EQ(kinds.size(), 2u);
  auto evs = events(e);
  ASSERT_TRUE(evs[0].has_step_aborted());
  EXPECT_EQ(evs[0].step_aborted().step_id(), "a");
  EXPECT_EQ(evs[0].step_aborted().reason(), "group abandoned");
  ASSERT_TRUE(evs[1].has_group_abandoned());
  EXPECT_TRUE(has(e, td::v1::AssignmentRecord::kAbort)) << "in case its worker still runs it";
  EXPECT_EQ(next.census().steps_running, 0);
  // Its worker's late answer is recorded as ignored, not as a second ending.
  Effects late = next.handle(finishedRecord(g, "1", "a", 1, td::v1::STEP_OUTCOME_ABORTED),
                             clock_.now());
  for (const auto& ev : events(late)) EXPECT_FALSE(ev.has_step_finished());
}

TEST_F(Abandoned, ALostMembersSessionIsRefusedOnceTheGroupIsAbandoned) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  auto other = join(PeerBuilder("x").change("c9").schema("other").steps(1));
  passTime(core_.config().lease * 2, {{other, "x", sessionOf("x")}});
  const auto since = core_.findGroupForTest(g)->memberlessSince();
  ASSERT_TRUE(since.has_value()) << "1 was lost";
  clock_.advance(*since + timeout() - clock_.now().mono);
  ASSERT_EQ(abandonedEvents(run(Tick{})).size(), 1u);
  // Abandoned, not yet forgotten: a replay of 1's registration gets a rejection, not the group.
  Effects replay = run(Registration{.peer = PeerBuilder("1").change("c1").steps(2).build()});
  bool rejected = false;
  for (const auto& effect : replay) {
    if (const auto* j = std::get_if<PublishJoin>(&effect)) rejected = j->record.has_rejected();
  }
  EXPECT_TRUE(rejected);
  (void)run(Tick{});
  EXPECT_EQ(core_.findGroupForTest(g), nullptr);
  // Forgotten: refused as a forgotten group's session; a new session starts a new group.
  EXPECT_EQ(deadLetters(run(Registration{.peer = PeerBuilder("1").change("c1").steps(2).build()})),
            1);
  auto again = join(PeerBuilder("1").change("c1").steps(2).session("1-s2"));
  EXPECT_FALSE(again.empty());
  EXPECT_NE(again, g);
}

}  // namespace
}  // namespace td::coordinator::testing
