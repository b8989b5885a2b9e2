// deploy/ against Apache Kafka (issue 14): what deploy/README.md claims and can run without a
// container engine runs here on a three-node KRaft cluster (replication 3, as deploy/ assumes)
// with SASL and an ACL authorizer that denies whatever no ACL allows:
//   - deploy/create-topics.sh, with Kafka's own kafka-topics.sh, creates exactly the topics the
//     coordinator needs with the counts, compaction and retention it documents, and is
//     idempotent;
//   - deploy/create-acls.sh grants the coordinator's and the workers' principals their ACLs;
//   - td-coordinator runs as deploy/systemd/td-coordinator@.service starts it (TD_CONFIG =
//     deploy/config/coordinator.yaml, the unit's EnvironmentFiles, `--coordinator-id %i`), and
//     td-worker with deploy/config/worker.yaml, each with only what differs on this machine
//     overridden by TD_* variables: the address, SASL_PLAINTEXT instead of SASL_SSL (this
//     cluster has no TLS) and the password (the env file's placeholder);
//   - a group completes, and its td.assign topic was created by the coordinator with
//     coordinator.yaml's assign-replication 3 and min.insync.replicas=2.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

using ::testing::HasSubstr;

// KEY=VALUE lines of an EnvironmentFile (comments and blanks skipped), as systemd reads it.
std::vector<std::pair<std::string, std::string>> environmentFile(const std::filesystem::path& path) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq != std::string::npos) out.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

// The sasl.password scripts/kafka-broker gave `user`.
std::string passwordOf(const Cluster& cluster, const std::string& user) {
  for (const auto& [key, value] : cluster.clientProperties(user)) {
    if (key == "sasl.password") return value;
  }
  return "";
}

// `base` with `overrides` applied (one entry per name, the override's value).
std::vector<std::pair<std::string, std::string>> withOverrides(
    std::vector<std::pair<std::string, std::string>> base,
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  for (const auto& [key, value] : overrides) {
    std::erase_if(base, [&](const auto& kv) { return kv.first == key; });
    base.emplace_back(key, value);
  }
  return base;
}

