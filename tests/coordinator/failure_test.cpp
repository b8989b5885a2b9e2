// Failure handling in the core: leases, lost attempts, leaves, retry policy, on simulated time.
#include <gtest/gtest.h>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using Failure = CoreTest;
using std::chrono::seconds;
using td::v1::AssignmentRecord;

td::v1::PeerHeartbeat heartbeat(const std::string& group, const std::string& peer) {
  td::v1::PeerHeartbeat hb;
  hb.set_group_id(group);
  hb.set_peer_id(peer);
  hb.set_session_id(peer + "-s1");
  return hb;
}

// Advances time in heartbeat-sized steps; `alive` peers heartbeat at each step.
class Leases : public CoreTest {
 protected:
  Effects passTime(Millis total, const std::string& group, const std::vector<std::string>& alive) {
    Effects all;
    for (Millis t{0}; t < total; t += Millis(500)) {
      clock_.advance(Millis(500));
      for (const auto& peer : alive) run(heartbeat(group, peer));
      Effects e = run(Tick{});
      all.insert(all.end(), e.begin(), e.end());
    }
    return all;
  }
};

TEST_F(Leases, SilentPeerIsLostAndItsStepGoesToAnother) {
  // No speculative twin: a goes to 2 because 1 is lost (speculation_test.cpp has the race).
  auto g = join(PeerBuilder("1").change("c1").steps(2).noSpeculation());   // 1 runs a
  join(PeerBuilder("2").change("c1").steps(2).noSpeculation());            // 2 runs b
  finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);  // 2 idle
  Effects e = passTime(core_.config().lease + seconds(1), g, {"2"});
  auto kinds = eventKinds(e);
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "peer_lost"), kinds.end());
  auto a = assignments(e);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].peer_id(), "2");
  EXPECT_EQ(a[0].step_id(), "a");
  EXPECT_EQ(a[0].attempt(), 2u);
  bool lost_recorded = false;
  for (const auto& ev : events(e)) {
    lost_recorded |= ev.has_step_finished() && ev.step_finished().outcome() == td::v1::STEP_OUTCOME_LOST;
  }
  EXPECT_TRUE(lost_recorded);
}

TEST_F(Leases, LostIsDeclaredWithinTheLeasePlusOneTick) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  join(PeerBuilder("2").change("c1").steps(2));
  Millis lost_after{0};
  for (Millis t{0}; t < seconds(20) && lost_after == Millis(0); t += Millis(100)) {
    clock_.advance(Millis(100));
    run(heartbeat(g, "2"));
    for (const auto& ev : events(run(Tick{}))) {
      if (ev.has_peer_lost()) lost_after = t + Millis(100);
    }
  }
  EXPECT_GE(lost_after, core_.config().lease);
  EXPECT_LE(lost_after, core_.config().lease + Millis(100));
}

TEST_F(Leases, HeartbeatsKeepAPeerAlive) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  join(PeerBuilder("2").change("c1").steps(1));
  Effects e = passTime(seconds(30), g, {"1", "2"});
  for (const auto& ev : events(e)) EXPECT_FALSE(ev.has_peer_lost()) << protocol::describe(ev);
}

TEST_F(Leases, NoPeerIsLostWhileNoInputArrives) {
  // The broker was unreachable (or this coordinator just started): silence proves nothing.
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  clock_.advance(seconds(60));
  Effects e = run(Tick{});
  for (const auto& ev : events(e)) EXPECT_FALSE(ev.has_peer_lost());
  // Once input flows again, the peer gets a whole lease to be heard.
  Effects later = passTime(core_.config().lease - seconds(1), g, {});
  for (const auto& ev : events(later)) EXPECT_FALSE(ev.has_peer_lost());
}

// Partitions the core asked the shell to probe in `effects`.
std::vector<std::int32_t> probedPartitions(const Effects& effects) {
  std::vector<std::int32_t> out;
  for (const auto& e : effects) {
    if (const auto* b = std::get_if<ProbeFlow>(&e)) out.push_back(b->partition);
  }
  return out;
}

std::vector<std::string> lostPeers(const Effects& effects) {
  std::vector<std::string> out;
  for (const auto& e : effects) {
    const auto* p = std::get_if<PublishEvent>(&e);
    if (p != nullptr && p->event.has_peer_lost()) {
      out.push_back(p->event.group_id() + "/" + p->event.peer_lost().peer_id());
    }
  }
  return out;
}

