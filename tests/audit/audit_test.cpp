// td_audit on hand-made event streams: a valid stream passes, each violation kind is found
// with a clear message, and arrival order within a group does not matter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "audit/render.h"
#include "audit/time_arg.h"
#include "protocol/protocol.h"

namespace td::audit {
namespace {

using ::testing::HasSubstr;
using td::v1::Event;

// Builds one group's stream with consecutive sequences and timestamps 1000, 1010, ...
class Stream {
 public:
  explicit Stream(std::string group) : group_(std::move(group)) {}

  Event& next() {
    Event& e = events_.emplace_back();
    e.set_group_id(group_);
    e.set_sequence(++seq_);
    e.set_timestamp_ms(1000 + 10 * static_cast<std::int64_t>(seq_));
    e.set_coordinator_id(coordinator_);
    e.set_coordinator_epoch(epoch_);
    return e;
  }
  // Later events come from this coordinator (a new owner after a fail-over).
  Stream& owner(std::uint64_t epoch, std::string coordinator) {
    epoch_ = epoch;
    coordinator_ = std::move(coordinator);
    return *this;
  }
  // The new owner's group_restored, restored from a snapshot of `previous_epoch`.
  Stream& restored(std::uint64_t previous_epoch, const std::string& previous,
                   std::uint32_t republished) {
    auto& r = *next().mutable_group_restored();
    r.set_partition(3);
    r.set_previous_epoch(previous_epoch);
    r.set_previous_coordinator_id(previous);
    r.set_republished(republished);
    return *this;
  }
  // Steps given as (id, max_attempts); `retry` applies to all when set.
  Stream& created(std::vector<std::pair<std::string, std::uint32_t>> steps,
                  const td::v1::RetryPolicy* retry = nullptr) {
    auto& c = *next().mutable_group_created();
    c.set_schema_name("s");
    c.set_founding_peer_id("w1");
    for (const auto& [id, max] : steps) {
      auto& s = *c.add_steps();
      s.set_id(id);
      s.set_max_attempts(max);
      if (retry) *s.mutable_retry() = *retry;
    }
    return *this;
  }
  Stream& joined(const std::string& peer) {
    next().mutable_peer_joined()->set_peer_id(peer);
    return *this;
  }
  Stream& lostPeer(const std::string& peer) {
    auto& g = *next().mutable_peer_lost();
    g.set_peer_id(peer);
    g.set_reason("lease expired");
    return *this;
  }
  Stream& queued(const std::string& step, std::uint32_t attempt, const std::string& reason,
                 std::uint64_t backoff = 0) {
    auto& q = *next().mutable_step_queued();
    q.set_step_id(step);
    q.set_next_attempt(attempt);
    q.set_reason(reason);
    q.set_backoff_ms(backoff);
    return *this;
  }
  Stream& assigned(const std::string& step, std::uint32_t attempt, const std::string& peer,
                   const std::string& session = "") {
    auto& a = *next().mutable_step_assigned();
    a.set_group_id(group_);
    a.set_step_id(step);
    a.set_attempt(attempt);
    a.set_peer_id(peer);
    a.set_session_id(session);
    return *this;
  }
  // `worker_ms`: StepStarted.started_at_ms, the worker's clock (0: unset).
  // A speculative attempt racing attempt `races` (docs/architecture.md, "Speculative attempts").
  Stream& speculative(const std::string& step, std::uint32_t attempt, const std::string& peer,
                      std::uint32_t races) {
    assigned(step, attempt, peer);
    auto& a = *events_.back().mutable_step_assigned();
    a.set_speculative(true);
    a.set_races_attempt(races);
    a.set_expected_ms(1000);
    return *this;
  }
  Stream& started(const std::string& step, std::uint32_t attempt, const std::string& peer,
                  std::int64_t worker_ms = 0, const std::string& session = "") {
    auto& a = *next().mutable_step_started();
    a.set_step_id(step);
    a.set_attempt(attempt);
    a.set_peer_id(peer);
    a.set_session_id(session);
    a.set_started_at_ms(worker_ms);
    return *this;
  }
  // The coordinator refused a worker's late StepFinished (its attempt was re-queued since).
  Stream& lateFinish(const std::string& step, std::uint32_t attempt, const std::string& peer,
                     td::v1::StepOutcome outcome, std::uint64_t duration_ms,
                     const std::string& session = "") {
    auto& i = *next().mutable_input_ignored();
    i.set_reason("stale_attempt");
    i.set_peer_id(peer);
    i.set_step_id(step);
    i.set_attempt(attempt);
    auto& f = *i.mutable_finished();
    f.set_peer_id(peer);
    f.set_session_id(session);
    f.set_step_id(step);
    f.set_attempt(attempt);
    f.set_outcome(outcome);
    f.set_duration_ms(duration_ms);
    return *this;
  }
  // Assigned, then lost with its peer before it started.
  Stream& lostUnstarted(const std::string& step, std::uint32_t attempt, const std::string& peer) {
    return assigned(step, attempt, peer).finished(step, attempt, peer, td::v1::STEP_OUTCOME_LOST);
  }
  Stream& finished(const std::string& step, std::uint32_t attempt, const std::string& peer,
                   td::v1::StepOutcome outcome, int exit_code = 0) {
    auto& f = *next().mutable_step_finished();
    f.set_step_id(step);
    f.set_attempt(attempt);
    f.set_peer_id(peer);
    f.set_outcome(outcome);
    f.set_exit_code(exit_code);
    f.set_duration_ms(5);
    return *this;
  }
  // assigned + started + finished
  Stream& ran(const std::string& step, std::uint32_t attempt, const std::string& peer,
              td::v1::StepOutcome outcome, int exit_code = 0) {
    return assigned(step, attempt, peer).started(step, attempt, peer).finished(step, attempt, peer, outcome, exit_code);
  }
  Stream& aborted(const std::string& step, std::uint32_t attempt, const std::string& peer,
                  const std::string& reason = "group failed") {
    auto& a = *next().mutable_step_aborted();
    a.set_step_id(step);
    a.set_attempt(attempt);
    a.set_peer_id(peer);
    a.set_reason(reason);
    return *this;
  }
  Stream& leftPeer(const std::string& peer, const std::string& reason) {
    auto& g = *next().mutable_peer_left();
    g.set_peer_id(peer);
    g.set_reason(reason);
    return *this;
  }
  Stream& completed() {
    next().mutable_group_completed()->set_group_id(group_);
    return *this;
  }
  Stream& failed(const std::string& step) {
    auto& f = *next().mutable_group_failed();
    f.set_failed_step_id(step);
    f.set_reason("step failed");
    return *this;
  }
  Stream& abandoned(const std::string& last_peer, std::uint32_t succeeded,
                    std::uint32_t not_run) {
    auto& a = *next().mutable_group_abandoned();
    a.set_group_id(group_);
    a.set_memberless_for_ms(300000);
    a.set_last_peer_id(last_peer);
    a.set_steps_succeeded(succeeded);
    a.set_steps_not_run(not_run);
    return *this;
  }
  Stream& cancelled(const std::string& by, const std::string& reason) {
    auto& c = *next().mutable_group_cancelled();
    c.set_group_id(group_);
    c.set_requested_by(by);
    c.set_reason(reason);
    c.set_request_id("r1");
    return *this;
  }
  Stream& universeStarted(const std::string& peer, const std::string& session = "") {
    auto& u = *next().mutable_universe_started();
    u.set_peer_id(peer);
    u.set_session_id(session);
    u.set_started_at_ms(1000 + 10 * static_cast<std::int64_t>(seq_));
    return *this;
  }
  Stream& universeFinished(const std::string& peer, td::v1::StepOutcome outcome,
                           int exit_code = 0, const std::string& session = "") {
    auto& u = *next().mutable_universe_finished();
    u.set_peer_id(peer);
    u.set_session_id(session);
    u.set_outcome(outcome);
    u.set_exit_code(exit_code);
    u.set_duration_ms(7);
    return *this;
  }
  std::vector<Event>& events() { return events_; }

