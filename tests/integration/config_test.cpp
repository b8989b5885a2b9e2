// The real binaries' configuration: --config FILE under TD_* variables under flags, shown by
// --print-config with secrets redacted (no broker needed: it prints and exits 0), and
// --log-format json writing one parseable JSON object per line.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Config, CoordinatorPrintsFlagOverEnvironmentOverFileAndRedactsSecrets) {
  TempDir dir;
  const auto file = (dir.path() / "coordinator.yaml").string();
  std::ofstream(file) << "bootstrap-server: broker-1:9093\n"
                         "lease-ms: 4000\n"
                         "heartbeat-interval-ms: 900\n"
                         "topic-prefix: prod.td.\n"
                         "kafka:\n"
                         "  security.protocol: SASL_SSL\n"
                         "  sasl.mechanism: SCRAM-SHA-512\n"
                         "  sasl.username: td\n"
                         "  sasl.password: file-secret-1\n";
  Process p(
      {.args = {TD_COORDINATOR_BIN, "--config", file, "--print-config", "--heartbeat-interval-ms",
                "700", "-X", "sasl.oauthbearer.config=flag-secret-2"},
       .env = {{"TD_LEASE_MS", "3000"},
               {"TD_HEARTBEAT_INTERVAL_MS", "800"},
               {"TD_KAFKA_SSL_KEY_PASSWORD", "env-secret-3"},
               {"TD_KAFKA_SASL_USERNAME", "td-env"}},
       .output = dir.path() / "out"});
  ASSERT_EQ(p.wait(kTimeout), 0) << p.output();
  const std::string out = p.output();
  EXPECT_TRUE(contains(out, "heartbeat-interval-ms: 700  # flag")) << out;
  EXPECT_TRUE(contains(out, "lease-ms: 3000  # env TD_LEASE_MS")) << out;
  EXPECT_TRUE(contains(out, "topic-prefix: prod.td.  # file " + file + ":4")) << out;
  EXPECT_TRUE(contains(out, "bootstrap-server: broker-1:9093  # file")) << out;
  EXPECT_TRUE(contains(out, "consumer-group: td-coordinator  # default")) << out;
  EXPECT_TRUE(contains(out, "sasl.username: td-env  # env TD_KAFKA_SASL_USERNAME")) << out;
  EXPECT_TRUE(contains(out, "sasl.mechanism: SCRAM-SHA-512  # file")) << out;
  EXPECT_TRUE(contains(out, "sasl.password: \"[redacted]\"")) << out;
  EXPECT_TRUE(contains(out, "ssl.key.password: \"[redacted]\"")) << out;
  EXPECT_TRUE(contains(out, "sasl.oauthbearer.config: \"[redacted]\"")) << out;
  for (const char* secret : {"file-secret-1", "flag-secret-2", "env-secret-3"}) {
    EXPECT_FALSE(contains(out, secret)) << out;
  }
}

TEST(Config, WorkerTakesEveryRequiredOptionFromFileAndEnvironment) {
  TempDir dir;
  const auto file = (dir.path() / "worker.yaml").string();
  // --print-config loads the schema as a start would (exit 2 if it could not).
  const auto schema = (dir.path() / "schema.yaml").string();
  std::ofstream(schema) << "name: s\nsteps:\n  - id: a\n    run: 'true'\n";
  std::ofstream(file) << "bootstrap-server: broker-1:9093\n"
                         "schema: " << schema << "\n"
                         "peer-id: from-file\n"
                         "repository: repo\n"
                         "base-ref: main\n"
                         "change-ref: c1\n"
                         "builds-on: [c0, c00]\n"
                         "remote-cache-id: cache\n"
                         "log-format: json\n"
                         "kafka: {sasl.password: file-secret-1}\n";
  Process p({.args = {TD_WORKER_BIN, "--print-config", "--join-timeout", "7"},
             .env = {{"TD_CONFIG", file}, {"TD_PEER_ID", "from-env"}},
             .output = dir.path() / "out"});
  ASSERT_EQ(p.wait(kTimeout), 0) << p.output();
  const std::string out = p.output();
  EXPECT_TRUE(contains(out, "# config file: " + file + " (env TD_CONFIG)")) << out;
  EXPECT_TRUE(contains(out, "peer-id: from-env  # env TD_PEER_ID")) << out;
  EXPECT_TRUE(contains(out, "join-timeout: 7  # flag")) << out;
  EXPECT_TRUE(contains(out, "builds-on: [c0, c00]  # file")) << out;
  EXPECT_TRUE(contains(out, "log-format: json  # file")) << out;
  EXPECT_TRUE(contains(out, "topic-prefix: td.  # default")) << out;
  EXPECT_FALSE(contains(out, "file-secret-1")) << out;
}

