// td.logs (issue 20), with real processes: workers ship every step attempt's output, and
// `td-audit logs` prints it whole, in order, from anywhere; a failed group's summary on every
// peer ends with the command that does.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kRunTimeout = std::chrono::seconds(120);

// "line 0000001 attempt A\n" ... for 1..n: what `seq -f 'line %07g attempt A' 1 n` prints.
std::string numberedLines(int n, std::uint32_t attempt) {
  std::string out;
  char line[64];
  for (int i = 1; i <= n; ++i) {
    const int len = std::snprintf(line, sizeof line, "line %07d attempt %u\n", i, attempt);
    out.append(line, static_cast<std::size_t>(len));
  }
  return out;
}

// td-audit ARGS... with its stdout and stderr in files of their own (stdout compared byte for
// byte); started, not awaited.
std::unique_ptr<Process> startAudit(const Cluster& cluster, const std::vector<std::string>& args,
                                    const std::string& name) {
  std::vector<std::string> command = {
      "/bin/sh", "-c", "exec \"$0\" \"$@\" > '" + (cluster.dir() / (name + ".stdout")).string() +
                           "' 2> '" + (cluster.dir() / (name + ".stderr")).string() + "'",
      TD_AUDIT_BIN};
  command.insert(command.end(), args.begin(), args.end());
  command.insert(command.end(), {"--bootstrap-server", cluster.bootstrap()});
  for (auto& arg : cluster.clientArgs()) command.push_back(std::move(arg));
  return std::make_unique<Process>(
      Process::Options{.args = command, .output = cluster.dir() / (name + ".out")});
}

struct AuditRun {
  std::optional<int> rc;
  std::string out, err;
};

AuditRun runAudit(const Cluster& cluster, const std::vector<std::string>& args,
                  const std::string& name) {
  auto audit = startAudit(cluster, args, name);
  AuditRun run;
  run.rc = audit->wait(std::chrono::seconds(60));
  run.out = readFile(cluster.dir() / (name + ".stdout"));
  run.err = readFile(cluster.dir() / (name + ".stderr"));
  return run;
}

std::string groupOf(const Cluster& cluster, const std::string& step) {
  for (const auto& m : cluster.marksWritten()) {
    if (m.step == step) return m.group;
  }
  return {};
}

// Several MiB from a step that fails twice, each attempt printing other lines and a marker:
// every peer's summary has the marker and the td-audit logs command, which prints each
// attempt's output byte for byte.
TEST(Logs, AFailingStepsWholeOutputIsOnTdLogsAndEveryPeerSaysHowToPrintIt) {
  Cluster cluster;
  constexpr int kLines = 200'000;   // 23 bytes each: 4.4 MiB an attempt
  const std::string yaml =
      "name: loud\n"
      "defaults: {timeout: 2m, max_attempts: 2}\n"
      "steps:\n"
      "  - id: ok\n"
      "    run: " + kMarkCommand + "; sleep 0.5\n"
      "  - id: big\n"
      "    run: " + kMarkCommand + "; seq -f \"line %07g attempt $TD_ATTEMPT\" 1 " +
      std::to_string(kLines) + "; echo \"MARKER big attempt $TD_ATTEMPT\" >&2; exit 3\n";
  auto schema = cluster.writeSchema("loud", yaml);
  auto& w1 = cluster.startWorker(schema, {"w1", "c1", {}, {"--quiet-steps"}});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1", {}, {"--quiet-steps"}});
  for (auto* w : {&w1, &w2}) ASSERT_EQ(w->wait(kRunTimeout), 1) << cluster.logs();
  const std::string group = groupOf(cluster, "big");
  ASSERT_FALSE(group.empty()) << cluster.logs();
  ASSERT_EQ(cluster.runsOf("big"), 2);

  // Both peers, whichever ran it: the marker among the last lines, then the command.
  for (auto* w : {&w1, &w2}) {
    const std::string out = w->output();
    EXPECT_THAT(out, HasSubstr("    | MARKER big attempt 2\n  full output: td-audit logs " +
                               group + " big --attempt 2 --bootstrap-server " +
                               cluster.bootstrap() + "\n"))
        << out;
  }

  const std::string marker = "MARKER big attempt ";
  auto last = runAudit(cluster, {"logs", group, "big"}, "logs-last");
  ASSERT_EQ(last.rc, std::optional<int>(0)) << last.err;
  const std::string expected2 = numberedLines(kLines, 2) + marker + "2\n";
  EXPECT_EQ(last.out.size(), expected2.size());
  EXPECT_TRUE(last.out == expected2) << "output differs from what the step printed";
  EXPECT_THAT(last.err, HasSubstr("step big attempt 2 on w"));
  EXPECT_THAT(last.err, HasSubstr("ended: failed, exit 3"));
  EXPECT_THAT(last.err, Not(HasSubstr("lost")));

  auto first = runAudit(cluster, {"logs", group, "big", "--attempt", "1"}, "logs-first");
  ASSERT_EQ(first.rc, std::optional<int>(0)) << first.err;
  const std::string expected1 = numberedLines(kLines, 1) + marker + "1\n";
  EXPECT_EQ(first.out.size(), expected1.size());
  EXPECT_TRUE(first.out == expected1) << "output differs from what the step printed";
}

