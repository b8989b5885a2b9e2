// Duration-aware scheduling (issue 7): the moving average and the duration table, and the
// order in which a group hands out its queued steps: longest expected first, steps without
// history first of all, schema order for ties and when nothing is known; retries, backoff and
// restored groups keep working under it.
#include <gtest/gtest.h>

#include <map>

#include "coordinator/step_stats.h"
#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using td::v1::StepOutcome;

td::v1::StepStats statsOf(const std::string& schema, const std::string& step,
                          std::uint64_t expected_ms, std::uint64_t samples = 1,
                          std::int64_t updated_at_ms = 1000) {
  td::v1::StepStats s;
  s.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  s.set_schema_name(schema);
  s.set_step_id(step);
  s.set_expected_ms(expected_ms);
  s.set_samples(samples);
  s.set_last_ms(expected_ms);
  s.set_updated_at_ms(updated_at_ms);
  return s;
}

TEST(Ewma, FirstSampleIsTheEstimateThenEachSampleWeighsThirtyPercent) {
  EXPECT_EQ(ewmaUpdate(0, 0, 120), 120u);
  EXPECT_EQ(ewmaUpdate(100, 1, 200), 130u);   // 0.3 * 200 + 0.7 * 100
  EXPECT_EQ(ewmaUpdate(130, 2, 200), 151u);   // 151.0
  EXPECT_EQ(ewmaUpdate(10, 5, 11), 10u);      // 10.3 rounds down
  EXPECT_EQ(ewmaUpdate(10, 5, 12), 11u);      // 10.6 rounds up
  EXPECT_EQ(ewmaUpdate(500, 9, 0), 350u);
}

TEST(DurationTable, RecordsFoldSamplesAndNewerRecordsWinAMerge) {
  DurationTable table;
  EXPECT_FALSE(table.expectedMs("s", "a"));
  auto first = table.record("s", "a", 100, 5000);
  EXPECT_EQ(first.expected_ms(), 100u);
  EXPECT_EQ(first.samples(), 1u);
  EXPECT_EQ(first.last_ms(), 100u);
  auto second = table.record("s", "a", 200, 5000);   // same wall ms: still strictly later
  EXPECT_EQ(second.expected_ms(), 130u);
  EXPECT_EQ(second.samples(), 2u);
  EXPECT_GT(second.updated_at_ms(), first.updated_at_ms());
  EXPECT_EQ(*table.expectedMs("s", "a"), 130u);

  EXPECT_FALSE(table.merge(first)) << "re-reading an older record of our own changes nothing";
  EXPECT_FALSE(table.merge(second));
  EXPECT_EQ(*table.expectedMs("s", "a"), 130u);
  EXPECT_TRUE(table.merge(statsOf("s", "a", 400, 3, 1)));   // more samples: another writer's
  EXPECT_EQ(*table.expectedMs("s", "a"), 400u);
  EXPECT_TRUE(table.merge(statsOf("s", "b", 7)));
  EXPECT_EQ(table.size(), 2u);
  EXPECT_FALSE(table.expectedMs("other-schema", "a"));
}

TEST(StepStatsRecord, KeyAndValidation) {
  EXPECT_EQ(stepStatsKey("build", "ui"), "build/ui");
  EXPECT_EQ(validateStepStats("s/a", statsOf("s", "a", 1)), "");
  EXPECT_NE(validateStepStats("s/b", statsOf("s", "a", 1)), "");
  EXPECT_NE(validateStepStats("/a", statsOf("", "a", 1)), "");
  EXPECT_NE(validateStepStats("s/", statsOf("s", "", 1)), "");
  EXPECT_NE(validateStepStats("s/a b", statsOf("s", "a b", 1)), "");
  EXPECT_NE(validateStepStats("s/a", statsOf("s", "a", 1, /*samples=*/0)), "");
}