TEST_F(Leases, NoPeerIsLostWhileItsOwnPartitionStallsThoughOthersFlow) {
  // One broker of three died and led partition 0 only: its peers' heartbeats wait in their
  // producers while partition 1 flows. Their silence proves nothing about them.
  auto g = join(PeerBuilder("1").change("c1").steps(2), 0);
  join(PeerBuilder("2").change("c1").steps(2), 0);
  auto h = join(PeerBuilder("x").change("c9").schema("other").steps(1), 1);
  ASSERT_NE(g, h);
  // Time passes in half seconds; x heartbeats throughout, and so does 1 once `g_flows`.
  auto pass = [&](Millis total, bool g_flows) {
    Effects all;
    for (Millis t{0}; t < total; t += Millis(500)) {
      clock_.advance(Millis(500));
      run(heartbeat(h, "x"));
      if (g_flows) run(heartbeat(g, "1"));
      append(all, run(Tick{}));
    }
    return all;
  };
  Effects stalled = pass(core_.config().lease * 3, false);
  EXPECT_TRUE(lostPeers(stalled).empty()) << ::testing::PrintToString(lostPeers(stalled));
  // Partition 0 is probed, a quarter of a lease apart; no answer comes (its leader is dead).
  const auto probed = probedPartitions(stalled);
  EXPECT_GE(probed.size(), 5u) << "probes a quarter of a lease (or a scan or two) apart";
  EXPECT_LE(probed.size(), 12u);
  for (std::int32_t p : probed) EXPECT_EQ(p, 0);
  // Partition 0 has a leader again: 1's heartbeats arrive, 2 stays silent (it died meanwhile)
  // and is lost one lease after the partition flows again, not before.
  Effects soon = pass(core_.config().lease - seconds(1), true);
  EXPECT_TRUE(lostPeers(soon).empty()) << ::testing::PrintToString(lostPeers(soon));
  Effects later = pass(seconds(2), true);
  EXPECT_EQ(lostPeers(later), std::vector<std::string>{g + "/2"});
}

TEST_F(Leases, ProbesShowAQuietPartitionFlowsSoPeersThatAllDiedAreLost) {
  // Every peer of the only group was killed: nothing arrives at all. The core asks the shell
  // to probe the partition; its answer (the leader's high watermark was handled) shows the
  // partition flows.
  auto g = join(PeerBuilder("1").change("c1").steps(2), 3);
  join(PeerBuilder("2").change("c1").steps(2), 3);
  std::vector<std::string> lost;
  Millis lost_at{0};
  int probes = 0;
  for (Millis t{0}; t < core_.config().lease * 4 && lost.size() < 2; t += Millis(100)) {
    clock_.advance(Millis(100));
    Effects e = run(Tick{});
    for (std::int32_t partition : probedPartitions(e)) {
      EXPECT_EQ(partition, 3);
      ++probes;
      run(PartitionCaughtUp{.partition = partition});
    }
    for (auto& peer : lostPeers(e)) {
      lost.push_back(peer);
      lost_at = t + Millis(100);
    }
  }
  std::sort(lost.begin(), lost.end());
  EXPECT_EQ(lost, (std::vector<std::string>{g + "/1", g + "/2"}));
  // The registrations flowed at 0; the answers (each a quarter of a lease into a silence) keep
  // the partition flowing, so the lease lapses as if the peers were merely silent.
  EXPECT_GE(lost_at, core_.config().lease);
  EXPECT_LE(lost_at, core_.config().lease + core_.config().lease / 8 + Millis(100));
  EXPECT_GE(probes, 3);
  // A memberless group has no lease to check: no more probes.
  clock_.advance(core_.config().lease);
  EXPECT_TRUE(probedPartitions(run(Tick{})).empty());
}

TEST_F(Leases, APartitionWhosePeersHeartbeatIsNotProbed) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  join(PeerBuilder("2").change("c1").steps(1));
  Effects e = passTime(core_.config().lease * 4, g, {"1", "2"});
  EXPECT_TRUE(probedPartitions(e).empty());
}

TEST_F(Leases, LatePeerMessagesAfterItWasLostAreIgnored) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  join(PeerBuilder("2").change("c1").steps(2));
  passTime(core_.config().lease + seconds(1), g, {"2"});   // 1 is lost while running a
  Effects late = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  ASSERT_FALSE(events(late).empty());
  EXPECT_TRUE(events(late)[0].has_input_ignored());
  Effects hb = run(heartbeat(g, "1"));
  ASSERT_FALSE(events(hb).empty());
  EXPECT_EQ(events(hb)[0].input_ignored().reason(), "not_a_member");
}

TEST_F(Failure, GracefulLeaveRequeuesAtOnceWithoutCountingAFailure) {
  auto g = join(PeerBuilder("1").change("c1").step("long", 1));
  join(PeerBuilder("2").change("c1").step("long", 1));
  // The worker aborts its step and then leaves (what td-worker does on SIGTERM).
  Effects aborted = finish(g, "1", "long", 1, td::v1::STEP_OUTCOME_ABORTED);
  auto a = assignments(aborted);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].peer_id(), "2");
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING)
      << "max_attempts 1, but an abort is not a failure";
  td::v1::PeerLeft left;
  left.set_peer_id("1");
  left.set_session_id(sessionOf("1"));
  left.set_group_id(g);
  left.set_reason("signal");
  EXPECT_EQ(eventKinds(run(left)), std::vector<std::string>{"peer_left"});
}

