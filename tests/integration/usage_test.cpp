// Usage, configuration and schema errors: exit code 2 and a message that says where.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

std::vector<std::string> workerArgs(const std::string& schema) {
  return {TD_WORKER_BIN, "--bootstrap-server", "127.0.0.1:1", "--schema", schema,
          "--peer-id", "w1", "--repository", "r", "--base-ref", "main", "--change-ref", "c1",
          "--remote-cache-id", "c", "--join-timeout", "1"};
}

TEST(Usage, BadSchemaExitsTwoNamingFileLineAndColumn) {
  TempDir dir;
  auto schema = dir.path() / "bad.yaml";
  std::ofstream(schema) << "name: x\nsteps:\n  - id: a\n    run: true\n    colour: red\n";
  Process p({.args = workerArgs(schema.string()), .output = dir.path() / "out"});
  ASSERT_EQ(p.wait(kTimeout), 2);
  EXPECT_NE(p.output().find("bad.yaml:5:5"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("colour"), std::string::npos) << p.output();
}

TEST(Usage, MissingFlagsExitTwo) {
  TempDir dir;
  Process worker({.args = {TD_WORKER_BIN, "--peer-id", "x"}, .output = dir.path() / "w"});
  EXPECT_EQ(worker.wait(kTimeout), 2);
  Process coordinator({.args = {TD_COORDINATOR_BIN, "--no-such-flag"}, .output = dir.path() / "c"});
  EXPECT_EQ(coordinator.wait(kTimeout), 2);
  Process bad_x({.args = {TD_COORDINATOR_BIN, "--bootstrap-server", "127.0.0.1:1", "-X", "novalue"},
                 .output = dir.path() / "x"});
  EXPECT_EQ(bad_x.wait(kTimeout), 2);
  EXPECT_NE(bad_x.output().find("novalue"), std::string::npos) << bad_x.output();
}

TEST(Usage, HelpExplainsEveryBinaryAndExitsZero) {
  TempDir dir;
  for (const char* bin : {TD_WORKER_BIN, TD_COORDINATOR_BIN, TD_BROKER_BIN}) {
    Process p({.args = {bin, "--help"}, .output = dir.path() / "help"});
    ASSERT_EQ(p.wait(kTimeout), 0) << bin;
    EXPECT_NE(p.output().find("--bootstrap"), std::string::npos) << p.output();
  }
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Usage, VersionOnEveryBinaryNamesVersionCommitProtocolAndLibrdkafka) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> binaries = {
      {"td-worker", TD_WORKER_BIN},   {"td-coordinator", TD_COORDINATOR_BIN},
      {"td-broker", TD_BROKER_BIN},   {"td-audit", TD_AUDIT_BIN},
      {"td-bench", TD_BENCH_BIN},     {"td-ctl", TD_CTL_BIN}};
  for (const auto& [name, bin] : binaries) {
    Process p({.args = {bin, "--version"}, .output = dir.path() / (name + ".version")});
    ASSERT_EQ(p.wait(kTimeout), 0) << name << ": " << p.output();
    const std::string out = p.output();
    EXPECT_TRUE(contains(out, name + " " TD_PROJECT_VERSION "\n")) << out;
    // `git describe --always --dirty` of the checkout, or "unknown" outside one.
    EXPECT_TRUE(std::regex_search(out, std::regex("\ncommit ([0-9a-f]{7,}|v?[0-9][^ \n]*|unknown)"
                                                  "(-dirty)?\n")))
        << out;
    EXPECT_TRUE(contains(out, "\nprotocol 1\n")) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex("\nlibrdkafka [0-9]+\\.[0-9]+\\.[0-9]+")))
        << out;
  }
}

// One short line, naming the flag or variable and the bounds, not CLI11's
// "Value -5 not in range 0 to 1.79769...e+308".
TEST(Usage, OutOfRangeNumbersSayOneShortLine) {
  TempDir dir;
  auto schema = dir.path() / "s.yaml";
  std::ofstream(schema) << "name: s\nsteps:\n  - id: a\n    run: 'true'\n";
  auto args = workerArgs(schema.string());
  args.insert(args.end(), {"--join-timeout", "-5"});
  Process flag({.args = args, .output = dir.path() / "flag"});
  ASSERT_EQ(flag.wait(kTimeout), 2) << flag.output();
  EXPECT_EQ(lines(flag.output()),
            std::vector<std::string>{
                "td-worker: --join-timeout -5: must be between 1 and 86400 (1 s to 24 h)"})
      << flag.output();

  Process env({.args = workerArgs(schema.string()),
               .env = {{"TD_BROKER_TIMEOUT", "99999999999999999999999"}},
               .output = dir.path() / "env"});
  // --join-timeout 1 is a flag; TD_BROKER_TIMEOUT is out of range (and of any integer).
  ASSERT_EQ(env.wait(kTimeout), 2) << env.output();
  EXPECT_EQ(lines(env.output()),
            std::vector<std::string>{"td-worker: TD_BROKER_TIMEOUT=99999999999999999999999: "
                                     "must be between 1 and 86400 (1 s to 24 h)"})
      << env.output();

  Process coordinator({.args = {TD_COORDINATOR_BIN, "--bootstrap-server", "127.0.0.1:1",
                                "--lease-ms", "10"},
                       .output = dir.path() / "coordinator"});
  ASSERT_EQ(coordinator.wait(kTimeout), 2) << coordinator.output();
  EXPECT_EQ(lines(coordinator.output()),
            std::vector<std::string>{"td-coordinator: --lease-ms 10: must be between 500 and "
                                     "3600000 (500 ms to 1 h)"})
      << coordinator.output();
}

