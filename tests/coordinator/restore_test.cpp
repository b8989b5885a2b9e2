// Fail-over in the core: snapshots (td.state) restore a group faithfully, a replay of the same
// input into a restored core decides the same and re-assigns nothing, restored peers get a
// grace period, and a bad snapshot costs only its own group.
#include <gtest/gtest.h>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using std::chrono::seconds;
using td::v1::AssignmentRecord;

class Restore : public CoreTest {
 protected:
  // Snapshots of the given groups of core_ as the Kafka shell writes them (no outbox).
  std::vector<td::v1::GroupSnapshot> snapshots(const std::vector<std::string>& groups) {
    std::vector<td::v1::GroupSnapshot> out;
    for (const auto& g : groups) {
      auto s = core_.snapshot(g, clock_.now());
      EXPECT_TRUE(s.has_value()) << g;
      if (s) out.push_back(*s);
    }
    return out;
  }
  std::unique_ptr<Core> restored(const std::vector<td::v1::GroupSnapshot>& snapshots,
                                 std::uint64_t epoch, Effects* effects = nullptr) {
    auto core = std::make_unique<Core>(CoreConfig{.coordinator_id = "next"});
    Effects e = core->restore(0, epoch, snapshots, {}, clock_.now());
    if (effects != nullptr) *effects = std::move(e);
    return core;
  }
  static td::v1::StepFinished finished(const std::string& group, const std::string& peer,
                                       const std::string& step, std::uint32_t attempt,
                                       td::v1::StepOutcome outcome) {
    td::v1::StepFinished f;
    f.set_group_id(group);
    f.set_peer_id(peer);
    f.set_session_id(sessionOf(peer));
    f.set_step_id(step);
    f.set_attempt(attempt);
    f.set_outcome(outcome);
    return f;
  }
  // Applies `inputs` to `core`, returning every effect.
  Effects apply(Core& core, const std::vector<Input>& inputs) {
    Effects all;
    for (const auto& input : inputs) {
      Effects e = core.handle(input, clock_.now());
      all.insert(all.end(), e.begin(), e.end());
    }
    return all;
  }
  // The effects as comparable text, without the fields a new owner changes (epoch, its id, and
  // event sequences: its group_restored event takes one).
  static std::vector<std::string> decisions(const Effects& effects) {
    std::vector<std::string> out;
    for (const auto& effect : effects) {
      if (const auto* e = std::get_if<PublishEvent>(&effect)) {
        td::v1::Event ev = e->event;
        ev.clear_coordinator_epoch();
        ev.clear_coordinator_id();
        ev.clear_sequence();
        if (ev.has_step_assigned()) ev.mutable_step_assigned()->clear_coordinator_epoch();
        out.push_back("event " + ev.ShortDebugString());
      } else if (const auto* a = std::get_if<PublishAssignment>(&effect)) {
        AssignmentRecord r = a->record;
        if (r.has_assigned()) r.mutable_assigned()->clear_coordinator_epoch();
        if (r.has_completed()) r.mutable_completed()->clear_coordinator_epoch();
        out.push_back("assign " + r.ShortDebugString());
      } else if (const auto* j = std::get_if<PublishJoin>(&effect)) {
        td::v1::JoinRecord r = j->record;
        if (r.has_joined()) r.mutable_joined()->clear_coordinator_epoch();
        out.push_back("join " + r.ShortDebugString());
      } else if (const auto* d = std::get_if<DeadLetter>(&effect)) {
        out.push_back("dead " + d->reason);
      }
    }
    return out;
  }
};

TEST_F(Restore, RestoredGroupDecidesExactlyAsTheOriginal) {
  auto g = join(PeerBuilder("1").change("c1").step("a").step("b").step("c", 3, {"a", "b"}));
  join(PeerBuilder("2").change("c2").on({"c1"}).step("a").step("b").step("c", 3, {"a", "b"}));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);   // a: retry with backoff
  clock_.advance(seconds(1));
  auto copy = restored(snapshots({g}), 2);
  const std::vector<Input> batch = {
      finished(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED),
      finished(g, "2", "a", 2, td::v1::STEP_OUTCOME_SUCCEEDED),
  };
  clock_.advance(seconds(1));
  Effects original = apply(core_, batch);
  Effects after_restore = apply(*copy, batch);
  EXPECT_EQ(decisions(original), decisions(after_restore));
  ASSERT_FALSE(assignments(original).empty());   // c was assigned: the test exercises something
  // The sequence goes on after the restorer's group_restored event, without a gap.
  EXPECT_EQ(events(after_restore).front().sequence(), events(original).front().sequence() + 1);
  for (const auto& ev : events(after_restore)) EXPECT_EQ(ev.coordinator_epoch(), 2u);
}