class SchedulingOrder : public CoreTest {
 protected:
  void learn(const std::string& step, std::uint64_t ms, const std::string& schema = "s") {
    ASSERT_EQ(core_.learnStepStats(stepStatsKey(schema, step), statsOf(schema, step, ms)), "");
  }
  Effects succeed(const std::string& group, const std::string& peer, const std::string& step,
                  std::uint32_t attempt, std::uint64_t duration_ms) {
    td::v1::StepFinished f =
        finishedRecord(group, peer, step, attempt, td::v1::STEP_OUTCOME_SUCCEEDED);
    f.set_duration_ms(duration_ms);
    return run(f);
  }
  // With one single-slot peer, the order the group hands its steps out (each finished at once).
  std::vector<std::string> soloOrder(const std::string& group, const std::string& peer,
                                     std::size_t steps) {
    std::vector<std::string> order;
    for (std::size_t i = 0; i < steps; ++i) {
      std::string step;
      for (const auto& a : assignments(all_, peer)) {
        if (a.group_id() == group) step = a.step_id();
      }
      EXPECT_FALSE(step.empty());
      order.push_back(step);
      succeed(group, peer, step, 1, 0);
    }
    return order;
  }
  static std::vector<td::v1::StepStats> statsEffects(const Effects& effects) {
    std::vector<td::v1::StepStats> out;
    for (const auto& e : effects) {
      if (const auto* s = std::get_if<PublishStepStats>(&e)) {
        EXPECT_EQ(s->key, stepStatsKey(s->stats.schema_name(), s->stats.step_id()));
        out.push_back(s->stats);
      }
    }
    return out;
  }
  static PeerBuilder fiveSteps(const std::string& id) {
    return PeerBuilder(id).change("c-" + id).step("a").step("b").step("c").step("d").step("e");
  }
};

TEST_F(SchedulingOrder, LongestExpectedFirstAndStepsWithoutHistoryBeforeThem) {
  learn("a", 10);
  learn("b", 50);
  learn("c", 30);
  learn("e", 50);   // ties with b: schema order
  // d has no history: it could be the longest, so it goes first.
  auto g = join(fiveSteps("1"));
  EXPECT_EQ(soloOrder(g, "1", 5), (std::vector<std::string>{"d", "b", "e", "c", "a"}));
}

TEST_F(SchedulingOrder, WithoutHistoryTheOrderIsTheSchemasAndHistoryOfOtherSchemasIsIgnored) {
  learn("e", 500, "another-schema");
  auto g = join(fiveSteps("1"));
  EXPECT_EQ(soloOrder(g, "1", 5), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
}

TEST_F(SchedulingOrder, SucceededRunsAreRecordedAndOrderTheNextGroupOfTheSchema) {
  auto g1 = join(fiveSteps("1"));
  const std::map<std::string, std::uint64_t> took = {
      {"a", 20}, {"b", 200}, {"c", 90}, {"d", 150}, {"e", 5}};
  std::vector<td::v1::StepStats> recorded;
  for (const char* step : {"a", "b", "c", "d", "e"}) {
    auto stats = statsEffects(succeed(g1, "1", step, 1, took.at(step)));
    ASSERT_EQ(stats.size(), 1u) << step;
    EXPECT_EQ(stats[0].schema_name(), "s");
    EXPECT_EQ(stats[0].step_id(), step);
    EXPECT_EQ(stats[0].expected_ms(), took.at(step));
    EXPECT_EQ(stats[0].samples(), 1u);
    EXPECT_EQ(stats[0].coordinator_id(), "test");
  }
  ASSERT_EQ(core_.findGroupForTest(g1)->status(), td::v1::GROUP_STATUS_COMPLETED);
  // A failed attempt records nothing.
  auto g2 = join(fiveSteps("2"));
  ASSERT_NE(g1, g2);
  EXPECT_EQ(assignments(all_, "2").back().step_id(), "b");
  EXPECT_TRUE(statsEffects(finish(g2, "2", "b", 1, td::v1::STEP_OUTCOME_FAILED)).empty());
  // The failed b waits for its backoff (only peer 2 is there); d, the next longest, runs.
  EXPECT_EQ(core_.findGroupForTest(g2)->queuedOrderForTest(),
            (std::vector<std::string>{"b", "c", "a", "e"}));
  EXPECT_EQ(assignments(all_, "2").back().step_id(), "d");
}

TEST_F(SchedulingOrder, RetriesKeepTheirBackoffAndPreferAnotherPeer) {
  learn("long", 100);
  learn("mid", 50);
  learn("short", 10);
  auto peer = [](const std::string& id) {
    return PeerBuilder(id).change("c1").step("short").step("mid").step("long");
  };
  auto g = join(peer("1"));   // long
  join(peer("2"));            // mid
  EXPECT_EQ(assignments(all_, "1").back().step_id(), "long");
  EXPECT_EQ(assignments(all_, "2").back().step_id(), "mid");
  // long fails on 1: queued with backoff; 1 may not retry it yet, so 1 takes short instead.
  Effects e = finish(g, "1", "long", 1, td::v1::STEP_OUTCOME_FAILED);
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "short");
  EXPECT_EQ(assignments(e)[0].peer_id(), "1");
  // 2 finishes mid: it has not failed long, so it takes the retry at once.
  e = succeed(g, "2", "mid", 1, 50);
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "long");
  EXPECT_EQ(assignments(e)[0].attempt(), 2u);
  EXPECT_EQ(assignments(e)[0].peer_id(), "2");
}