// --follow prints a running step's output as it comes and exits 0 once the attempt ended.
TEST(Logs, FollowPrintsARunningStepsOutputAndEndsWithIt) {
  Cluster cluster;
  const auto go = cluster.dir() / "go";
  const std::string yaml =
      "name: slow\n"
      "defaults: {timeout: 2m, max_attempts: 1}\n"
      "steps:\n"
      "  - id: slow\n"
      "    run: " + kMarkCommand + "; echo first line; while [ ! -e '" + go.string() +
      "' ]; do sleep 0.05; done; echo second line\n";
  auto schema = cluster.writeSchema("slow", yaml);
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  std::string group;
  ASSERT_TRUE(waitUntil([&] { return !(group = groupOf(cluster, "slow")).empty(); },
                        std::chrono::seconds(60)))
      << cluster.logs();
  auto follower = startAudit(cluster, {"logs", group, "slow", "--follow"}, "follow");
  const auto out = cluster.dir() / "follow.stdout";
  ASSERT_TRUE(waitUntil([&] { return readFile(out) == "first line\n"; }, std::chrono::seconds(30)))
      << readFile(out) << readFile(cluster.dir() / "follow.stderr") << cluster.logs();
  EXPECT_TRUE(follower->running()) << "the step has not ended yet";
  std::ofstream(go).put('\n');
  ASSERT_EQ(follower->wait(std::chrono::seconds(60)), std::optional<int>(0))
      << readFile(cluster.dir() / "follow.stderr");
  EXPECT_EQ(readFile(out), "first line\nsecond line\n");
  EXPECT_THAT(readFile(cluster.dir() / "follow.stderr"),
              HasSubstr("step slow attempt 1 on w1 ended: succeeded"));
  ASSERT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
}

// A step with no output on td.logs is exit 1 saying which; --log-cap stops shipping at the cap
// and td-audit logs says the output was truncated.
TEST(Logs, NoOutputIsExitOneAndTheCapTruncates) {
  Cluster cluster;
  const std::string yaml =
      "name: capped\n"
      "defaults: {timeout: 1m, max_attempts: 1}\n"
      "steps:\n"
      "  - id: chatty\n"
      "    run: " + kMarkCommand + "; seq 1 1000\n";
  auto schema = cluster.writeSchema("capped", yaml);
  auto& w1 = cluster.startWorker(schema, {"w1", "c1", {}, {"--log-cap", "1KiB"}});
  ASSERT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
  const std::string group = groupOf(cluster, "chatty");
  ASSERT_FALSE(group.empty());

  std::string all;
  for (int i = 1; i <= 1000; ++i) all += std::to_string(i) + "\n";
  auto capped = runAudit(cluster, {"logs", group, "chatty"}, "capped");
  ASSERT_EQ(capped.rc, std::optional<int>(0)) << capped.err;
  EXPECT_EQ(capped.out, all.substr(0, 1024));
  EXPECT_THAT(capped.err, HasSubstr("output truncated: the step printed " +
                                    std::to_string(all.size()) +
                                    " bytes; the worker shipped the first 1024 (its --log-cap)"));

  auto none = runAudit(cluster, {"logs", group, "nope"}, "none");
  EXPECT_EQ(none.rc, std::optional<int>(1)) << none.err;
  EXPECT_TRUE(none.out.empty());
  EXPECT_THAT(none.err, HasSubstr("no output of step nope of group " + group + " on td.logs"));
  auto other_attempt = runAudit(cluster, {"logs", group, "chatty", "--attempt", "2"}, "none2");
  EXPECT_EQ(other_attempt.rc, std::optional<int>(1)) << other_attempt.err;
  EXPECT_THAT(other_attempt.err,
              HasSubstr("no output of step chatty attempt 2 of group " + group + " on td.logs"));
  auto bad = runAudit(cluster, {"logs", group}, "usage");
  EXPECT_EQ(bad.rc, std::optional<int>(2)) << bad.err;
}

}  // namespace
}  // namespace td::testing