// The shell writes Core::encodeState, which re-encodes only the steps that changed: after
// each change it must still parse to the fresh snapshot with its outbox, field for field.
TEST_F(Restore, EncodedStateIsTheSnapshotWithItsOutboxAfterEveryChange) {
  auto g = join(PeerBuilder("1").change("c1").steps(3));
  join(PeerBuilder("2").change("c1").steps(3));
  auto check = [&](const Effects& effects) {
    td::v1::StateRecord expected;
    expected.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    *expected.mutable_group() = *core_.snapshot(g, clock_.now());
    std::string wire;   // the same outbox as the shell builds it: each record's bytes once
    for (const auto& effect : effects) {
      if (const auto* e = std::get_if<PublishEvent>(&effect)) {
        *expected.mutable_group()->add_outbox()->mutable_event() = e->event;
        appendOutboxEvent(e->event.SerializeAsString(), &wire);
      } else if (const auto* a = std::get_if<PublishAssignment>(&effect)) {
        *expected.mutable_group()->add_outbox()->mutable_assignment() = a->record;
        appendOutboxAssignment(a->record.SerializeAsString(), &wire);
      }
    }
    td::v1::StateRecord parsed;
    ASSERT_TRUE(parsed.ParseFromString(*core_.encodeState(g, clock_.now(), wire)));
    EXPECT_EQ(parsed.ShortDebugString(), expected.ShortDebugString());
  };
  check({});
  check(finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED));   // a: queued with a backoff
  clock_.advance(seconds(1));
  check(finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED));
  clock_.advance(seconds(60));                                    // the backoff has passed
  check(core_.handle(Tick{}, clock_.now()));
}

TEST_F(Restore, ReplayingTheSameInputTwiceIntoARestoredCoreReassignsNothing) {
  auto g = join(PeerBuilder("1").change("c1").steps(4));
  join(PeerBuilder("2").change("c1").steps(4));
  join(PeerBuilder("3").change("c1").steps(4));
  const auto saved = snapshots({g});
  const std::vector<Input> batch = {
      finished(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED),
      finished(g, "2", "b", 1, td::v1::STEP_OUTCOME_FAILED),
      finished(g, "3", "c", 1, td::v1::STEP_OUTCOME_SUCCEEDED),
  };
  // The same snapshot and the same input give the same output, twice (a crash after the
  // output but before the offsets were committed replays exactly this).
  auto first = restored(saved, 2);
  auto second = restored(saved, 2);
  const Effects out1 = apply(*first, batch);
  const Effects out2 = apply(*second, batch);
  EXPECT_EQ(decisions(out1), decisions(out2));
  ASSERT_GE(assignments(out1).size(), 2u);   // d and the retry of b were handed out
  // The input again, now that the restored core has applied it: nothing is re-assigned, and
  // each repeat is recorded as ignored.
  const Effects again = apply(*first, batch);
  EXPECT_TRUE(assignments(again).empty());
  EXPECT_FALSE(has(again, AssignmentRecord::kCompleted));
  for (const auto& kind : eventKinds(again)) EXPECT_EQ(kind, "input_ignored");
  EXPECT_EQ(eventKinds(again).size(), batch.size());
}