TEST(Config, BadConfigExitsTwoSayingWhere) {
  TempDir dir;
  const auto file = (dir.path() / "bad.yaml").string();
  std::ofstream(file) << "bootstrap-server: b\n"
                         "lease_ms: 5000\n"
                         "exactly_once: perhaps\n";
  Process coordinator({.args = {TD_COORDINATOR_BIN, "--config", file}, .output = dir.path() / "c"});
  ASSERT_EQ(coordinator.wait(kTimeout), 2);
  EXPECT_TRUE(contains(coordinator.output(), file + ":3:15")) << coordinator.output();
  Process worker({.args = {TD_WORKER_BIN, "--config", file}, .output = dir.path() / "w"});
  ASSERT_EQ(worker.wait(kTimeout), 2);
  EXPECT_TRUE(contains(worker.output(), file + ":2:1: unknown key 'lease_ms'")) << worker.output();
  Process env({.args = {TD_COORDINATOR_BIN, "--bootstrap-server", "b"},
               .env = {{"TD_LEASE_MS", "often"}},
               .output = dir.path() / "e"});
  ASSERT_EQ(env.wait(kTimeout), 2);
  EXPECT_TRUE(contains(env.output(), "TD_LEASE_MS")) << env.output();
}

// The examples in deploy/config/ load, so they cannot rot.
TEST(Config, DeployExamplesLoad) {
  TempDir dir;
  Process coordinator({.args = {TD_COORDINATOR_BIN, "--print-config", "--config",
                                TD_SOURCE_DIR "/deploy/config/coordinator.yaml"},
                       .env = {{"TD_KAFKA_SASL_PASSWORD", "env-secret-1"}},
                       .output = dir.path() / "c"});
  ASSERT_EQ(coordinator.wait(kTimeout), 0) << coordinator.output();
  EXPECT_TRUE(contains(coordinator.output(), "security.protocol: SASL_SSL"))
      << coordinator.output();
  EXPECT_FALSE(contains(coordinator.output(), "env-secret-1")) << coordinator.output();
  Process worker(
      {.args = {TD_WORKER_BIN, "--print-config", "--config",
                TD_SOURCE_DIR "/deploy/config/worker.yaml", "--schema",
                TD_SOURCE_DIR "/examples/demo.yaml", "--peer-id", "w1",
                "--repository", "r", "--base-ref", "main", "--change-ref", "c1"},
       .output = dir.path() / "w"});
  ASSERT_EQ(worker.wait(kTimeout), 0) << worker.output();
  EXPECT_TRUE(contains(worker.output(), "remote-cache-id: bazel-cache-eu  # file"))
      << worker.output();
}

// The coordinator against a port nobody listens on logs librdkafka's connection errors; its
// client id (the coordinator id) carries a quote and a newline into every one of them.
TEST(Config, JsonLogFormatWritesOneValidObjectPerLine) {
  TempDir dir;
  Process p({.args = {TD_COORDINATOR_BIN, "--bootstrap-server", "127.0.0.1:1", "--log-format",
                      "json", "--coordinator-id", "c\"1\nx"},
             .output = dir.path() / "log"});
  ASSERT_TRUE(waitUntil(
      [&] {
        const std::string out = p.output();
        return std::count(out.begin(), out.end(), '\n') >= 3;
      },
      std::chrono::seconds(20)))
      << p.output();
  p.signal(SIGTERM);
  p.wait(kTimeout);
  const auto script = dir.path() / "check.py";
  std::ofstream(script)
      << "import json, sys\n"
         "lines = open(sys.argv[1], encoding='utf-8').read().splitlines()\n"
         "assert len(lines) >= 3, lines\n"
         "for line in lines:\n"
         "    record = json.loads(line)\n"
         "    assert set(record) == {'time', 'level', 'logger', 'message'}, line\n"
         "    assert record['time'].endswith('Z'), line\n"
         "assert any('c\"1\\nx' in json.loads(l)['message'] for l in lines), lines\n"
         "print('ok', len(lines))\n";
  Process check({.args = {TD_PYTHON3, script.string(), p.outputPath().string()},
                 .output = dir.path() / "check"});
  EXPECT_EQ(check.wait(kTimeout), 0) << check.output() << "\n" << p.output();
}

}  // namespace
}  // namespace td::testing