TEST_F(SchedulingOrder, AStepInBackoffOnItsOnlyPeerWaitsThenRuns) {
  learn("long", 100);
  learn("short", 10);
  auto g = join(PeerBuilder("1").change("c1").step("short").step("long"));
  EXPECT_EQ(assignments(all_, "1").back().step_id(), "long");
  Effects e = finish(g, "1", "long", 1, td::v1::STEP_OUTCOME_FAILED);
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "short");   // long is in backoff
  const auto backoff = [&] {
    for (const auto& ev : events(e)) {
      if (ev.has_step_queued()) return ev.step_queued().backoff_ms();
    }
    return std::uint64_t{0};
  }();
  ASSERT_GT(backoff, 0u);
  e = succeed(g, "1", "short", 1, 10);
  EXPECT_TRUE(assignments(e).empty()) << "the backoff has not passed";
  clock_.advance(Millis(backoff));
  e = run(Tick{});
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "long");
  EXPECT_EQ(assignments(e)[0].attempt(), 2u);
}

TEST_F(SchedulingOrder, ARestoredGroupOrdersItsQueueTheSameWay) {
  learn("a", 10);
  learn("b", 40);
  learn("c", 30);
  learn("e", 20);
  auto g = join(fiveSteps("1"));   // runs d (no history)
  const auto original = core_.findGroupForTest(g)->queuedOrderForTest();
  ASSERT_EQ(original, (std::vector<std::string>{"b", "c", "e", "a"}));
  auto snapshot = core_.snapshot(g, clock_.now());
  ASSERT_TRUE(snapshot);

  Core next(CoreConfig{.coordinator_id = "next"});
  for (const char* step : {"a", "b", "c", "e"}) {
    ASSERT_EQ(next.learnStepStats(stepStatsKey("s", step),
                                  statsOf("s", step, *core_.durations().expectedMs("s", step))),
              "");
  }
  (void)next.restore(0, 2, {*snapshot}, {}, clock_.now());
  ASSERT_NE(next.findGroupForTest(g), nullptr);
  EXPECT_EQ(next.findGroupForTest(g)->queuedOrderForTest(), original);

  // And it hands them out in that order: d finishes, then each next step.
  Effects e = next.handle(Tick{}, clock_.now());
  td::v1::StepFinished f;
  f.set_group_id(g);
  f.set_peer_id("1");
  f.set_session_id(sessionOf("1"));
  f.set_outcome(td::v1::STEP_OUTCOME_SUCCEEDED);
  f.set_attempt(1);
  std::vector<std::string> order;
  std::string running = "d";
  for (int i = 0; i < 4; ++i) {
    f.set_step_id(running);
    e = next.handle(f, clock_.now());
    auto a = assignments(e, "1");
    ASSERT_EQ(a.size(), 1u);
    running = a[0].step_id();
    order.push_back(running);
  }
  EXPECT_EQ(order, original);
}

