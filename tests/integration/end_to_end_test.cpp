// End to end, with real processes: td-broker, td-coordinator and td-worker. Every check of
// "ran exactly once" counts files the steps themselves wrote, not the coordinator's word.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kRunTimeout = std::chrono::seconds(90);
const std::string kMark = "echo \"$TD_PEER_ID\" > \"$TD_TEST_MARKS/$TD_STEP_ID.$TD_ATTEMPT.$TD_GROUP_ID\"";

// A step that records its run (see Cluster::marksWritten), then runs `then`.
std::string markingStep(const std::string& id, const std::string& then = "sleep 0.2") {
  return "  - id: " + id + "\n    run: " + kMark + (then.empty() ? "" : "; " + then) + "\n";
}

std::string schemaOf(const std::string& name, const std::vector<std::string>& ids,
                     const std::string& then = "sleep 0.2") {
  std::string yaml = "name: " + name + "\ndefaults: {timeout: 1m, max_attempts: 3}\nsteps:\n";
  for (const auto& id : ids) yaml += markingStep(id, then);
  return yaml;
}

TEST(EndToEnd, ThreeWorkersShareSixStepsAndEachRunsOnce) {
  Cluster cluster;
  auto schema = cluster.writeSchema("six", schemaOf("six", {"s1", "s2", "s3", "s4", "s5", "s6"}));
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  auto& w2 = cluster.startWorker(schema, {"w2", "c2", {"c1"}});
  auto& w3 = cluster.startWorker(schema, {"w3", "c3", {"c1", "c2"}});
  for (auto* w : {&w1, &w2, &w3}) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();

  auto marks = cluster.marksWritten();
  EXPECT_EQ(marks.size(), 6u) << cluster.logs();
  std::set<std::string> steps, peers, groups;
  for (const auto& m : marks) {
    EXPECT_EQ(m.attempt, 1u) << m.step;
    steps.insert(m.step);
    peers.insert(m.peer);
    groups.insert(m.group);
  }
  EXPECT_EQ(steps.size(), 6u) << "every step ran exactly once";
  EXPECT_EQ(groups.size(), 1u) << "one group";
  EXPECT_GE(peers.size(), 2u) << "the work was shared";
  EXPECT_NE(w1.output().find("COMPLETED"), std::string::npos) << w1.output();
}

// td-worker --prefetch 1: each worker is assigned its next step while one runs (a StepAssigned
// to it before the StepFinished of its current step, on td.events), yet runs one step at a
// time (each step takes a per-peer lock directory and fails if another holds it) and every
// step exactly once.
TEST(EndToEnd, PrefetchingWorkersTakeTheNextStepAheadAndStillRunOneAtATime) {
  Cluster cluster;
  const std::string lock = "mkdir \"$TD_TEST_MARKS/lock-$TD_PEER_ID\" || exit 9; sleep 0.3; "
                           "rmdir \"$TD_TEST_MARKS/lock-$TD_PEER_ID\"";
  std::string yaml = "name: ahead\ndefaults: {timeout: 1m, max_attempts: 1}\nsteps:\n";
  for (int i = 1; i <= 8; ++i) yaml += markingStep("s" + std::to_string(i), lock);
  auto schema = cluster.writeSchema("ahead", yaml);
  std::filesystem::create_directories(cluster.marks());
  auto& w1 = cluster.startWorker(schema, {"w1", "c1", {}, {"--prefetch", "1"}});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1", {}, {"--prefetch", "1"}});
  for (auto* w : {&w1, &w2}) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();

  std::set<std::string> steps;
  for (const auto& m : cluster.marksWritten()) {
    EXPECT_EQ(m.attempt, 1u) << m.step;
    steps.insert(m.step);
  }
  EXPECT_EQ(steps.size(), 8u) << "every step ran exactly once";
  // Per peer: steps assigned and not yet finished, as td.events tells them.
  std::map<std::string, int> outstanding;
  int ahead = 0;
  for (const auto& e : cluster.events()) {
    if (e.has_step_assigned() && ++outstanding[e.step_assigned().peer_id()] > 1) ++ahead;
    if (e.has_step_finished()) --outstanding[e.step_finished().peer_id()];
  }
  EXPECT_GT(ahead, 0) << "no step was assigned ahead";
}

