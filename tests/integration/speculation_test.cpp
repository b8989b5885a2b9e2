// Speculative attempts with real processes (issue 18; docs/architecture.md, "Speculative
// attempts"): three peers share six one-second steps, but peer "slow" takes ten times longer
// for each. With speculation, its straggling step is raced on an idle fast peer and the group
// ends close to what the two fast peers alone would take; the slow attempt is killed before it
// writes its result, so every step's result is written exactly once; td-audit verify is clean.
// With `speculative: false` the group waits for the slow peer and nothing runs twice.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

using std::chrono::seconds;

constexpr auto kRunTimeout = seconds(120);

// Six steps: mark the start (kMarkCommand), take 1 s (10 s on peer "slow"), then append
// "<peer> <attempt> <wall ms>" to the step's result file: the result a step writes at its end.
std::string schemaOf(const std::string& defaults) {
  std::string yaml = "name: straggle\ndefaults: {timeout: 2m, max_attempts: 2" + defaults +
                     "}\nsteps:\n";
  for (int i = 1; i <= 6; ++i) {
    yaml += "  - id: s" + std::to_string(i) + "\n    run: '" + kMarkCommand +
            "; if [ \"$TD_PEER_ID\" = slow ]; then sleep 10; else sleep 1; fi; "
            "echo \"$TD_PEER_ID $TD_ATTEMPT $(date +%s%3N)\" >> "
            "\"$TD_TEST_MARKS/../result-$TD_STEP_ID\"'\n";
  }
  return yaml;
}

// Lines of each step's result file.
std::map<std::string, std::vector<std::string>> results(const Cluster& cluster) {
  std::map<std::string, std::vector<std::string>> out;
  for (int i = 1; i <= 6; ++i) {
    const std::string step = "s" + std::to_string(i);
    std::ifstream in(cluster.dir() / ("result-" + step));
    for (std::string line; std::getline(in, line);) out[step].push_back(line);
  }
  return out;
}

// Runs the group: "slow" first (so it surely holds a step), then the two fast peers once it
// started it. Returns the first mark's time (wall ms), or 0 on trouble (test failed).
std::int64_t runGroup(Cluster& cluster, const std::filesystem::path& schema) {
  auto& slow = cluster.startWorker(schema, {"slow", "c1"});
  if (!waitUntil([&] { return !cluster.marksWritten().empty(); }, seconds(60))) {
    ADD_FAILURE() << "slow never started a step\n" << cluster.logs();
    return 0;
  }
  std::int64_t first = 0;
  for (const auto& m : cluster.marksWritten()) first = first == 0 ? m.at_ms : std::min(first, m.at_ms);
  auto& fast1 = cluster.startWorker(schema, {"fast1", "c1"});
  auto& fast2 = cluster.startWorker(schema, {"fast2", "c1"});
  for (auto* w : {&slow, &fast1, &fast2}) {
    if (w->wait(kRunTimeout) != 0) {
      ADD_FAILURE() << "a worker did not complete\n" << cluster.logs();
      return 0;
    }
  }
  return first;
}

TEST(Speculation, ASlowPeersStepIsRacedAndTheGroupEndsCloseToTheFastPeersTime) {
  Cluster cluster(Cluster::Options{.speculation = true});
  const std::int64_t first = runGroup(cluster, cluster.writeSchema("straggle", schemaOf("")));
  ASSERT_NE(first, 0);

  // Every step's result exactly once, the slow peer's raced step from its twin.
  std::int64_t last_result = 0;
  for (const auto& [step, lines] : results(cluster)) {
    EXPECT_EQ(lines.size(), 1u) << step << "\n" << cluster.logs();
    std::istringstream fields(lines.front());
    std::string peer;
    std::uint32_t attempt = 0;
    std::int64_t at_ms = 0;
    fields >> peer >> attempt >> at_ms;
    EXPECT_NE(peer, "slow") << step << ": the slow attempt never wins";
    last_result = std::max(last_result, at_ms);
  }
  EXPECT_EQ(results(cluster).size(), 6u);
  // The slow attempt ran, and its process group is gone: it can never write its result.
  int slow_runs = 0;
  for (const auto& m : cluster.marksWritten()) {
    if (m.peer != "slow") continue;
    ++slow_runs;
    EXPECT_FALSE(processGroupAlive(m.pgid)) << m.step;
  }
  EXPECT_GE(slow_runs, 1);
  EXPECT_EQ(cluster.marksWritten().size(), 6u + static_cast<std::size_t>(slow_runs))
      << "each slow run raced once, nothing else ran twice\n" << cluster.logs();
  // td.events: a speculative step_assigned for each slow run, and its loser aborted.
  int speculative = 0, lost_races = 0;
  for (const auto& e : cluster.events()) {
    if (e.has_step_assigned() && e.step_assigned().speculative()) ++speculative;
    if (e.has_step_aborted() && e.step_aborted().won_by_attempt() != 0) ++lost_races;
  }
  EXPECT_EQ(speculative, slow_runs);
  EXPECT_EQ(lost_races, slow_runs);
  // Without the race the group could not end before the slow step's 10 s; the two fast peers
  // alone take about 3 s, plus the wait before racing (3 s) and the twin's 1 s.
  std::printf("first step start to last result: %lld ms (slow peer's step alone: 10000 ms)\n",
              static_cast<long long>(last_result - first));
  EXPECT_LT(last_result - first, 8000) << cluster.logs();

  auto [code, out] = cluster.audit({"verify"}, "verify");
  EXPECT_EQ(code, 0) << out;
}

TEST(Speculation, SpeculativeFalseWaitsForTheSlowPeerAndRunsNothingTwice) {
  Cluster cluster(Cluster::Options{.speculation = true});
  const std::int64_t first =
      runGroup(cluster, cluster.writeSchema("straggle", schemaOf(", speculative: false")));
  ASSERT_NE(first, 0);
  for (const auto& [step, lines] : results(cluster)) EXPECT_EQ(lines.size(), 1u) << step;
  EXPECT_EQ(results(cluster).size(), 6u);
  EXPECT_EQ(cluster.marksWritten().size(), 6u) << "nothing ran twice\n" << cluster.logs();
  for (const auto& e : cluster.events()) {
    EXPECT_FALSE(e.has_step_assigned() && e.step_assigned().speculative());
  }
  auto [code, out] = cluster.audit({"verify"}, "verify");
  EXPECT_EQ(code, 0) << out;
}

}  // namespace
}  // namespace td::testing