 private:
  std::string group_;
  std::uint64_t seq_ = 0;
  std::uint64_t epoch_ = 1;
  std::string coordinator_ = "c1";
  std::vector<Event> events_;
};

constexpr auto kOk = td::v1::STEP_OUTCOME_SUCCEEDED;
constexpr auto kFailed = td::v1::STEP_OUTCOME_FAILED;
constexpr auto kLost = td::v1::STEP_OUTCOME_LOST;

// Two peers; "build" fails once then succeeds elsewhere; "test" is lost with its peer, then
// succeeds on the other one.
Stream validStream() {
  Stream s("g1");
  s.created({{"build", 3}, {"test", 3}})
      .joined("w1")
      .queued("build", 1, "initial")
      .queued("test", 1, "initial")
      .joined("w2")
      .ran("build", 1, "w1", kFailed, 1)
      .queued("build", 2, "retry after failed (exit 1)", 1000)
      .assigned("test", 1, "w1")
      .started("test", 1, "w1", 1100)
      .ran("build", 2, "w2", kOk)
      .lostPeer("w1")
      .finished("test", 1, "w1", kLost)
      .queued("test", 2, "retry after lost: lease expired")
      .assigned("test", 2, "w2")
      .started("test", 2, "w2", 1300)
      // w1 was frozen, not dead: its late report says test 1 ended (1100 + 150) before
      // attempt 2 started (1300), so the two never ran at once.
      .lateFinish("test", 1, "w1", td::v1::STEP_OUTCOME_SUCCEEDED, 150)
      .finished("test", 2, "w2", kOk)
      .completed();
  return s;
}

std::vector<Violation> only(const std::vector<Violation>& vs, ViolationKind kind) {
  std::vector<Violation> out;
  for (const auto& v : vs) {
    if (v.kind == kind) out.push_back(v);
  }
  return out;
}

TEST(Audit, ValidStreamPasses) {
  auto s = validStream();
  EXPECT_TRUE(verify(s.events()).empty());
}

TEST(Audit, TimelineHasPeersAttemptsAndRetryReasons) {
  auto s = validStream();
  Replay replay;
  for (const auto& e : s.events()) replay.add(e);
  auto t = replay.timeline("g1");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->status, td::v1::GROUP_STATUS_COMPLETED);
  EXPECT_EQ(t->events, s.events().size());
  ASSERT_EQ(t->peers.size(), 2u);
  EXPECT_TRUE(t->peers[0].lost);
  EXPECT_EQ(t->peers[0].gone_reason, "lease expired");
  const StepTimeline* build = t->step("build");
  ASSERT_NE(build, nullptr);
  ASSERT_EQ(build->attempts.size(), 2u);
  EXPECT_EQ(build->attempts[0].peer_id, "w1");
  EXPECT_EQ(build->attempts[0].outcome, kFailed);
  EXPECT_EQ(build->attempts[0].exit_code, 1);
  EXPECT_EQ(build->attempts[1].queued_reason, "retry after failed (exit 1)");
  EXPECT_EQ(build->attempts[1].backoff_ms, 1000u);
  EXPECT_EQ(build->failures, 1u);
  EXPECT_EQ(build->retries, 1u);
  const StepTimeline* test = t->step("test");
  ASSERT_NE(test, nullptr);
  EXPECT_EQ(test->lost, 1u);
  EXPECT_EQ(test->failures, 0u) << "lost attempts are not counted by default";
  EXPECT_EQ(test->attempts[1].peer_id, "w2");
  EXPECT_THAT(timelineText(*t), HasSubstr("LOST"));
  EXPECT_THAT(timelineJson(*t), HasSubstr(R"("lost":1)"));
  EXPECT_THAT(htmlReport({*t}, {}), HasSubstr("<svg"));
}

TEST(Audit, OutOfOrderArrivalWithinAGroupIsFine) {
  auto s = validStream();
  auto shuffled = s.events();
  std::mt19937 rng(42);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    EXPECT_TRUE(verify(shuffled).empty());
    Replay replay;
    for (const auto& e : shuffled) replay.add(e);
    auto t = replay.timeline("g1");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->status, td::v1::GROUP_STATUS_COMPLETED);
    EXPECT_EQ(t->step("build")->attempts[1].outcome, kOk);
  }
}