TEST_F(Restore, RepublishesTheOutboxThenFencesWithTheNewEpoch) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  Effects last = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  auto snapshot = *core_.snapshot(g, clock_.now());
  for (const auto& effect : last) {   // what the shell does: the cycle's output is the outbox
    if (const auto* e = std::get_if<PublishEvent>(&effect)) {
      *snapshot.add_outbox()->mutable_event() = e->event;
    } else if (const auto* a = std::get_if<PublishAssignment>(&effect)) {
      *snapshot.add_outbox()->mutable_assignment() = a->record;
    }
  }
  Effects effects;
  auto copy = restored({snapshot}, 7, &effects);
  ASSERT_GE(effects.size(), static_cast<std::size_t>(snapshot.outbox_size()) + 2);
  for (int i = 0; i < snapshot.outbox_size(); ++i) {   // identical records first
    const auto& o = snapshot.outbox(i);
    if (o.has_event()) {
      EXPECT_EQ(std::get<PublishEvent>(effects[i]).event.SerializeAsString(),
                o.event().SerializeAsString());
    } else {
      EXPECT_EQ(std::get<PublishAssignment>(effects[i]).record.SerializeAsString(),
                o.assignment().SerializeAsString());
    }
  }
  const auto& restored_event = std::get<PublishEvent>(effects[snapshot.outbox_size()]).event;
  ASSERT_TRUE(restored_event.has_group_restored());
  EXPECT_EQ(restored_event.sequence(), snapshot.next_sequence());
  EXPECT_EQ(restored_event.coordinator_epoch(), 7u);
  EXPECT_EQ(restored_event.group_restored().previous_epoch(), 1u);
  const auto& owner = std::get<PublishAssignment>(effects[snapshot.outbox_size() + 1]).record;
  ASSERT_TRUE(owner.has_owner());
  EXPECT_EQ(owner.owner().coordinator_epoch(), 7u);
  // Later assignments carry the new epoch.
  Effects next = copy->handle(finished(g, "1", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED),
                              clock_.now());
  ASSERT_TRUE(has(next, AssignmentRecord::kCompleted));
  for (const auto& effect : next) {
    if (const auto* a = std::get_if<PublishAssignment>(&effect)) {
      EXPECT_EQ(a->record.completed().coordinator_epoch(), 7u);
    }
  }
}

TEST_F(Restore, RestoredPeersGetAGracePeriodThenLeasesApply) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  join(PeerBuilder("2").change("c1").steps(2));
  // Peer 1 has been silent for almost a lease when its coordinator dies.
  clock_.advance(core_.config().lease - seconds(1));
  auto copy = restored(snapshots({g}), 2);
  auto heartbeat = [&](const std::string& peer) {
    td::v1::PeerHeartbeat hb;
    hb.set_group_id(g);
    hb.set_peer_id(peer);
    hb.set_session_id(sessionOf(peer));
    return copy->handle(hb, clock_.now());
  };
  Effects during;
  // Peer 2 heartbeats (input flows); peer 1 stays silent. Within the grace period (one lease
  // from the restore) nobody is lost, although peer 1 was last heard over a lease ago.
  for (Millis t{0}; t < core_.config().lease - Millis(500); t += Millis(500)) {
    clock_.advance(Millis(500));
    heartbeat("2");
    Effects e = copy->handle(Tick{}, clock_.now());
    during.insert(during.end(), e.begin(), e.end());
  }
  for (const auto& kind : eventKinds(during)) EXPECT_NE(kind, "peer_lost");
  Effects after;
  for (Millis t{0}; t < seconds(3); t += Millis(500)) {
    clock_.advance(Millis(500));
    heartbeat("2");
    Effects e = copy->handle(Tick{}, clock_.now());
    after.insert(after.end(), e.begin(), e.end());
  }
  auto kinds = eventKinds(after);
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "peer_lost"), kinds.end());
  auto a = assignments(after);
  ASSERT_EQ(a.size(), 0u);   // peer 2 still runs b; a is queued for it
}

TEST_F(Restore, BackoffSurvivesTheRestore) {
  auto g = join(PeerBuilder("1").change("c1").step("a", 3));
  // Default backoff: the peer that failed may retry only after a wait.
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);
  auto copy = restored(snapshots({g}), 2);
  Effects early = copy->handle(Tick{}, clock_.now());
  EXPECT_TRUE(assignments(early).empty());
  clock_.advance(seconds(120));
  Effects later = copy->handle(Tick{}, clock_.now());
  auto a = assignments(later);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].attempt(), 2u);
}

TEST_F(Restore, AnInvalidSnapshotIsDeadLetteredAndTheOthersRestored) {
  auto g1 = join(PeerBuilder("1").change("c1").cache("x").steps(2));
  auto g2 = join(PeerBuilder("2").change("c2").cache("y").steps(2));
  auto saved = snapshots({g1, g2});
  saved[0].mutable_members(0)->add_running(99);   // names a step that does not exist
  Effects effects;
  auto copy = restored(saved, 2, &effects);
  EXPECT_EQ(deadLetters(effects), 1);
  EXPECT_EQ(copy->groupCount(), 1u);
  EXPECT_NE(copy->findGroupForTest(g2), nullptr);
  // A snapshot written by a newer epoch than the restorer's is refused too.
  auto copy2 = restored({saved[1]}, 0, &effects);
  EXPECT_EQ(copy2->groupCount(), 0u);
}