// --exactly-once runs the cycle as one Kafka transaction. The embedded broker accepts the
// calls without isolating anything (docs/architecture.md), so this shows only that the
// transactional path carries a group through; exactly-once itself needs Apache Kafka.
TEST(EndToEnd, ExactlyOnceModeCarriesAGroupThroughTransactions) {
  Cluster cluster(Cluster::Options{.coordinator_args = {"--exactly-once"}});
  auto schema = cluster.writeSchema("eos", schemaOf("eos", {"s1", "s2", "s3", "s4"}));
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1"});
  for (auto* w : {&w1, &w2}) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();
  std::set<std::string> steps;
  for (const auto& m : cluster.marksWritten()) {
    EXPECT_EQ(m.attempt, 1u) << m.step;
    steps.insert(m.step);
  }
  EXPECT_EQ(steps.size(), 4u);
  EXPECT_EQ(cluster.marksWritten().size(), 4u) << "every step ran exactly once";
  EXPECT_NE(cluster.logs().find("exactly-once: one transaction per cycle"), std::string::npos);
}

TEST(EndToEnd, StepFailingOnceSucceedsOnItsSecondAttempt) {
  Cluster cluster;
  std::string yaml = schemaOf("flaky", {"a", "b", "c"});
  yaml += markingStep("flaky", "test \"$TD_ATTEMPT\" -ge 2");
  auto schema = cluster.writeSchema("flaky", yaml);
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1"});
  auto& w3 = cluster.startWorker(schema, {"w3", "c1"});
  for (auto* w : {&w1, &w2, &w3}) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_EQ(cluster.runsOf("flaky"), 2) << cluster.logs();
  for (const char* step : {"a", "b", "c"}) EXPECT_EQ(cluster.runsOf(step), 1) << step;
}

TEST(EndToEnd, StepAlwaysFailingRunsMaxAttemptsThenEveryWorkerExitsOne) {
  Cluster cluster;
  std::string yaml = schemaOf("doomed", {"ok1", "ok2"});
  yaml += markingStep("bad", "echo attempt $TD_ATTEMPT says no; exit 3");
  auto schema = cluster.writeSchema("doomed", yaml);
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1"});
  auto& w3 = cluster.startWorker(schema, {"w3", "c1"});
  for (auto* w : {&w1, &w2, &w3}) ASSERT_EQ(w->wait(kRunTimeout), 1) << cluster.logs();
  EXPECT_EQ(cluster.runsOf("bad"), 3) << cluster.logs();
  // Every peer's summary says which step failed, where, how, and the end of its output,
  // whichever peer ran it; the reason names the step once.
  for (auto* w : {&w1, &w2, &w3}) {
    const std::string out = w->output();
    EXPECT_THAT(out, HasSubstr("FAILED in"));
    EXPECT_THAT(out, HasSubstr(": step bad failed 3 of 3 attempts (last: failed, exit 3, on "));
    EXPECT_THAT(out, ContainsRegex("failed: step bad, attempt 3 on w[123]"));
    EXPECT_THAT(out, HasSubstr("failed, exit 3; the last lines of its output:\n    | attempt 3 "
                               "says no\n"));
    EXPECT_THAT(out, Not(HasSubstr("step bad step bad")));
    EXPECT_THAT(out, Not(HasSubstr("unspecified")));
  }
}

// The Task Director README's own schema, as the seed wrote it: a JSON map from step id to a
// Bazel target, named by its file (adp_fastbuild.json), run through --task-command. Three
// workers build every target once between them (the command's own files).
TEST(EndToEnd, TheSeedsJsonTargetsSchemaBuildsEveryTargetOnce) {
  Cluster cluster;
  const auto schema = cluster.dir() / "adp_fastbuild.json";
  std::ofstream(schema) << R"({"1": "//application/adp/common/...", )"
                        << R"("2": "//application/adp/planning/...", )"
                        << R"("3": "//application/adp/perception/...", )"
                        << R"("4": "//application/adp/control/..."})";
  const std::vector<std::string> template_args = {
      "--task-command", kMark + "; echo {task} >> \"$TD_TEST_MARKS/../targets\"; sleep 0.2"};
  auto& w1 = cluster.startWorker(schema, {"w1", "c1", {}, template_args});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1", {}, template_args});
  auto& w3 = cluster.startWorker(schema, {"w3", "c1", {}, template_args});
  for (auto* w : {&w1, &w2, &w3}) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();
  for (const char* step : {"1", "2", "3", "4"}) EXPECT_EQ(cluster.runsOf(step), 1) << step;
  std::ifstream built(cluster.dir() / "targets");
  std::multiset<std::string> targets;
  for (std::string line; std::getline(built, line);) targets.insert(line);
  EXPECT_EQ(targets, (std::multiset<std::string>{
                         "//application/adp/common/...", "//application/adp/planning/...",
                         "//application/adp/perception/...", "//application/adp/control/..."}));
  EXPECT_THAT(w1.output(), HasSubstr("schema adp_fastbuild"));
}