TEST(DeployOnApacheKafka, TopicAndAclScriptsSystemdCommandLinesAndConfigsRunAGroup) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only";
  Cluster cluster(Cluster::Options{
      .start_coordinator = false, .kafka_nodes = 3, .sasl = true, .kafka_args = {"--no-topics"}});
  const std::filesystem::path deploy = std::filesystem::path(TD_SOURCE_DIR) / "deploy";
  const auto tools = cluster.kafkaToolsDir();
  const std::string admin_config = (cluster.dir() / "kafka" / "admin.properties").string();

  // The topic script, twice (idempotent), with Kafka's own kafka-topics.sh, as the admin.
  for (int run = 1; run <= 2; ++run) {
    Process script(Process::Options{
        .args = {"/bin/bash", (deploy / "create-topics.sh").string(), "--bootstrap-server",
                 cluster.bootstrap(), "--partitions", "6", "--replication-factor", "3",
                 "--command-config", admin_config},
        .env = {{"KAFKA_TOPICS", (tools / "kafka-topics.sh").string()}},
        .output = cluster.dir() / ("create-topics-" + std::to_string(run) + ".log")});
    ASSERT_EQ(script.wait(std::chrono::seconds(240)), 0) << script.output();
    EXPECT_THAT(script.output(), HasSubstr("topics under 'td.' ready (6 partitions)"));
  }
  // The ACL script: everything the two principals may do.
  Process acls(Process::Options{
      .args = {"/bin/bash", (deploy / "create-acls.sh").string(), "--bootstrap-server",
               cluster.bootstrap(), "--command-config", admin_config},
      .env = {{"KAFKA_ACLS", (tools / "kafka-acls.sh").string()}},
      .output = cluster.dir() / "create-acls.log"});
  ASSERT_EQ(acls.wait(std::chrono::seconds(240)), 0) << acls.output();
  const auto [rc, described] = cluster.kafkaTool("topics", {"--describe"});
  ASSERT_EQ(rc, 0) << described;
  for (const char* topic : {"td.registrations", "td.completions", "td.joins", "td.state"}) {
    EXPECT_THAT(described, HasSubstr(std::string("Topic: ") + topic + "\tTopicId"));
    EXPECT_EQ(cluster.producer()->partitionCount(topic, std::chrono::seconds(10)).value_or(-1), 6)
        << topic;
  }
  for (const char* topic : {"td.step-stats", "td.events", "td.dlq", "td.logs"}) {
    EXPECT_EQ(cluster.producer()->partitionCount(topic, std::chrono::seconds(10)).value_or(-1), 3)
        << topic;
  }
  EXPECT_THAT(described, HasSubstr("ReplicationFactor: 3"));
  const auto [rc_state, state_config] = cluster.kafkaTool(
      "configs", {"--describe", "--entity-type", "topics", "--entity-name", "td.state"});
  EXPECT_THAT(state_config, HasSubstr("cleanup.policy=compact")) << state_config;
  const auto [rc_events, events_config] = cluster.kafkaTool(
      "configs", {"--describe", "--entity-type", "topics", "--entity-name", "td.events"});
  EXPECT_THAT(events_config, HasSubstr("retention.ms=604800000")) << events_config;
  const auto [rc_logs, logs_config] = cluster.kafkaTool(
      "configs", {"--describe", "--entity-type", "topics", "--entity-name", "td.logs"});
  EXPECT_THAT(logs_config, HasSubstr("retention.ms=259200000")) << logs_config;
  EXPECT_THAT(logs_config, HasSubstr("compression.type=producer")) << logs_config;

  // td-coordinator@c1.service: its Environment, EnvironmentFiles and ExecStart.
  std::vector<std::pair<std::string, std::string>> unit_env = {
      {"TD_CONFIG", (deploy / "config" / "coordinator.yaml").string()}};
  for (auto& kv : environmentFile(deploy / "systemd" / "coordinator.env.example")) unit_env.push_back(kv);
  for (auto& kv : environmentFile(deploy / "systemd" / "coordinator-instance.env.example")) {
    unit_env.push_back(kv);
  }
  unit_env = withOverrides(unit_env, {{"TD_BOOTSTRAP_SERVER", cluster.bootstrap()},
                                      {"TD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"},
                                      {"TD_KAFKA_SASL_PASSWORD", passwordOf(cluster, "td-coordinator")},
                                      {"TD_METRICS_LISTEN", "127.0.0.1:0"},
                                      {"TD_LOG_LEVEL", "debug"}});
  Process coordinator(Process::Options{.args = {TD_COORDINATOR_BIN, "--coordinator-id", "c1"},
                                       .env = unit_env,
                                       .output = cluster.dir() / "coordinator-unit.log"});

  // A CI job's td-worker with deploy/config/worker.yaml.
  const auto schema = cluster.writeSchema(
      "deployed", "name: deployed\nsteps:\n  - id: a\n    run: '" + kMarkCommand +
                      "'\n  - id: b\n    run: '" + kMarkCommand + "'\n");
  std::vector<std::unique_ptr<Process>> workers;
  for (const char* peer : {"job-1", "job-2"}) {
    std::filesystem::create_directories(cluster.dir() / peer);
    workers.push_back(std::make_unique<Process>(Process::Options{
        .args = {TD_WORKER_BIN, "--schema", schema.string(), "--peer-id", peer, "--repository",
                 "https://example.com/app.git", "--base-ref", "main", "--change-ref", "c1"},
        .env = {{"TD_CONFIG", (deploy / "config" / "worker.yaml").string()},
                {"TD_BOOTSTRAP_SERVER", cluster.bootstrap()},
                {"TD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"},
                {"TD_KAFKA_SASL_PASSWORD", passwordOf(cluster, "td-worker")},
                {"TD_TEST_MARKS", cluster.marks().string()}},
        .cwd = cluster.dir() / peer,
        .output = cluster.dir() / (std::string("worker-") + peer + ".log")}));
  }
  for (auto& w : workers) {
    ASSERT_EQ(w->wait(std::chrono::seconds(120)), 0)
        << w->output() << "\n---- coordinator\n" << coordinator.output();
  }
  EXPECT_EQ(cluster.runsOf("a") + cluster.runsOf("b"), 2) << "each step once";

  // The group's td.assign topic, as coordinator.yaml asks: replication 3, min.insync.replicas=2.
  std::string group;
  for (const auto& e : cluster.events()) {
    if (e.has_group_created()) group = e.group_id();
  }
  ASSERT_FALSE(group.empty());
  const auto [rc_assign, assign] =
      cluster.kafkaTool("topics", {"--describe", "--topic", "td.assign." + group});
  EXPECT_EQ(rc_assign, 0) << assign;
  EXPECT_THAT(assign, HasSubstr("PartitionCount: 1"));
  EXPECT_THAT(assign, HasSubstr("ReplicationFactor: 3"));
  EXPECT_THAT(assign, HasSubstr("min.insync.replicas=2"));
  EXPECT_THAT(coordinator.output(), ::testing::Not(HasSubstr("create topic td.assign")))
      << "the creation was refused";
}

}  // namespace
}  // namespace td::testing