TEST(Audit, InterleavedGroupsAreKeptApart) {
  auto a = validStream();
  Stream b("g2");
  b.created({{"x", 1}}).joined("w9").queued("x", 1, "initial").ran("x", 1, "w9", kOk).completed();
  std::vector<Event> all;
  for (std::size_t i = 0; i < std::max(a.events().size(), b.events().size()); ++i) {
    if (i < a.events().size()) all.push_back(a.events()[i]);
    if (i < b.events().size()) all.push_back(b.events()[i]);
  }
  EXPECT_TRUE(verify(all).empty());
}

TEST(Audit, SequenceGapNamesTheGroupAndTheMissingNumbers) {
  auto s = validStream();
  auto& ev = s.events();
  ev.erase(ev.begin() + 4, ev.begin() + 6);   // sequences 5 and 6
  ev.erase(ev.begin() + 6);                   // sequence 9 (index 6 after the first erase)
  auto v = verify(ev);
  auto gaps = only(v, ViolationKind::kSequenceGap);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].group, "g1");
  EXPECT_THAT(gaps[0].message, HasSubstr("missing: 5-6, 9"));
}

TEST(Audit, DuplicateSequenceWithDifferentContentIsAViolation) {
  auto s = validStream();
  Event other = s.events()[3];
  other.mutable_step_queued()->set_reason("something else");
  s.events().push_back(other);
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kDuplicateSequence);
  EXPECT_THAT(v[0].message, HasSubstr("duplicate sequence numbers with different content: 4"));
  Replay replay;
  for (const auto& e : s.events()) replay.add(e);
  EXPECT_EQ(replay.timeline("g1")->redelivered, 0u);
  // The first record of a sequence is the one applied.
  EXPECT_EQ(replay.timeline("g1")->step("test")->attempts[0].queued_reason, "initial");
}

TEST(Audit, ARepeatDifferingOnlyInItsEnvelopeIsStillADifferentRecord) {
  // Another coordinator's record for the same sequence (a zombie, or a replay that founded the
  // group again) is not a redelivery even when its kind and body are the same.
  auto s = validStream();
  Event other = s.events()[3];
  other.set_coordinator_id("c2");
  s.events().push_back(other);
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kDuplicateSequence);
}

TEST(Audit, AByteIdenticalRepeatIsARedeliveryNotAViolation) {
  auto s = validStream();
  const std::size_t distinct = s.events().size();
  s.events().push_back(s.events()[3]);
  s.events().push_back(s.events()[3]);
  s.events().insert(s.events().begin(), s.events().back());   // before the first, too
  s.events().push_back(s.events()[distinct - 1]);              // group_completed again
  EXPECT_TRUE(verify(s.events()).empty());
  Replay replay;
  for (const auto& e : s.events()) replay.add(e);
  auto t = replay.timeline("g1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->redelivered, 4u);
  EXPECT_TRUE(t->duplicates.empty());
  EXPECT_EQ(t->events, distinct);
  EXPECT_EQ(t->status, td::v1::GROUP_STATUS_COMPLETED);
  EXPECT_THAT(timelineSummaryJson(*t), HasSubstr(R"("redelivered":4)"));
  EXPECT_THAT(timelineText(*t), HasSubstr("redelivered=4"));
}

// Epoch 1 (c1) ran the group until it crashed after writing sequence 9 but before sequences
// 10-11 of its last snapshot's outbox reached everyone; epoch 2 (c2) re-published them and
// restored the group.
Stream failedOverStream(std::vector<std::size_t>* republished = nullptr) {
  Stream s("g1");
  s.created({{"build", 3}, {"test", 3}})
      .joined("w1")
      .queued("build", 1, "initial")
      .queued("test", 1, "initial")
      .joined("w2")
      .assigned("build", 1, "w1")
      .assigned("test", 1, "w2")
      .started("build", 1, "w1")
      .started("test", 1, "w2")
      .finished("build", 1, "w1", kOk)
      .finished("test", 1, "w2", kOk);
  if (republished) *republished = {9, 10};   // indexes of sequences 10 and 11
  s.owner(2, "c2").restored(1, "c1", 2).completed();
  return s;
}

TEST(Audit, GroupRestoredAppearsInTheTimelineAndRepublishedEventsAreRedeliveries) {
  std::vector<std::size_t> outbox;
  auto s = failedOverStream(&outbox);
  auto events = s.events();
  // The outbox arrives again (same bytes) after the restore.
  for (std::size_t i : outbox) events.push_back(s.events()[i]);
  std::mt19937 rng(7);
  std::shuffle(events.begin(), events.end(), rng);
  EXPECT_TRUE(verify(events).empty());

  Replay replay;
  for (const auto& e : events) replay.add(e);
  auto t = replay.timeline("g1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, td::v1::GROUP_STATUS_COMPLETED);
  EXPECT_EQ(t->redelivered, 2u);
  EXPECT_EQ(t->events, s.events().size());
  ASSERT_EQ(t->restores.size(), 1u);
  const Restore& r = t->restores[0];
  EXPECT_EQ(r.sequence, 12u);
  EXPECT_EQ(r.partition, 3);
  EXPECT_EQ(r.previous_epoch, 1u);
  EXPECT_EQ(r.previous_coordinator, "c1");
  EXPECT_EQ(r.epoch, 2u);
  EXPECT_EQ(r.coordinator, "c2");
  EXPECT_EQ(r.republished, 2u);
  EXPECT_EQ(t->epochs, (std::vector<std::uint64_t>{1, 2}));

  EXPECT_THAT(timelineText(*t), HasSubstr("restores=1 epochs=1,2"));
  EXPECT_THAT(timelineText(*t), HasSubstr("#12 +110ms partition=3 epoch 1 (c1) -> 2 (c2), republished 2"));
  EXPECT_THAT(timelineSummaryJson(*t), HasSubstr(R"("restores":1,"epochs":[1,2])"));
  EXPECT_THAT(timelineJson(*t),
              HasSubstr(R"("restores":[{"sequence":12,"at_ms":110,"partition":3,"previous_epoch":1,)"
                        R"("previous_coordinator":"c1","epoch":2,"coordinator":"c2","republished":2}])"));
  EXPECT_THAT(htmlReport({*t}, {}), HasSubstr("1 restore(s), 2 redelivered event(s)"));
}

TEST(Audit, AZombiesEventsFromTheRestoreOnAreFencedNotViolations) {
  // The old owner (epoch 1) stalled past its session timeout, and finished its cycle after the
  // new owner (epoch 2) restored the group at sequence 12: its records repeat sequences 12 and
  // 13 with other content (found by the simulation, seeds 2265 and 3628).
  auto s = failedOverStream();
  auto events = s.events();
  ASSERT_TRUE(events[11].has_group_restored());
  for (std::uint64_t seq : {12u, 13u}) {
    Event zombie;
    zombie.set_group_id("g1");
    zombie.set_sequence(seq);
    zombie.set_timestamp_ms(5000);
    zombie.set_coordinator_id("c1");
    zombie.set_coordinator_epoch(1);
    zombie.mutable_peer_joined()->set_peer_id("w9");
    events.push_back(zombie);
  }
  EXPECT_TRUE(verify(events).empty());
  Replay replay;
  for (const auto& e : events) replay.add(e);
  auto t = replay.timeline("g1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->fenced, 2u);
  EXPECT_EQ(t->events, s.events().size());
  EXPECT_THAT(timelineText(*t), HasSubstr("fenced=2"));
  EXPECT_THAT(timelineSummaryJson(*t), HasSubstr(R"("fenced":2)"));

  // The same records from the new owner's own epoch are a real conflict.
  for (auto& e : events) {
    if (e.coordinator_epoch() == 1 && e.sequence() >= 12) e.set_coordinator_epoch(2);
  }
  auto v = verify(events);
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0].kind, ViolationKind::kDuplicateSequence);
}

TEST(Audit, GroupRestoredHasADescription) {
  auto s = failedOverStream();
  const Event& restored = s.events()[11];
  ASSERT_TRUE(restored.has_group_restored());
  EXPECT_EQ(protocol::describe(restored),
            "group_restored partition=3 previous_epoch=1 previous=c1 republished=2");
  EXPECT_THAT(eventJson(restored), HasSubstr(R"("kind":"group_restored")"));
}

TEST(Audit, ASequenceGapAcrossARestoreIsStillAViolation) {
  // The new owner must continue the sequence of the snapshot it restored; a restore that skips
  // numbers (or the loss of the predecessor's last events) is a gap like any other.
  auto s = failedOverStream();
  auto& ev = s.events();
  ASSERT_TRUE(ev[11].has_group_restored());
  for (std::size_t i = 11; i < ev.size(); ++i) ev[i].set_sequence(ev[i].sequence() + 1);
  auto v = verify(ev);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kSequenceGap);
  EXPECT_THAT(v[0].message, HasSubstr("missing: 12 (highest seen 14)"));
}