TEST_F(SchedulingOrder, TurnedOffItKeepsSchemaOrderAndRecordsNothing) {
  Core off(CoreConfig{.coordinator_id = "off", .step_stats = false});
  EXPECT_EQ(off.learnStepStats("s/e", statsOf("s", "e", 900)), "");
  Effects e = off.handle(Registration{.peer = fiveSteps("1").build()}, clock_.now());
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "a");
  td::v1::StepFinished f;
  f.set_group_id(assignments(e)[0].group_id());
  f.set_peer_id("1");
  f.set_session_id(sessionOf("1"));
  f.set_step_id("a");
  f.set_attempt(1);
  f.set_outcome(td::v1::STEP_OUTCOME_SUCCEEDED);
  f.set_duration_ms(77);
  e = off.handle(f, clock_.now());
  EXPECT_TRUE(statsEffects(e).empty());
  ASSERT_EQ(assignments(e).size(), 1u);
  EXPECT_EQ(assignments(e)[0].step_id(), "b");
  EXPECT_EQ(off.durations().size(), 0u);
}

TEST_F(SchedulingOrder, InvalidHistoryIsRefusedWithAReason) {
  EXPECT_NE(core_.learnStepStats("s/x", statsOf("s", "a", 5)), "");
  EXPECT_NE(core_.learnStepStats("s/a", statsOf("s", "a", 5, 0)), "");
  EXPECT_EQ(core_.durations().size(), 0u);
}

// Peers that take steps ahead (slots > 1, td-worker --prefetch): steps queued while several
// peers have free slots spread over them, fewest assigned first, instead of filling the first
// peer's slots.
TEST_F(CoreTest, StepsTakenAheadSpreadOverThePeersFewestAssignedFirst) {
  auto peer = [](const std::string& id) {
    return PeerBuilder(id).change("c1").slots(2).step("g").step("a", 3, {"g"}).step(
        "b", 3, {"g"}).step("c", 3, {"g"}).step("d", 3, {"g"});
  };
  const auto g = join(peer("p1"));   // takes g; the others wait for it
  ASSERT_EQ(join(peer("p2")), g);
  const auto effects = finish(g, "p1", "g", 1, StepOutcome::STEP_OUTCOME_SUCCEEDED);
  std::map<std::string, std::vector<std::string>> taken;
  for (const auto& a : assignments(effects)) taken[a.peer_id()].push_back(a.step_id());
  EXPECT_EQ(taken["p1"], (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(taken["p2"], (std::vector<std::string>{"b", "d"}));
}

// With durations known, a step queued while several peers have a free slot goes to the one
// expected to be free first.
TEST_F(CoreTest, AStepTakenAheadGoesToThePeerExpectedToBeFreeFirst) {
  for (const auto& [step, ms] : std::vector<std::pair<std::string, std::uint64_t>>{
           {"a", 900}, {"b", 100}, {"e", 60}, {"c", 10}, {"d", 50}}) {
    ASSERT_EQ(core_.learnStepStats(stepStatsKey("s", step), statsOf("s", step, ms)), "");
  }
  auto peer = [](const std::string& id) {
    return PeerBuilder(id).change("c1").slots(2).step("a").step("b").step("e").step("c").step(
        "d", 3, {"c"});
  };
  const auto g = join(peer("p1"));   // takes a (900 ms) and b (100 ms)
  ASSERT_EQ(join(peer("p2")), g);    // takes e (60 ms) and c (10 ms); d waits for c
  std::map<std::string, std::vector<std::string>> taken;
  for (const auto& a : assignments(all_)) taken[a.peer_id()].push_back(a.step_id());
  ASSERT_EQ(taken["p1"], (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(taken["p2"], (std::vector<std::string>{"e", "c"}));
  finish(g, "p1", "b", 1, StepOutcome::STEP_OUTCOME_SUCCEEDED);   // p1: a left, 900 ms
  // c done: d is queued, p1 and p2 have one step each; p2's (e, 60 ms) ends first.
  const auto effects = finish(g, "p2", "c", 1, StepOutcome::STEP_OUTCOME_SUCCEEDED);
  const auto next = assignments(effects);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].step_id(), "d");
  EXPECT_EQ(next[0].peer_id(), "p2");
}

}  // namespace
}  // namespace td::coordinator::testing