// Each peer's universe run as td.events records it.
struct UniverseRun {
  int started = 0;                                // universe_started events
  std::vector<td::v1::UniverseFinished> finished; // universe_finished events
  std::string group;
};

// The universe runs on td.events, by peer, once `peers` peers have a universe_finished there
// (60 s at most): the coordinator records a report a moment after the worker exits.
std::map<std::string, UniverseRun> universeRuns(const Cluster& cluster, std::size_t peers) {
  std::map<std::string, UniverseRun> runs;
  waitUntil(
      [&] {
        runs.clear();
        std::size_t finished = 0;
        for (const auto& e : cluster.events()) {
          if (e.has_universe_started()) ++runs[e.universe_started().peer_id()].started;
          if (!e.has_universe_finished()) continue;
          auto& run = runs[e.universe_finished().peer_id()];
          run.finished.push_back(e.universe_finished());
          run.group = e.group_id();
          ++finished;
        }
        return finished >= peers;
      },
      std::chrono::seconds(60));
  return runs;
}

// The task-director listing's schema: the steps are the slow targets, built once by the
// group; then every peer builds the universe itself (mostly cache hits). A peer that joins
// after the group completed runs only the universe. A failing universe makes its peer exit 1.
TEST(EndToEnd, EveryPeerRunsTheUniverseOnceAfterItsGroupCompleted) {
  Cluster cluster;
  const auto schema = cluster.dir() / "my_universe.json";
  std::ofstream(schema) << R"({"universe": "//my_universe/...", )"
                        << R"("steps": {"1": "//my_universe/common/...", )"
                        << R"("2": "//my_universe/planning/...", "3": "//my_universe/ui/..."}})";
  // The universe appends its peer to a file; a step marks and records its target.
  const std::string command =
      "if [ \"$TD_UNIVERSE\" = 1 ]; then echo \"$TD_PEER_ID {task}\" >> "
      "\"$TD_TEST_MARKS/../universe\"; else " + kMark + "; sleep 0.2; fi";
  const std::vector<std::string> args = {"--task-command", command};
  auto& w1 = cluster.startWorker(schema, {"w1", "c1", {}, args});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1", {}, args});
  auto& w3 = cluster.startWorker(schema, {"w3", "c1", {}, args});
  for (auto* w : {&w1, &w2, &w3}) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();
  auto& late = cluster.startWorker(schema, {"w4", "c1", {}, args});
  ASSERT_EQ(late.wait(kRunTimeout), 0) << cluster.logs();
  for (const char* step : {"1", "2", "3"}) EXPECT_EQ(cluster.runsOf(step), 1) << step;
  std::ifstream file(cluster.dir() / "universe");
  std::multiset<std::string> universes;
  for (std::string line; std::getline(file, line);) universes.insert(line);
  EXPECT_EQ(universes, (std::multiset<std::string>{"w1 //my_universe/...", "w2 //my_universe/...",
                                                    "w3 //my_universe/...", "w4 //my_universe/..."}));
  for (auto* w : {&w1, &w2, &w3, &late}) {
    EXPECT_THAT(w->output(), HasSubstr("  universe: succeeded (exit 0) in ")) << w->output();
  }
  EXPECT_THAT(late.output(), Not(HasSubstr("attempt=1 started"))) << "the late joiner ran a step";

  // A universe that fails on one peer: the group completed, w5's build did not, w6's did.
  auto failing = cluster.writeSchema(
      "broken_universe", "name: broken_universe\n"
                         "universe: if [ \"$TD_PEER_ID\" = w5 ]; then echo nope; exit 3; fi\n"
                         "steps:\n  - id: only\n    run: true\n");
  auto& w5 = cluster.startWorker(failing, {"w5", "c2"});
  auto& w6 = cluster.startWorker(failing, {"w6", "c2"});
  ASSERT_EQ(w5.wait(kRunTimeout), 1) << cluster.logs();
  ASSERT_EQ(w6.wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_THAT(w5.output(), HasSubstr("COMPLETED"));
  EXPECT_THAT(w5.output(), HasSubstr("  universe: failed (exit 3) in "));
  EXPECT_THAT(w5.output(), HasSubstr("[universe] nope"));
  EXPECT_THAT(w6.output(), HasSubstr("  universe: succeeded (exit 0) in ")) << w6.output();

  // td.events has each peer's run once, the late joiner's too, with its outcome.
  const auto runs = universeRuns(cluster, 6);
  ASSERT_EQ(runs.size(), 6u) << cluster.logs("coordinator");
  std::set<std::string> groups;
  for (const auto& [peer, run] : runs) {
    EXPECT_EQ(run.started, 1) << peer;
    ASSERT_EQ(run.finished.size(), 1u) << peer;
    const bool fails = peer == "w5";
    EXPECT_EQ(run.finished[0].outcome(),
              fails ? td::v1::STEP_OUTCOME_FAILED : td::v1::STEP_OUTCOME_SUCCEEDED) << peer;
    EXPECT_EQ(run.finished[0].exit_code(), fails ? 3 : 0) << peer;
    EXPECT_GT(run.finished[0].started_at_ms(), 0) << peer;
    if (peer != "w5" && peer != "w6") groups.insert(run.group);
  }
  EXPECT_EQ(groups.size(), 1u) << "w1..w4 ran the universe of one group";
  expectAuditClean(cluster, "audit-universe");
  const auto [rc, show] = cluster.audit({"show", runs.at("w5").group}, "show-universe");
  EXPECT_EQ(rc, std::optional<int>(0)) << show;
  EXPECT_THAT(show, HasSubstr("\nuniverse:\n")) << show;
  EXPECT_THAT(show, ContainsRegex("  w5 +started \\+[0-9]+ms finished \\+[0-9]+ms -> failed "
                                  "\\(exit 3\\) took [0-9]+ms"))
      << show;
}

TEST(EndToEnd, TwoGroupsWithDifferentChangesRunInParallelWithoutMixing) {
  Cluster cluster;
  auto schema = cluster.writeSchema("pair", schemaOf("pair", {"x", "y", "z", "w"}));
  auto& a1 = cluster.startWorker(schema, {"a1", "ca"});
  auto& b1 = cluster.startWorker(schema, {"b1", "cb"});
  auto& a2 = cluster.startWorker(schema, {"a2", "ca2", {"ca"}});
  auto& b2 = cluster.startWorker(schema, {"b2", "cb2", {"cb"}});
  for (auto* w : {&a1, &b1, &a2, &b2}) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();

  // Each step ran exactly once per group, and only on that group's peers.
  std::map<std::string, std::set<std::string>> steps_of_group, peers_of_group;
  for (const auto& m : cluster.marksWritten()) {
    EXPECT_EQ(m.attempt, 1u) << "no retries expected: " << m.step;
    EXPECT_TRUE(steps_of_group[m.group].insert(m.step).second) << m.step << " ran twice";
    peers_of_group[m.group].insert(m.peer);
  }
  ASSERT_EQ(steps_of_group.size(), 2u) << cluster.logs();
  for (const auto& [group, steps] : steps_of_group) EXPECT_EQ(steps.size(), 4u) << group;
  for (const auto& [group, peers] : peers_of_group) {
    const bool is_a = peers.contains("a1") || peers.contains("a2");
    const bool is_b = peers.contains("b1") || peers.contains("b2");
    EXPECT_NE(is_a, is_b) << "group " << group << " mixed peers";
  }
}

TEST(EndToEnd, LateJoinerOfACompletedGroupRunsNothingAndExitsZero) {
  Cluster cluster;
  auto schema = cluster.writeSchema("late", schemaOf("late", {"only"}, ""));
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  ASSERT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
  auto& late = cluster.startWorker(schema, {"late", "c1"});
  ASSERT_EQ(late.wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_EQ(cluster.runsOf("only"), 1);
  EXPECT_NE(late.output().find("COMPLETED"), std::string::npos) << late.output();
}

TEST(EndToEnd, StepsSeeTheirEnvironmentAndRunInTheWorkersDirectory) {
  Cluster cluster;
  auto schema = cluster.writeSchema(
      "env", "name: env\nsteps:\n  - id: show\n    run: echo \"$TD_GROUP_ID|$TD_STEP_ID|"
             "$TD_ATTEMPT|$TD_PEER_ID|$TD_SCHEMA|$(pwd)\" > \"$TD_TEST_MARKS/../env\"\n");
  auto& w = cluster.startWorker(schema, {"w1", "c1"});
  ASSERT_EQ(w.wait(kRunTimeout), 0) << cluster.logs();
  auto env = readFile(cluster.dir() / "env");
  EXPECT_NE(env.find("|show|1|w1|env|"), std::string::npos) << env;
  EXPECT_NE(env.find("/work-w1"), std::string::npos) << env;
  EXPECT_EQ(env.rfind("env-", 0), 0u) << "group ids start with the schema name: " << env;
}

}  // namespace
}  // namespace td::testing