TEST(Audit, StepSucceedingTwice) {
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").joined("w2").queued("x", 1, "initial")
      .ran("x", 1, "w1", kOk).ran("x", 2, "w2", kOk).completed();
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kMultipleSuccesses);
  EXPECT_EQ(v[0].step, "x");
  EXPECT_THAT(v[0].message, HasSubstr("step x: succeeded 2 times"));
}

TEST(Audit, MoreFailuresThanMaxAttempts) {
  Stream s("g");
  s.created({{"x", 2}}).joined("w1").queued("x", 1, "initial")
      .ran("x", 1, "w1", kFailed, 1).queued("x", 2, "retry").ran("x", 2, "w1", td::v1::STEP_OUTCOME_TIMED_OUT)
      .queued("x", 3, "retry").ran("x", 3, "w1", kFailed, 2).failed("x");
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kTooManyFailures);
  EXPECT_THAT(v[0].message, HasSubstr("3 counted failures, max_attempts is 2"));
}

TEST(Audit, LostAttemptsCountTowardMaxAttemptsOnlyWhenTheRetryPolicySaysSo) {
  td::v1::RetryPolicy retry;
  retry.set_retry_on_lost(true);
  retry.set_count_lost_attempts(true);
  Stream s("g");
  s.created({{"x", 2}}, &retry).joined("w1").queued("x", 1, "initial")
      .lostUnstarted("x", 1, "w1").lostUnstarted("x", 2, "w1").lostUnstarted("x", 3, "w1")
      .ran("x", 4, "w1", kOk).completed();
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kTooManyFailures);
  EXPECT_THAT(v[0].message, HasSubstr("3 counted failures, max_attempts is 2"));
  // The same stream with the default policy (lost not counted, at most 3) is fine.
  Stream d("g");
  d.created({{"x", 2}}).joined("w1").queued("x", 1, "initial")
      .lostUnstarted("x", 1, "w1").lostUnstarted("x", 2, "w1").lostUnstarted("x", 3, "w1")
      .ran("x", 4, "w1", kOk).completed();
  EXPECT_TRUE(verify(d.events()).empty());
}

TEST(Audit, MoreLostThanMaxLostAttemptsOfTheDefaultPolicy) {
  Stream s("g");
  s.created({{"x", 5}}).joined("w1").queued("x", 1, "initial");
  for (std::uint32_t a = 1; a <= 4; ++a) s.lostUnstarted("x", a, "w1");
  s.failed("x");
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kTooManyLost);
  EXPECT_THAT(v[0].message, HasSubstr("lost 4 times, max_lost_attempts is 3"));
}

TEST(Audit, CompletedWhileAStepNeverSucceeded) {
  Stream s("g");
  s.created({{"x", 3}, {"y", 3}}).joined("w1").queued("x", 1, "initial")
      .ran("x", 1, "w1", kOk).completed();
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kCompletedWithoutSuccess);
  EXPECT_EQ(v[0].step, "y");
  EXPECT_THAT(v[0].message, HasSubstr("group_completed but step y never succeeded"));
}

TEST(Audit, UnansweredAssignmentInAnEndedGroup) {
  Stream s("g");
  s.created({{"x", 1}, {"y", 1}, {"z", 1}}).joined("w1").joined("w2").joined("w3")
      .ran("x", 1, "w1", kFailed, 1)
      .assigned("y", 1, "w2").started("y", 1, "w2")
      .assigned("z", 1, "w3").aborted("z", 1, "w3")
      .failed("x");
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kUnansweredAssignment);
  EXPECT_EQ(v[0].step, "y");
  EXPECT_THAT(v[0].message, HasSubstr("step y attempt 1 assigned to w2 never finished or aborted"));
}