TEST_F(Failure, LostAttemptsAreCappedEvenWhenNotCounted) {
  auto g = join(PeerBuilder("p0").change("c1").step("killer", 2));
  for (int i = 1; i <= 3; ++i) {
    // Each new session replaces the last one mid-step: a lost attempt each time.
    run(Registration{.peer = PeerBuilder("p0").change("c1").step("killer", 2)
                                 .session("p0-s" + std::to_string(i + 1)).build()});
  }
  const Group* group = core_.findGroupForTest(g);
  EXPECT_EQ(group->status(), td::v1::GROUP_STATUS_FAILED) << "3 lost attempts = max_lost_attempts";
  int killer_runs = 0;
  for (const auto& a : assignments(all_)) killer_runs += a.group_id() == g ? 1 : 0;
  EXPECT_EQ(killer_runs, 3);
  EXPECT_NE(core_.groupOfPeerForTest("p0"), g) << "the last session starts a new group";
}

TEST_F(Failure, RetryOnDecidesWhatIsFinal) {
  auto peer = PeerBuilder("1").change("c1").step("compile", 5).build();
  auto* retry = peer.mutable_steps(0)->mutable_retry();
  *retry = protocol::defaultRetryPolicy();
  retry->set_retry_on_any_exit(false);
  retry->add_retry_on_exit_codes(137);
  peer.set_compatibility_key(protocol::compatibilityKey(peer));
  Effects joined = run(Registration{.peer = peer});
  auto g = std::get<PublishJoin>(joined.back()).record.joined().group_id();
  // Exit 137 (say, OOM-killed) is retried; exit 1 (a compile error) is final.
  td::v1::StepFinished f;
  f.set_group_id(g);
  f.set_peer_id("1");
  f.set_session_id(sessionOf("1"));
  f.set_step_id("compile");
  f.set_attempt(1);
  f.set_outcome(td::v1::STEP_OUTCOME_FAILED);
  f.set_exit_code(137);
  run(f);
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
  clock_.advance(seconds(2));
  run(Tick{});
  f.set_attempt(2);
  f.set_exit_code(1);
  std::string output;
  for (int line = 1; line <= 15; ++line) output += "line " + std::to_string(line) + "\n";
  f.set_output_tail(output);
  Effects e = run(f);
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_FAILED);
  EXPECT_TRUE(has(e, AssignmentRecord::kFailed));
  // Every peer's summary can say where and how it failed: the GroupFailed carries the attempt.
  int group_failed = 0;
  for (const auto& effect : e) {
    const auto* p = std::get_if<PublishAssignment>(&effect);
    if (p == nullptr || !p->record.has_failed()) continue;
    ++group_failed;
    const auto& failed = p->record.failed();
    EXPECT_EQ(failed.reason(), "step compile failed (exit 1) on 1; retry_on does not cover it");
    EXPECT_EQ(failed.failure().step_id(), "compile");
    EXPECT_EQ(failed.failure().peer_id(), "1");
    EXPECT_EQ(failed.failure().attempt(), 2u);
    EXPECT_EQ(failed.failure().exit_code(), 1);
    EXPECT_EQ(failed.failure().outcome(), td::v1::STEP_OUTCOME_FAILED);
    std::string last_ten;
    for (int line = 6; line <= 15; ++line) {
      last_ten += "line " + std::to_string(line) + (line < 15 ? "\n" : "");
    }
    EXPECT_EQ(failed.failure().output_tail(), last_ten);
  }
  EXPECT_EQ(group_failed, 1);
}

TEST_F(Failure, BackoffGrowsAndIsCapped) {
  auto peer = PeerBuilder("1").change("c1").step("flaky", 10).build();
  auto* retry = peer.mutable_steps(0)->mutable_retry();
  *retry = protocol::defaultRetryPolicy();
  retry->set_backoff_jitter(0);
  retry->set_backoff_initial_ms(100);
  retry->set_backoff_max_ms(350);
  peer.set_compatibility_key(protocol::compatibilityKey(peer));
  Effects joined = run(Registration{.peer = peer});
  auto g = std::get<PublishJoin>(joined.back()).record.joined().group_id();
  std::vector<std::uint64_t> waits;
  for (std::uint32_t attempt = 1; attempt <= 4; ++attempt) {
    Effects e = finish(g, "1", "flaky", attempt, td::v1::STEP_OUTCOME_FAILED);
    waits.push_back(events(e).back().step_queued().backoff_ms());
    clock_.advance(Millis(waits.back()));
    ASSERT_EQ(assignments(run(Tick{})).size(), 1u);
  }
  EXPECT_EQ(waits, (std::vector<std::uint64_t>{100, 200, 350, 350}));
}

TEST_F(Failure, AbsurdRetryPolicyIsDeadLettered) {
  auto peer = PeerBuilder("1").change("c1").step("x", 2).build();
  peer.mutable_steps(0)->mutable_retry()->set_backoff_multiplier(1e9);
  peer.mutable_steps(0)->mutable_retry()->set_max_lost_attempts(1);
  peer.set_compatibility_key(protocol::compatibilityKey(peer));
  EXPECT_EQ(deadLetters(run(Registration{.peer = peer})), 1);
}

}  // namespace
}  // namespace td::coordinator::testing