TEST(Usage, HelpListsTheWorkersExitCodes) {
  TempDir dir;
  Process p({.args = {TD_WORKER_BIN, "--help"}, .output = dir.path() / "help"});
  ASSERT_EQ(p.wait(kTimeout), 0);
  const std::string out = p.output();
  EXPECT_TRUE(contains(out, "Exit codes:")) << out;
  for (const char* code : {"  0 ", "  1 ", "  2 ", "  3    infrastructure", "  4    replaced", "  130 "}) {
    EXPECT_TRUE(contains(out, code)) << code << "\n" << out;
  }
  EXPECT_TRUE(contains(out, "--broker-timeout")) << out;
}

// --print-config runs every check a start runs, and exits 2 where the start would.
TEST(Usage, PrintConfigFailsWhereAStartWould) {
  TempDir dir;
  auto good = dir.path() / "good.yaml";
  std::ofstream(good) << "name: s\nsteps:\n  - id: a\n    run: 'true'\n";
  auto bad = dir.path() / "bad.yaml";
  std::ofstream(bad) << "name: x\nsteps:\n  - id: a\n    run: true\n    colour: red\n";
  auto run = [&](const std::string& name, std::vector<std::string> args,
                 std::vector<std::pair<std::string, std::string>> env = {}) {
    args.push_back("--print-config");
    auto p = std::make_unique<Process>(
        Process::Options{.args = args, .env = env, .output = dir.path() / name});
    p->wait(kTimeout);
    return p;
  };
  // The baseline: with a good schema and known properties it prints and exits 0.
  auto fine = run("fine", workerArgs(good.string()), {{"TD_KAFKA_LINGER_MS", "5"}});
  EXPECT_EQ(fine->wait(kTimeout), 0) << fine->output();

  auto unknown_flag = run("unknown-x", [&] {
    auto a = workerArgs(good.string());
    a.insert(a.end(), {"-X", "no.such.property=1"});
    return a;
  }());
  EXPECT_EQ(unknown_flag->wait(kTimeout), 2);
  EXPECT_TRUE(contains(unknown_flag->output(), "no.such.property")) << unknown_flag->output();

  auto unknown_env = run("unknown-env", workerArgs(good.string()),
                         {{"TD_KAFKA_NO_SUCH_THING", "1"}});
  EXPECT_EQ(unknown_env->wait(kTimeout), 2);
  EXPECT_TRUE(contains(unknown_env->output(), "no.such.thing")) << unknown_env->output();

  auto bad_value = run("bad-value", [&] {
    auto a = workerArgs(good.string());
    a.insert(a.end(), {"-X", "linger.ms=soon"});
    return a;
  }());
  EXPECT_EQ(bad_value->wait(kTimeout), 2);
  EXPECT_TRUE(contains(bad_value->output(), "linger.ms")) << bad_value->output();

  auto bad_schema = run("bad-schema", workerArgs(bad.string()));
  EXPECT_EQ(bad_schema->wait(kTimeout), 2);
  EXPECT_TRUE(contains(bad_schema->output(), "bad.yaml:5:5")) << bad_schema->output();

  auto heartbeat = run("heartbeat", {TD_COORDINATOR_BIN, "--bootstrap-server", "127.0.0.1:1",
                                     "--lease-ms", "2000", "--heartbeat-interval-ms", "2000"});
  EXPECT_EQ(heartbeat->wait(kTimeout), 2);
  EXPECT_TRUE(contains(heartbeat->output(), "must be at most half of --lease-ms"))
      << heartbeat->output();

  auto coordinator_x = run("coordinator-x", {TD_COORDINATOR_BIN, "--bootstrap-server",
                                             "127.0.0.1:1"},
                           {{"TD_KAFKA_SESSION_TIMEOUT_MS", "never"}});
  EXPECT_EQ(coordinator_x->wait(kTimeout), 2);
  EXPECT_TRUE(contains(coordinator_x->output(), "session.timeout.ms")) << coordinator_x->output();
}

}  // namespace
}  // namespace td::testing