// Every member left; nobody came back within the timeout: the group ends as abandoned with
// steps never run, and an attempt that was running when its peer left ended as lost.
TEST(Audit, AnAbandonedGroupIsEndedWithStepsNotRunAndNoViolation) {
  Stream s("g");
  s.created({{"x", 3}, {"y", 3}, {"z", 3}}).joined("w1").joined("w2")
      .queued("x", 1, "initial").queued("y", 1, "initial").queued("z", 1, "initial")
      .ran("x", 1, "w1", kOk)
      .assigned("y", 1, "w2").started("y", 1, "w2")
      .leftPeer("w1", "left: SIGTERM")
      .leftPeer("w2", "left: SIGTERM").finished("y", 1, "w2", kLost)
      .queued("y", 2, "retry after lost: left: SIGTERM")
      .abandoned("w2", 1, 2);
  EXPECT_TRUE(verify(s.events()).empty());
  Replay replay;
  for (const auto& e : s.events()) replay.add(e);
  auto t = replay.timeline("g");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->status, td::v1::GROUP_STATUS_ABANDONED);
  EXPECT_EQ(t->ended_ms, s.events().back().timestamp_ms());
  EXPECT_THAT(timelineText(*t), HasSubstr("status=abandoned"));
  EXPECT_THAT(timelineText(*t),
              HasSubstr("abandoned: no member for 300000 ms (last: w2); 1 step(s) succeeded, 2 not run"));
  EXPECT_THAT(htmlReport({*t}, {}), HasSubstr("Abandoned: no member for 300000 ms"));
  EXPECT_EQ(protocol::describe(s.events().back()),
            "group_abandoned memberless_ms=300000 succeeded=1 not_run=2 last_peer=w2");
}

TEST(Audit, AnAbandonedGroupStillAnswersForItsAssignments) {
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").queued("x", 1, "initial").assigned("x", 1, "w1")
      .abandoned("w1", 0, 1);
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kUnansweredAssignment);
  EXPECT_THAT(v[0].message, HasSubstr("(group abandoned)"));
}

TEST(Audit, CancelledGroupWithStepsNotRunIsClean) {
  Stream s("g");
  s.created({{"x", 1}, {"y", 1}, {"z", 1}}).joined("w1").joined("w2")
      .queued("x", 1, "initial").queued("y", 1, "initial").queued("z", 1, "initial")
      .ran("x", 1, "w1", kOk)
      .assigned("y", 1, "w2").started("y", 1, "w2")
      .aborted("y", 1, "w2", "group cancelled")
      .cancelled("alice@ops", "runaway")
      .finished("y", 1, "w2", td::v1::STEP_OUTCOME_ABORTED, -1);
  EXPECT_TRUE(verify(s.events()).empty());
  Replay replay;
  for (const auto& e : s.events()) replay.add(e);
  auto t = replay.timeline("g");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, td::v1::GROUP_STATUS_CANCELLED);
  const std::string text = timelineText(*t);
  EXPECT_THAT(text, HasSubstr("status=cancelled"));
  EXPECT_THAT(text, HasSubstr("cancelled by alice@ops: runaway"));
}

TEST(Audit, CancelledGroupWithAnAttemptNeitherAbortedNorAnsweredIsAViolation) {
  Stream s("g");
  s.created({{"x", 1}}).joined("w1").queued("x", 1, "initial")
      .assigned("x", 1, "w1").started("x", 1, "w1")
      .cancelled("alice@ops", "runaway");
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kUnansweredAssignment);
}

TEST(Audit, UnansweredAssignmentIsFineWhileTheGroupRuns) {
  Stream s("g");
  s.created({{"x", 1}}).joined("w1").queued("x", 1, "initial").assigned("x", 1, "w1");
  EXPECT_TRUE(verify(s.events()).empty());
}

// overlapping_attempts (docs/audit.md): two attempts of one step that may have run at once.

// w1 runs x (attempt 1, its clock says it started at 1100) and is lost; attempt 2 goes to w2,
// whose clock says it started at 1300. What happens to attempt 1 afterwards is up to the test.
Stream lostThenRerun() {
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").joined("w2").queued("x", 1, "initial")
      .assigned("x", 1, "w1", "s1").started("x", 1, "w1", 1100, "s1")
      .lostPeer("w1").finished("x", 1, "w1", kLost).queued("x", 2, "retry after lost")
      .assigned("x", 2, "w2", "t1").started("x", 2, "w2", 1300, "t1");
  return s;
}

// The same peer id registered again while its first process ran x (below).
Stream replacedWhileRunning(bool abort_sent);

TEST(AuditOverlap, ALostPeersAttemptNeverReportedEndedEndedWithItsWorkerButIsCounted) {
  // w1 went silent past its lease and never came back (killed: its step supervisor killed
  // the step with it). Nothing shows when the step ended: not a violation, an unconfirmed end.
  auto s = lostThenRerun();
  s.finished("x", 2, "w2", kOk).completed();
  EXPECT_TRUE(verify(s.events()).empty());
  Replay replay;
  for (auto& e : s.events()) replay.add(e);
  ASSERT_EQ(replay.timelines().size(), 1u);
  EXPECT_EQ(unconfirmedEnds(replay.timelines()[0]), 1u);
}

TEST(AuditOverlap, ALateReportThatItEndedBeforeTheNextStartedClearsIt) {
  auto s = lostThenRerun();
  s.lateFinish("x", 1, "w1", kOk, 199, "s1")   // 1100 + 199 < 1300
      .finished("x", 2, "w2", kOk).completed();
  EXPECT_TRUE(verify(s.events()).empty());
}

TEST(AuditOverlap, ALateReportThatItEndedAfterTheNextStartedIsAnOverlap) {
  auto s = lostThenRerun();
  s.lateFinish("x", 1, "w1", kOk, 201, "s1")   // 1100 + 201 > 1300
      .finished("x", 2, "w2", kOk).completed();
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kOverlappingAttempts);
  EXPECT_THAT(v[0].message, HasSubstr("ended at +"));
  EXPECT_THAT(v[0].message, HasSubstr("reported late"));
}

