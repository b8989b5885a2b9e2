// Failure handling with real processes: a worker killed with SIGKILL, SIGTERM or SIGINT in the
// middle of a step, and a step that fails on every peer while another step is still running.
// Every "ran" / "ran once" check counts the marks the steps themselves wrote (kMarkCommand);
// every wait polls a predicate with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kRunTimeout = std::chrono::seconds(60);

// A YAML list entry for a step that records its run, then runs `then`. Single-quoted, so the
// shell text needs no YAML escaping beyond doubling single quotes (none are used).
std::string markingStep(const std::string& id, const std::string& then,
                        const std::string& extra_fields = "") {
  return "  - id: " + id + "\n    run: '" + kMarkCommand + (then.empty() ? "" : "; " + then) +
         "'\n" + extra_fields;
}

// The step "long" of treePlusQuickSchema, run as `sh tree.sh <dir>` (issue 15). Attempt 1 starts
// a process tree and records its pids in <dir>/tree.pids (one line, written last):
//   the script's shell and its parent (the step's shell), a background job (`sleep 300 &`), a
//   sleeper that left with setsid and a double fork, and a second such one that waits for
//   <dir>/done to have a line and then appends "escaped" to it;
// then it waits the same way and appends "<peer> 1". Any other attempt appends
// "<peer> <attempt>" at once. So <dir>/done ends with exactly one line only if nothing of a
// killed attempt 1 survived to see the re-run's line.
constexpr const char* kTreeScript = R"(d="$1"
if [ "$TD_ATTEMPT" = 1 ]; then
  sleep 300 & echo $! > "$d/bg.pid"
  setsid sh -c 'sleep 300 & echo $! > "$0/setsid.pid"' "$d" &
  setsid sh -c '( until [ -s "$0/done" ]; do sleep 0.05; done; echo escaped >> "$0/done" ) &
    echo $! > "$0/writer.pid"' "$d" &
  until [ -s "$d/bg.pid" ] && [ -s "$d/setsid.pid" ] && [ -s "$d/writer.pid" ]; do sleep 0.01; done
  echo $$ $PPID $(cat "$d/bg.pid" "$d/setsid.pid" "$d/writer.pid") > "$d/tree.tmp"
  mv "$d/tree.tmp" "$d/tree.pids"
  until [ -s "$d/done" ]; do sleep 0.05; done
fi
echo "$TD_PEER_ID $TD_ATTEMPT" >> "$d/done"
)";

// Steps "long" (kTreeScript in `dir`: on its first attempt it runs until a re-run has
// finished, later attempts are quick) and three quick ones.
std::string treePlusQuickSchema(const std::string& name, const std::filesystem::path& dir) {
  std::ofstream(dir / "tree.sh") << kTreeScript;
  return "name: " + name + "\ndefaults: {timeout: 1m, max_attempts: 3}\nsteps:\n" +
         markingStep("long", "sh " + (dir / "tree.sh").string() + " " + dir.string()) +
         markingStep("a", "sleep 0.2") + markingStep("b", "sleep 0.2") +
         markingStep("c", "sleep 0.2");
}

// The pids kTreeScript recorded in `dir`, once it has (empty if not within the deadline).
std::vector<pid_t> treePids(const std::filesystem::path& dir) {
  std::vector<pid_t> pids;
  waitUntil([&] { return std::filesystem::exists(dir / "tree.pids"); }, kRunTimeout);
  std::istringstream in(readFile(dir / "tree.pids"));
  for (long pid = 0; in >> pid;) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

// The recorded pids that are still alive, for messages ("" once all are gone).
std::string aliveOf(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t pid : pids) {
    if (processAlive(pid)) out += std::to_string(pid) + " ";
  }
  return out;
}