TEST_F(Restore, RestoredPeersAreKnownSoTheirRegistrationsAreRepeats) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  auto copy = restored(snapshots({g}), 2);
  EXPECT_EQ(copy->groupOfPeerForTest("1"), g);
  // The founding registration replayed (its offset was not committed): a repeat, not a new group.
  Effects e = copy->handle(Registration{.partition = 0, .peer = PeerBuilder("1").change("c1").steps(2).build()},
                           clock_.now());
  EXPECT_EQ(copy->groupCount(), 1u);
  ASSERT_EQ(eventKinds(e).size(), 1u);
  EXPECT_EQ(eventKinds(e)[0], "input_ignored");
  // A new peer of the family still finds the restored group.
  Effects joined = copy->handle(
      Registration{.partition = 0, .peer = PeerBuilder("3").change("c3").on({"c1"}).steps(2).build()},
      clock_.now());
  EXPECT_EQ(copy->groupOfPeerForTest("3"), g);
}

TEST_F(Restore, DroppingAPartitionForgetsOnlyItsGroups) {
  auto g0 = join(PeerBuilder("1").change("c1").cache("x").steps(2));
  Effects e = run(Registration{.partition = 1, .peer = PeerBuilder("2").change("c2").cache("y").steps(2).build()});
  const std::string g1 = core_.groupOfPeerForTest("2");
  ASSERT_FALSE(g1.empty());
  EXPECT_EQ(core_.partitionOf(g1), 1);
  // The shell releases what it holds for the dropped groups (their td.assign producers).
  EXPECT_EQ(core_.dropPartition(0), std::vector<std::string>{g0});
  EXPECT_EQ(core_.findGroupForTest(g0), nullptr);
  EXPECT_EQ(core_.groupOfPeerForTest("1"), "");
  EXPECT_NE(core_.findGroupForTest(g1), nullptr);
  EXPECT_EQ(deadLetters(finish(g0, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED)), 1);
}

TEST_F(Restore, GroupsTakeTheirPartitionsEpoch) {
  core_.setPartitionEpoch(3, 9);
  Effects e = run(Registration{.partition = 3, .peer = PeerBuilder("1").change("c1").steps(1).build()});
  auto a = assignments(e);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].coordinator_epoch(), 9u);
  for (const auto& ev : events(e)) EXPECT_EQ(ev.coordinator_epoch(), 9u);
}

TEST_F(Restore, ForgottenGroupsStayRefusedAcrossARestoreThenTheirRecordsExpire) {
  const auto founder = PeerBuilder("1").change("c1").steps(1);
  auto g = join(founder);
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_TRUE(core_.takeForgotten().empty());
  clock_.advance(core_.config().finished_group_retention + seconds(1));
  run(Tick{});
  auto forgotten = core_.takeForgotten();
  ASSERT_EQ(forgotten.size(), 1u);
  EXPECT_EQ(forgotten[0].group_id(), g);
  EXPECT_EQ(forgotten[0].partition(), 0);
  ASSERT_EQ(forgotten[0].peer_ids_size(), 1);
  EXPECT_EQ(forgotten[0].session_ids(0), sessionOf("1"));
  EXPECT_EQ(forgotten[0].coordinator_epoch(), 1u);
  EXPECT_TRUE(core_.takeForgotten().empty());

  // A new owner that restores the forgotten-group record refuses the founding registration
  // replayed (instead of founding the group again under an id td.events already numbered).
  Core next(CoreConfig{.coordinator_id = "next"});
  Effects restored = next.restore(0, 2, {}, forgotten, clock_.now());
  EXPECT_TRUE(restored.empty());
  Effects replay = next.handle(Registration{.partition = 0, .peer = founder.build()}, clock_.now());
  EXPECT_EQ(deadLetters(replay), 1);
  EXPECT_EQ(next.groupCount(), 0u);
  // When the refusal ends, the record is reported for deletion, once.
  EXPECT_TRUE(next.takeExpired().empty());
  clock_.advance(core_.config().finished_group_retention * 7);
  (void)next.handle(Tick{}, clock_.now());
  auto expired = next.takeExpired();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].first, g);
  EXPECT_TRUE(next.takeExpired().empty());
  // A record whose refusal ended while nobody owned the partition is deleted at once.
  Core late(CoreConfig{.coordinator_id = "late"});
  (void)late.restore(0, 3, {}, forgotten, clock_.now());
  EXPECT_EQ(late.takeExpired().size(), 1u);
}

}  // namespace
}  // namespace td::coordinator::testing