TEST(AuditOverlap, AReportFromAnotherSessionOrPeerConfirmsNothing) {
  // A replaced session's attempt must be confirmed ended by that session's own report.
  auto s = replacedWhileRunning(/*abort_sent=*/true);
  s.lateFinish("x", 1, "w1", td::v1::STEP_OUTCOME_ABORTED, 10, "s0")
      .lateFinish("x", 1, "w3", td::v1::STEP_OUTCOME_ABORTED, 10)
      .finished("x", 2, "w1", kOk).completed();
  EXPECT_EQ(only(verify(s.events()), ViolationKind::kOverlappingAttempts).size(), 1u);
  // Nor does it confirm a lost peer's attempt: still an unconfirmed end.
  auto lost = lostThenRerun();
  lost.lateFinish("x", 1, "w1", kOk, 10, "s0").finished("x", 2, "w2", kOk).completed();
  Replay replay;
  for (auto& e : lost.events()) replay.add(e);
  EXPECT_EQ(unconfirmedEnds(replay.timelines().at(0)), 1u);
}

TEST(AuditOverlap, AnAttemptLostBeforeItStartedNeverRan) {
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").joined("w2").queued("x", 1, "initial")
      .lostUnstarted("x", 1, "w1").queued("x", 2, "retry after lost").ran("x", 2, "w2", kOk)
      .completed();
  EXPECT_TRUE(verify(s.events()).empty());
}

TEST(AuditOverlap, AFinishReportedBeforeTheNextAttemptWasAssignedSettlesItWhateverTheClocks) {
  // w1's clock runs far ahead of w2's: causality (its finish came before attempt 2 was
  // handed out) decides, not the clocks.
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").joined("w2").queued("x", 1, "initial")
      .assigned("x", 1, "w1").started("x", 1, "w1", 900000).finished("x", 1, "w1", kFailed, 1)
      .queued("x", 2, "retry").assigned("x", 2, "w2").started("x", 2, "w2", 1000)
      .finished("x", 2, "w2", kOk).completed();
  EXPECT_TRUE(verify(s.events()).empty());
}

// x runs on w1 (attempt 1) far longer than expected; a speculative attempt 2 races it on w2.
Stream raced(std::uint32_t max_attempts = 3) {
  Stream s("g");
  s.created({{"x", max_attempts}}).joined("w1").joined("w2").queued("x", 1, "initial")
      .assigned("x", 1, "w1").started("x", 1, "w1", 1100)
      .speculative("x", 2, "w2", 1).started("x", 2, "w2", 4100);
  return s;
}

TEST(AuditSpeculation, ASpeculativeAttemptMayRunAlongsideTheAttemptItRaces) {
  // w2 wins; w1's attempt is aborted and its late report shows it ran on meanwhile.
  auto s = raced();
  s.finished("x", 2, "w2", kOk).aborted("x", 1, "w1", "attempt 2 on w2 succeeded first")
      .completed().lateFinish("x", 1, "w1", td::v1::STEP_OUTCOME_ABORTED, 3500);
  EXPECT_TRUE(verify(s.events()).empty());
  Replay replay;
  for (auto& e : s.events()) replay.add(e);
  const auto timelines = replay.timelines();
  ASSERT_EQ(timelines.size(), 1u);
  const auto& t = timelines[0];
  const auto* x = t.step("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->speculative, 1u);
  EXPECT_TRUE(x->attempts.at(1).speculative);
  EXPECT_EQ(x->attempts.at(1).races, 1u);
  // show and the report's chart draw both, the speculative one marked.
  EXPECT_THAT(timelineText(t), HasSubstr("-> succeeded exit=0 took 5ms [speculative, races #1]"));
  const std::string html = htmlReport({t}, {});
  EXPECT_THAT(html, HasSubstr(R"(class="speculative"><title>x #2 on w2: succeeded, speculative, races #1)"));
  EXPECT_THAT(html, HasSubstr("<title>x #1 on w1: abort_sent"));
}

TEST(AuditSpeculation, TheSameOverlapWithoutTheSpeculativeMarkIsAViolation) {
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").joined("w2").queued("x", 1, "initial")
      .assigned("x", 1, "w1").started("x", 1, "w1", 1100)
      .assigned("x", 2, "w2").started("x", 2, "w2", 4100)
      .finished("x", 2, "w2", kOk).aborted("x", 1, "w1", "attempt 2 on w2 succeeded first")
      .completed().lateFinish("x", 1, "w1", td::v1::STEP_OUTCOME_ABORTED, 3500);
  EXPECT_EQ(only(verify(s.events()), ViolationKind::kOverlappingAttempts).size(), 1u);
}

TEST(AuditSpeculation, ASpeculativeAttemptMustNotOverlapAnyOtherAttempt) {
  // Attempt 3 races attempt 2, yet attempt 1 (lost, then reported ended late) ran on after
  // attempt 3 started: that pair is not a race.
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").joined("w2").joined("w3").queued("x", 1, "initial")
      .assigned("x", 1, "w1").started("x", 1, "w1", 1100)
      .leftPeer("w1", "replaced").finished("x", 1, "w1", kLost).queued("x", 2, "retry after lost")
      .assigned("x", 2, "w2").started("x", 2, "w2", 1200)
      .speculative("x", 3, "w3", 2).started("x", 3, "w3", 1300)
      .lateFinish("x", 1, "w1", kOk, 5000)
      .finished("x", 3, "w3", kOk).aborted("x", 2, "w2", "attempt 3 on w3 succeeded first")
      .completed();
  auto v = only(verify(s.events()), ViolationKind::kOverlappingAttempts);
  ASSERT_EQ(v.size(), 2u);   // 1 with 2, and 1 with 3; never 2 with 3
  for (const auto& violation : v) EXPECT_THAT(violation.message, HasSubstr("attempts 1 and"));
}

TEST(AuditSpeculation, AFailureWhileTheRaceRunsOnMayGoOneOverMaxAttempts) {
  // max_attempts 1: the speculative attempt fails while the original runs, then the original
  // fails too and the group fails. Two counted failures, one of them during the race.
  auto s = raced(1);
  s.finished("x", 2, "w2", kFailed, 1).finished("x", 1, "w1", kFailed, 1).failed("x");
  EXPECT_TRUE(verify(s.events()).empty());
  // Without a race the same two failures are one too many.
  Stream plain("g");
  plain.created({{"x", 1}}).joined("w1").joined("w2").queued("x", 1, "initial")
      .ran("x", 1, "w1", kFailed, 1).queued("x", 2, "retry").ran("x", 2, "w2", kFailed, 1)
      .failed("x");
  EXPECT_EQ(only(verify(plain.events()), ViolationKind::kTooManyFailures).size(), 1u);
}

TEST(AuditSpeculation, OnlyFailuresDuringTheRaceAreAllowedOver) {
  // The race ended (both failed), then two more failures: 4 counted, max 2, one allowed over.
  auto s = raced(2);
  s.finished("x", 2, "w2", kFailed, 1).finished("x", 1, "w1", kFailed, 1)
      .queued("x", 3, "retry").ran("x", 3, "w1", kFailed, 1)
      .queued("x", 4, "retry").ran("x", 4, "w2", kFailed, 1).failed("x");
  auto v = only(verify(s.events()), ViolationKind::kTooManyFailures);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_THAT(v[0].message, HasSubstr("4 counted failures, max_attempts is 2 (+1"));
}

// The same peer id registered again while its first process ran x (a CI job retried).
Stream replacedWhileRunning(bool abort_sent) {
  Stream s("g");
  s.created({{"x", 3}}).joined("w1").queued("x", 1, "initial")
      .assigned("x", 1, "w1", "s1").started("x", 1, "w1", 1100, "s1")
      .leftPeer("w1", "replaced by a new session");
  if (abort_sent) s.aborted("x", 1, "w1", "replaced by a new session of peer w1 (session s2)");
  s.finished("x", 1, "w1", kLost).queued("x", 2, "retry after lost").joined("w1")
      .assigned("x", 2, "w1", "s2").started("x", 2, "w1", 1300, "s2");
  return s;
}

TEST(AuditOverlap, AReplacedSessionsAttemptAbortedBeforeTheNextOneAndConfirmedIsFine) {
  // The old process read the abort and killed x a little after attempt 2 started: an abort
  // sent before attempt 2 was handed out, and answered, bounds the overlap to its delivery.
  auto s = replacedWhileRunning(/*abort_sent=*/true);
  s.lateFinish("x", 1, "w1", td::v1::STEP_OUTCOME_ABORTED, 250, "s1")
      .finished("x", 2, "w1", kOk).completed();
  EXPECT_TRUE(verify(s.events()).empty());
}

TEST(AuditOverlap, AReplacedSessionNeverToldRunsItsStepToTheEndAlongsideTheNextAttempt) {
  // Before the fix: no abort, and the old process finished x long after attempt 2 started.
  auto s = replacedWhileRunning(/*abort_sent=*/false);
  s.lateFinish("x", 1, "w1", kOk, 30000, "s1").finished("x", 2, "w1", kOk).completed();
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kOverlappingAttempts);
}