// The lines of <dir>/done.
std::vector<std::string> doneLines(const std::filesystem::path& dir) {
  std::vector<std::string> lines;
  std::istringstream in(readFile(dir / "done"));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Starts w1 alone so it takes "long" (the first step, the only member), then w2 and w3, and
// waits until they ran the quick steps: afterwards "long" is the only step left, on w1, and
// w2 and w3 are idle.
Process& startLongOnW1(Cluster& cluster, const std::filesystem::path& schema,
                       std::vector<Process*>& others) {
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  EXPECT_TRUE(waitUntil([&] { return cluster.findMark("long", 1).has_value(); }, kRunTimeout))
      << cluster.logs();
  others.push_back(&cluster.startWorker(schema, {"w2", "c1"}));
  others.push_back(&cluster.startWorker(schema, {"w3", "c1"}));
  EXPECT_TRUE(waitUntil(
      [&] {
        return cluster.runsOf("a") == 1 && cluster.runsOf("b") == 1 && cluster.runsOf("c") == 1;
      },
      kRunTimeout))
      << cluster.logs();
  return w1;
}

// The group completed with every step run once, except "long": attempt 1 on w1 and attempt 2
// on another peer.
void expectLongRanTwiceOthersOnce(const Cluster& cluster) {
  std::map<std::string, std::vector<Cluster::Mark>> runs;
  std::set<std::string> groups;
  for (const auto& m : cluster.marksWritten()) {
    runs[m.step].push_back(m);
    groups.insert(m.group);
  }
  EXPECT_EQ(groups.size(), 1u);
  for (const char* step : {"a", "b", "c"}) {
    ASSERT_EQ(runs[step].size(), 1u) << step << "\n" << cluster.logs();
    EXPECT_EQ(runs[step][0].attempt, 1u) << step;
  }
  ASSERT_EQ(runs["long"].size(), 2u) << cluster.logs();
  std::map<std::uint32_t, std::string> peer_of_attempt;
  for (const auto& m : runs["long"]) peer_of_attempt[m.attempt] = m.peer;
  EXPECT_EQ(peer_of_attempt[1], "w1");
  ASSERT_TRUE(peer_of_attempt.contains(2));
  EXPECT_NE(peer_of_attempt[2], "w1") << "the re-run went to another peer";
}

// The worker's step ran under its supervisor (issue 15): when the worker is SIGKILLed, the
// kernel's parent-death signal makes the supervisor kill the step's whole tree, setsid and
// double-forked descendants too, so the killed attempt's side effect never happens.
TEST(Faults, KillNineMidStepReRunsItOnAnotherPeerWithinTheLeaseAndNothingOfTheStepSurvives) {
  constexpr std::int64_t kLeaseMs = 3000, kHeartbeatMs = 500;
  Cluster cluster(Cluster::Options{
      .coordinator_args = {"--lease-ms", std::to_string(kLeaseMs), "--heartbeat-interval-ms",
                           std::to_string(kHeartbeatMs)}});
  auto schema = cluster.writeSchema("kill9", treePlusQuickSchema("kill9", cluster.dir()));
  std::vector<Process*> others;
  Process& w1 = startLongOnW1(cluster, schema, others);
  ASSERT_FALSE(HasFailure());
  const auto first = cluster.findMark("long", 1);
  ASSERT_TRUE(first && first->pgid > 0);
  std::vector<pid_t> tree = treePids(cluster.dir());
  ASSERT_EQ(tree.size(), 5u) << cluster.logs();
  tree.push_back(first->pgid);  // the step's shell (the script's parent, unless sh exec'd it)
  for (pid_t pid : tree) ASSERT_TRUE(processAlive(pid)) << pid << " should still be running";

  const std::int64_t killed_at = wallMs();
  w1.signal(SIGKILL);
  ASSERT_EQ(w1.wait(std::chrono::seconds(10)), 128 + SIGKILL);
  EXPECT_TRUE(waitUntil([&] { return aliveOf(tree).empty(); }, std::chrono::seconds(1)))
      << "still alive 1 s after the worker died: " << aliveOf(tree);
  std::cout << "[ measured ] kill -9 -> step tree gone: " << (wallMs() - killed_at) << " ms\n";

  ASSERT_TRUE(waitUntil([&] { return cluster.findMark("long", 2).has_value(); },
                        std::chrono::milliseconds(kLeaseMs) + std::chrono::seconds(20)))
      << cluster.logs();
  const std::int64_t reassign_ms = cluster.findMark("long", 2)->at_ms - killed_at;
  std::cout << "[ measured ] kill -9 -> attempt 2 started: " << reassign_ms << " ms (lease "
            << kLeaseMs << " ms)\n";
  RecordProperty("kill_to_rerun_ms", std::to_string(reassign_ms));
  EXPECT_LE(reassign_ms, kLeaseMs + 1000) << cluster.logs();
  // Not before the lease could lapse: the last heartbeat the coordinator saw was about one
  // interval before the kill at most (a second interval of slack for scheduling).
  EXPECT_GE(reassign_ms, kLeaseMs - 2 * kHeartbeatMs) << cluster.logs();

  for (Process* w : others) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();
  expectLongRanTwiceOthersOnce(cluster);
  // The side effect happened once, by the re-run; attempt 1 and its escaped writer never saw
  // the re-run's line.
  const auto done = doneLines(cluster.dir());
  ASSERT_EQ(done.size(), 1u) << readFile(cluster.dir() / "done");
  EXPECT_EQ(done[0], cluster.findMark("long", 2)->peer + " 2");
  EXPECT_EQ(cluster.killStrayStepProcesses(), 0) << "nothing of any step is left";
}

// SIGTERM or SIGINT: the running step is aborted at once (its whole tree, setsid and
// double-forked descendants too), reported aborted, PeerLeft published, exit 130; the step is
// re-queued at once, not at the lease.
void signalMidStepExits130AndTheStepIsRequeuedAtOnce(int sig) {
  constexpr std::int64_t kLeaseMs = 10000, kBoundMs = 3000;
  Cluster cluster(Cluster::Options{.coordinator_args = {"--lease-ms", std::to_string(kLeaseMs)}});
  auto schema = cluster.writeSchema("term", treePlusQuickSchema("term", cluster.dir()));
  std::vector<Process*> others;
  Process& w1 = startLongOnW1(cluster, schema, others);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const auto first = cluster.findMark("long", 1);
  ASSERT_TRUE(first && first->pgid > 0);
  std::vector<pid_t> tree = treePids(cluster.dir());
  ASSERT_EQ(tree.size(), 5u) << cluster.logs();
  tree.push_back(first->pgid);
  for (pid_t pid : tree) ASSERT_TRUE(processAlive(pid)) << pid << " should still be running";

  const std::int64_t signalled_at = wallMs();
  w1.signal(sig);
  ASSERT_EQ(w1.wait(std::chrono::seconds(15)), 130) << w1.output();
  // It killed its step's whole tree before leaving.
  EXPECT_TRUE(waitUntil([&] { return aliveOf(tree).empty(); }, std::chrono::seconds(1)))
      << "still alive 1 s after the worker exited: " << aliveOf(tree);
  EXPECT_FALSE(processGroupAlive(first->pgid));
  EXPECT_NE(w1.output().find("on a signal"), std::string::npos) << w1.output();

  ASSERT_TRUE(waitUntil([&] { return cluster.findMark("long", 2).has_value(); },
                        std::chrono::seconds(20)))
      << cluster.logs();
  const std::int64_t reassign_ms = cluster.findMark("long", 2)->at_ms - signalled_at;
  std::cout << "[ measured ] signal " << sig << " -> attempt 2 started: " << reassign_ms
            << " ms (lease " << kLeaseMs << " ms)\n";
  ::testing::Test::RecordProperty("signal_to_rerun_ms", std::to_string(reassign_ms));
  EXPECT_LE(reassign_ms, kBoundMs) << "re-queued on PeerLeft, not at the lease\n"
                                   << cluster.logs();

  for (Process* w : others) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();
  expectLongRanTwiceOthersOnce(cluster);
  const auto done = doneLines(cluster.dir());
  ASSERT_EQ(done.size(), 1u) << readFile(cluster.dir() / "done");
  EXPECT_EQ(done[0], cluster.findMark("long", 2)->peer + " 2");
  EXPECT_EQ(cluster.killStrayStepProcesses(), 0) << "nothing of any step is left";
}

TEST(Faults, SigtermMidStepExits130KillsTheWholeStepTreeAndTheStepIsRequeuedAtOnce) {
  signalMidStepExits130AndTheStepIsRequeuedAtOnce(SIGTERM);
}

TEST(Faults, SigintMidStepExits130KillsTheWholeStepTreeAndTheStepIsRequeuedAtOnce) {
  signalMidStepExits130AndTheStepIsRequeuedAtOnce(SIGINT);
}

TEST(Faults, AlwaysFailingStepRunsOnThreeDistinctPeersThenTheGroupFailsAndAbortsTheLongStep) {
  Cluster cluster;
  const auto finished = cluster.dir() / "long-finished";
  // w1 alone first: it fails "bad" (attempt 1) and, while bad's backoff keeps it from retrying
  // at once, takes "long". w2 and w3 then fail attempts 2 and 3: peers that have not failed a
  // step are preferred, and the backoff (no jitter) keeps w2 from retrying before w3 joins.
  const std::string yaml =
      "name: doomed\ndefaults: {timeout: 1m}\nsteps:\n" +
      markingStep("bad", "exit 3", "    max_attempts: 3\n    backoff: {initial: 3s, jitter: 0}\n") +
      markingStep("long", "sleep 20; touch \"$TD_TEST_MARKS/../long-finished\"");
  auto schema = cluster.writeSchema("doomed", yaml);
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  ASSERT_TRUE(waitUntil([&] { return cluster.findMark("long", 1).has_value(); }, kRunTimeout))
      << cluster.logs();
  const auto long_run = cluster.findMark("long", 1);
  ASSERT_EQ(long_run->peer, "w1");
  auto& w2 = cluster.startWorker(schema, {"w2", "c1"});
  auto& w3 = cluster.startWorker(schema, {"w3", "c1"});

  ASSERT_TRUE(waitUntil([&] { return cluster.findMark("bad", 3).has_value(); }, kRunTimeout))
      << cluster.logs();
  // td-worker must not wait for the aborted step's remaining ~20 s.
  ASSERT_EQ(w1.wait(std::chrono::seconds(10)), 1) << cluster.logs();
  const std::int64_t w1_exit_ms = wallMs();
  const std::int64_t third_failure_ms = cluster.findMark("bad", 3)->at_ms;
  std::cout << "[ measured ] third failure -> w1 exited: " << (w1_exit_ms - third_failure_ms)
            << " ms (its step had " << (long_run->at_ms + 20000 - w1_exit_ms) << " ms left)\n";
  EXPECT_LT(w1_exit_ms - third_failure_ms, 5000);
  EXPECT_LT(w1_exit_ms, long_run->at_ms + 20000);
  for (auto* w : {&w2, &w3}) ASSERT_EQ(w->wait(kRunTimeout), 1) << cluster.logs();

  std::set<std::string> bad_peers;
  for (const auto& m : cluster.marksWritten()) {
    if (m.step == "bad") bad_peers.insert(m.peer);
  }
  EXPECT_EQ(cluster.runsOf("bad"), 3) << cluster.logs();
  EXPECT_EQ(bad_peers, (std::set<std::string>{"w1", "w2", "w3"}));
  EXPECT_EQ(cluster.runsOf("long"), 1) << "an aborted step of a failed group is not re-run";
  // The attempt was aborted: its process group is gone and it never reached its end.
  EXPECT_TRUE(waitUntil([&] { return !processGroupAlive(long_run->pgid); },
                        std::chrono::seconds(5)));
  EXPECT_FALSE(std::filesystem::exists(finished));
  EXPECT_NE(w1.output().find("step=long attempt=1 aborting"), std::string::npos) << w1.output();
  EXPECT_NE(w1.output().find("FAILED"), std::string::npos) << w1.output();
}

}  // namespace
}  // namespace td::testing