TEST(AuditOverlap, AnAbortNeverAnsweredDoesNotClearIt) {
  auto s = replacedWhileRunning(/*abort_sent=*/true);
  s.finished("x", 2, "w1", kOk).completed();
  auto v = verify(s.events());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_THAT(v[0].message, HasSubstr("never reported ended"));
}

TEST(AuditOverlap, AttemptsOfOtherStepsNeverOverlapEachOther) {
  Stream s("g");
  s.created({{"x", 3}, {"y", 3}}).joined("w1").joined("w2")
      .assigned("x", 1, "w1").started("x", 1, "w1", 1000)
      .assigned("y", 1, "w2").started("y", 1, "w2", 1001)
      .finished("x", 1, "w1", kOk).finished("y", 1, "w2", kOk).completed();
  EXPECT_TRUE(verify(s.events()).empty());
}

// ---- Universe runs (docs/audit.md, "Universe runs") ------------------------------------------

// One step run by w1; then both peers run the universe, w2's fails with exit 2.
Stream universeStream() {
  Stream s("g1");
  s.created({{"build", 1}})
      .joined("w1")
      .joined("w2")
      .ran("build", 1, "w1", kOk)
      .completed()
      .universeStarted("w1")
      .universeStarted("w2")
      .universeFinished("w1", kOk)
      .universeFinished("w2", kFailed, 2);
  return s;
}

TEST(AuditUniverse, EachPeersRunAfterCompletionIsCleanAndShown) {
  auto s = universeStream();
  EXPECT_TRUE(verify(s.events()).empty());
  auto t = buildTimeline("g1", s.events());
  ASSERT_EQ(t.universes.size(), 2u);
  EXPECT_EQ(t.universes[1].peer_id, "w2");
  EXPECT_EQ(t.universes[1].outcome, kFailed);
  EXPECT_EQ(t.universes[1].exit_code, 2);
  EXPECT_EQ(t.universes[1].started_ms, 1090);
  EXPECT_EQ(t.universes[1].finished_ms, 1110);
  EXPECT_EQ(unfinishedUniverses(t), 0u);

  const std::string text = timelineText(t);
  EXPECT_THAT(text, HasSubstr("universe:\n"
                              "  w1               started +70ms finished +90ms -> succeeded "
                              "(exit 0) took 7ms\n"
                              "  w2               started +80ms finished +100ms -> failed (exit 2) "
                              "took 7ms\n"));
  EXPECT_THAT(timelineSummaryJson(t),
              HasSubstr(R"("universe_runs":2,"universes_succeeded":1,"universes_unfinished":0)"));
  EXPECT_THAT(timelineJson(t), HasSubstr(R"("universes":[{"peer":"w1","session":"",)"
                                         R"("started_ms":70,"finished_ms":90,"outcome":"succeeded")"));
  const std::string html = htmlReport({t}, {});
  EXPECT_THAT(html, HasSubstr(R"(class="universe"><title>universe on w2: failed (20 ms)</title>)"));
  EXPECT_THAT(html, HasSubstr("<tr><td>w2</td><td>+80 ms</td><td>7 ms</td><td>failed</td>"
                              "<td>exit 2</td></tr>"));
}

TEST(AuditUniverse, AStartNeverFinishedIsCountedAndAFinishWithoutAStartIsFine) {
  Stream s("g1");
  s.created({{"build", 1}}).joined("w1").joined("w2").ran("build", 1, "w1", kOk).completed()
      .universeStarted("w1")                // its worker died while it ran
      .universeFinished("w2", kOk);         // its start report was lost
  EXPECT_TRUE(verify(s.events()).empty());
  auto t = buildTimeline("g1", s.events());
  EXPECT_EQ(unfinishedUniverses(t), 1u);
  EXPECT_THAT(timelineText(t), HasSubstr("w1               started +70ms -> running (no finish reported)"));
  EXPECT_THAT(timelineText(t), HasSubstr("w2               start not reported finished +80ms -> succeeded"));
  EXPECT_THAT(htmlReport({t}, {}), HasSubstr("<td>not reported</td>"));
}

TEST(AuditUniverse, RunsTheCoordinatorShouldHaveRefusedAreViolations) {
  struct Case {
    const char* name;
    std::function<void(Stream&)> events;   // after group_created and w1, w2 joining
    ViolationKind kind;
  };
  const std::vector<Case> cases = {
      {"before the group completed",
       [](Stream& s) { s.universeStarted("w1").ran("build", 1, "w1", kOk).completed(); },
       ViolationKind::kUniverseBeforeCompletion},
      {"in a failed group",
       [](Stream& s) { s.ran("build", 1, "w1", kFailed).failed("build").universeFinished("w1", kOk); },
       ViolationKind::kUniverseBeforeCompletion},
      {"from a peer that never joined",
       [](Stream& s) { s.ran("build", 1, "w1", kOk).completed().universeFinished("w9", kOk); },
       ViolationKind::kUniverseFromNonMember},
      {"from a peer that left",
       [](Stream& s) {
         s.ran("build", 1, "w1", kOk).completed().leftPeer("w2", "left").universeStarted("w2");
       },
       ViolationKind::kUniverseFromNonMember},
      {"finished twice",
       [](Stream& s) {
         s.ran("build", 1, "w1", kOk).completed().universeFinished("w1", kOk).universeFinished("w1", kOk);
       },
       ViolationKind::kDuplicateUniverse},
      {"started twice",
       [](Stream& s) {
         s.ran("build", 1, "w1", kOk).completed().universeStarted("w2").universeStarted("w2");
       },
       ViolationKind::kDuplicateUniverse},
  };
  for (const auto& c : cases) {
    Stream s("g1");
    s.created({{"build", 1}}).joined("w1").joined("w2");
    c.events(s);
    const auto vs = verify(s.events());
    ASSERT_EQ(vs.size(), 1u) << c.name;
    EXPECT_EQ(vs[0].kind, c.kind) << c.name << ": " << vs[0].message;
    EXPECT_THAT(vs[0].message, HasSubstr("group g1: the universe run of w")) << c.name;
  }
}

TEST(AuditUniverse, UniverseEventsHaveDescriptions) {
  auto s = universeStream();
  EXPECT_EQ(protocol::describe(s.events()[7]), "universe_started peer=w1");
  EXPECT_EQ(protocol::describe(s.events()[10]),
            "universe_finished peer=w2 outcome=failed exit=2 ms=7");
}

// Every --json output parses, whatever bytes the events carry (invalid UTF-8, control
// characters, quotes), and keeps the text it can keep.
TEST(Audit, JsonOutputParsesWhateverTheEventsCarry) {
  const std::string odd = "q\"b\\s\x01\x7f t\xc3\xbcr \xff\xc3";
  Stream s("g1");
  s.created({{"build " + odd, 2}}).joined("w1").ran("build " + odd, 1, "w1", kFailed, 1);
  s.leftPeer("w1", "gone " + odd);
  Replay replay;
  for (const auto& e : s.events()) replay.add(e);
  auto t = replay.timeline("g1");
  ASSERT_TRUE(t.has_value());
  const auto violations = verify(replay);
  const std::vector<std::string> outputs = {
      timelineJson(*t), timelineSummaryJson(*t), eventJson(s.events().back()),
      verifyJson(VerifyTotals{.records = 5, .events = 5}, {*t}, violations),
      reportWrittenJson("out " + odd + ".html", 1, violations.size()), jsonString(odd)};
  for (const auto& out : outputs) {
    EXPECT_NO_THROW({
      const auto parsed = nlohmann::json::parse(out);
      EXPECT_FALSE(parsed.is_null());
    }) << out;
  }
  const auto timeline = nlohmann::json::parse(timelineJson(*t));
  EXPECT_EQ(timeline["steps"][0]["step"], "build q\"b\\s\x01\x7f t\xc3\xbcr \xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(timeline["peers"][0]["reason"].get<std::string>().substr(0, 5), "gone ");
  const auto verified = nlohmann::json::parse(verifyJson(VerifyTotals{.records = 5}, {*t}, {}));
  EXPECT_EQ(verified["records"], 5);
  EXPECT_EQ(verified["groups"], 1);
  EXPECT_EQ(verified["group_summaries"][0]["group"], "g1");
  EXPECT_EQ(verified["violation_count"], 0);
}

TEST(Audit, JsonEscapes) {
  EXPECT_EQ(jsonString("a\"b\\c\n\x01"), R"("a\"b\\c\n\u0001")");
}

TEST(TimeArg, UnixMillisecondsAndIso8601InUtc) {
  EXPECT_EQ(parseTimeArg("1700000000000"), 1700000000000);
  EXPECT_EQ(parseTimeArg("2023-11-14T22:13:20"), 1700000000000);
  EXPECT_EQ(parseTimeArg("2023-11-14T22:13:20Z"), 1700000000000);
  EXPECT_EQ(parseTimeArg("2023-11-14 22:13:20.123Z"), 1700000000123);
  EXPECT_EQ(parseTimeArg("2023-11-14T22:13:20.5"), 1700000000500);
  EXPECT_EQ(parseTimeArg("2023-11-14T22:13:20.123456"), 1700000000123);
  EXPECT_EQ(parseTimeArg("2023-11-14"), 1699920000000);
  EXPECT_EQ(parseTimeArg(""), std::nullopt);
  EXPECT_EQ(parseTimeArg("yesterday"), std::nullopt);
  EXPECT_EQ(parseTimeArg("2023-11-14T22:13:20+01:00"), std::nullopt);
  EXPECT_EQ(parseTimeArg("2023-11-14x"), std::nullopt);
  EXPECT_EQ(parseTimeArg("17000x"), std::nullopt);
}

}  // namespace
}  // namespace td::audit
