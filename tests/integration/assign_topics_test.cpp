// Assignment topics through the Admin API (issue 8): td-coordinator --assign-topics admin creates
// each group's td.assign topic with the configured partitions, replication and topic settings
// before its first output to it, deletes it once the group is forgotten, and has a forgotten
// group's topic deleted again by the partition's next owner (a deletion lost in a crash). A
// refused creation is logged and loses nothing.
//
// On Apache Kafka (TD_TEST_BROKER=kafka) the real Admin API does it, on a broker that does not
// auto-create topics, so a group's records can only land on a topic the coordinator made; a
// creation Kafka refuses (a replication factor the cluster cannot meet) is logged and the
// group completes on the topic the broker auto-creates.
//
// The embedded broker implements neither CreateTopics nor DeleteTopics, so there the
// coordinator's admin client is pointed (--admin-property bootstrap.servers=...) at
// tests/integration/fake_admin_broker.py, which answers those requests and logs them; groups
// run on the embedded broker, which auto-creates the topics as before. The stand-in stays for
// what Kafka cannot easily be made to do on one machine: refuse every deletion of one topic
// (ARefusedDeletionIsRetriedThenGivenUp, on both brokers).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include <regex>

#include "coordinator/kafka/assign_topics.h"
#include "tests/integration/cluster.h"
#include "tests/support/http.h"

namespace td::testing {
namespace {

using ::testing::HasSubstr;

constexpr auto kRunTimeout = std::chrono::seconds(90);

const std::string kSchema =
    "name: admin\n"
    "defaults: {timeout: 1m, max_attempts: 1}\n"
    "steps:\n"
    "  - {id: a, run: 'true'}\n"
    "  - {id: b, run: 'true'}\n";

// One request the fake answered (a line of its --log).
struct AdminRequest {
  std::string api;                  // "CreateTopics" or "DeleteTopics"
  std::vector<std::string> topics;  // names
  std::string line;                 // the whole JSON line
  std::int64_t at_ms = 0;
};

class FakeAdmin {
 public:
  explicit FakeAdmin(const std::filesystem::path& dir, const std::string& refuse = "",
                     const std::string& refuse_delete = "")
      : address_file_(dir / "fake-admin.address"), log_(dir / "fake-admin.log") {
    std::vector<std::string> args = {TD_PYTHON3, TD_FAKE_ADMIN_PY, "--address-file",
                                     address_file_.string(), "--log", log_.string()};
    if (!refuse.empty()) args.insert(args.end(), {"--refuse", refuse});
    if (!refuse_delete.empty()) args.insert(args.end(), {"--refuse-delete", refuse_delete});
    process_ = std::make_unique<Process>(
        Process::Options{.args = args, .output = dir / "fake-admin.out"});
    EXPECT_TRUE(waitUntil([&] { return std::filesystem::exists(address_file_); },
                          std::chrono::seconds(20)))
        << process_->output();
    address_ = readFile(address_file_);
    while (!address_.empty() && address_.back() == '\n') address_.pop_back();
  }
  const std::string& address() const { return address_; }

  // Every request so far. Lines are small and written whole by one write().
  std::vector<AdminRequest> requests() const {
    std::vector<AdminRequest> out;
    std::ifstream in(log_);
    for (std::string line; std::getline(in, line);) {
      AdminRequest r;
      r.line = line;
      r.api = line.find("\"CreateTopics\"") != std::string::npos ? "CreateTopics"
                                                                  : "DeleteTopics";
      for (std::size_t at = line.find("td.assign."); at != std::string::npos;
           at = line.find("td.assign.", at + 1)) {
        r.topics.push_back(line.substr(at, line.find('"', at) - at));
      }
      const auto at = line.find("\"at_ms\": ");
      if (at != std::string::npos) r.at_ms = std::stoll(line.substr(at + 9));
      out.push_back(std::move(r));
    }
    return out;
  }
  // The requests of `api` that name `topic`.
  std::vector<AdminRequest> requestsFor(const std::string& api, const std::string& topic) const {
    std::vector<AdminRequest> out;
    for (auto& r : requests()) {
      if (r.api == api && std::find(r.topics.begin(), r.topics.end(), topic) != r.topics.end()) {
        out.push_back(std::move(r));
      }
    }
    return out;
  }

 private:
  std::filesystem::path address_file_;
  std::filesystem::path log_;
  std::unique_ptr<Process> process_;
  std::string address_;
};

std::vector<std::string> adminArgs(const FakeAdmin& admin) {
  return {"--assign-topics",       "admin",
          "--assign-partitions",   "1",
          "--assign-replication",  "1",
          "--assign-topic-config", "retention.ms=86400000",
          "--admin-property",      "bootstrap.servers=" + admin.address(),
          "--admin-timeout-ms",    "5000",
          "--finished-group-retention", "2"};
}

// The group founded by `peer` and the wall time its GroupCompleted was decided (0: none yet).
std::pair<std::string, std::int64_t> groupOf(const Cluster& cluster, const std::string& peer) {
  std::string group;
  std::int64_t completed_ms = 0;
  for (const auto& e : cluster.events()) {
    if (e.has_group_created() && e.group_created().founding_peer_id() == peer) group = e.group_id();
    if (!group.empty() && e.group_id() == group && e.has_group_completed()) {
      completed_ms = e.timestamp_ms();
    }
  }
  return {group, completed_ms};
}

// Two peers p1 and p2 of `schema` started together; waits until both exit 0 and returns their
// group (either may have founded it) and the wall time its GroupCompleted was decided.
std::pair<std::string, std::int64_t> runPair(Cluster& cluster, const std::filesystem::path& schema) {
  Process& w1 = cluster.startWorker(schema, {"p1", "c1"});
  Process& w2 = cluster.startWorker(schema, {"p2", "c1"});
  EXPECT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_EQ(w2.wait(kRunTimeout), 0) << cluster.logs();
  auto found = groupOf(cluster, "p1");
  if (found.first.empty()) found = groupOf(cluster, "p2");
  EXPECT_FALSE(found.first.empty()) << cluster.logs("coordinator");
  return found;
}

TEST(AssignTopics, AdminModeCreatesEachGroupsTopicBeforeItsOutputAndDeletesItOnceForgotten) {
  if (Cluster::onApacheKafka()) GTEST_SKIP() << "the stand-in's case; Apache Kafka runs ApacheKafka*";
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  FakeAdmin admin(cluster.dir());
  auto args = adminArgs(admin);
  args.insert(args.end(), {"--metrics-listen", "127.0.0.1:0"});
  Process& coordinator = cluster.startCoordinator(args);
  auto schema = cluster.writeSchema("admin", kSchema);
  const auto [group, completed_ms] = runPair(cluster, schema);
  ASSERT_FALSE(group.empty());
  ASSERT_GT(completed_ms, 0);
  const std::string topic = "td.assign." + group;

  // Created once (both peers are one group), with the configured settings, before the first
  // record of the topic was produced.
  const auto created = admin.requestsFor("CreateTopics", topic);
  ASSERT_EQ(created.size(), 1u) << readFile(cluster.dir() / "fake-admin.log");
  EXPECT_THAT(created[0].line, HasSubstr("\"partitions\": 1, \"replication\": 1, "
                                         "\"config\": {\"retention.ms\": \"86400000\"}"));
  const auto records = cluster.readTopic(topic);
  ASSERT_FALSE(records.empty());
  EXPECT_LE(created[0].at_ms, records.front().timestamp_ms);
  EXPECT_TRUE(admin.requestsFor("DeleteTopics", topic).empty())
      << "deleted before the group was forgotten";

  // Deleted once the group is forgotten: --finished-group-retention (2 s) after it finished.
  std::vector<AdminRequest> deleted;
  ASSERT_TRUE(waitUntil(
      [&] {
        deleted = admin.requestsFor("DeleteTopics", topic);
        return !deleted.empty();
      },
      std::chrono::seconds(30)))
      << cluster.logs("coordinator");
  EXPECT_GE(deleted[0].at_ms, completed_ms + 2000);
  EXPECT_TRUE(waitUntil(
      [&] { return cluster.logs("coordinator").find("deleted " + topic) != std::string::npos; },
      std::chrono::seconds(10)));

  // And counted on /metrics.
  std::smatch port;
  const std::string out = coordinator.output();
  ASSERT_TRUE(std::regex_search(out, port, std::regex("metrics on http://\\S+:(\\d+)/")));
  const std::string page = httpGet(std::stoi(port[1]), "/metrics").body;
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"created\"}"), 1.0) << page;
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"deleted\"}"), 1.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"create_failed\"}"), 0.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topic_deletes_pending"), 0.0);
}

TEST(AssignTopics, AForgottenGroupsTopicIsDeletedAgainByThePartitionsNextOwner) {
  if (Cluster::onApacheKafka()) GTEST_SKIP() << "the stand-in's case; Apache Kafka runs ApacheKafka*";
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  FakeAdmin admin(cluster.dir());
  Process& first = cluster.startCoordinator("first", adminArgs(admin));
  auto schema = cluster.writeSchema("admin", kSchema);
  ASSERT_EQ(cluster.startWorker(schema, {"p1", "c1"}).wait(kRunTimeout), 0) << cluster.logs();
  const std::string topic = "td.assign." + groupOf(cluster, "p1").first;
  ASSERT_TRUE(waitUntil([&] { return !admin.requestsFor("DeleteTopics", topic).empty(); },
                        std::chrono::seconds(30)))
      << cluster.logs("coordinator");

  // The next owner restores the group as forgotten and deletes its topic again, in case the
  // first owner's deletion was lost (deleting a missing topic counts as done).
  first.signal(SIGTERM);
  ASSERT_EQ(first.wait(std::chrono::seconds(30)), 0) << cluster.logs("coordinator");
  cluster.startCoordinator("second", adminArgs(admin));
  ASSERT_TRUE(waitUntil([&] { return admin.requestsFor("DeleteTopics", topic).size() >= 2; },
                        std::chrono::seconds(60)))
      << cluster.logs("coordinator");
}

TEST(AssignTopics, ARefusedCreationIsLoggedAndTheGroupStillRuns) {
  if (Cluster::onApacheKafka()) GTEST_SKIP() << "the stand-in's case; Apache Kafka runs ApacheKafka*";
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  FakeAdmin admin(cluster.dir(), /*refuse=*/"td\\.assign\\.");
  Process& coordinator = cluster.startCoordinator(adminArgs(admin));
  auto schema = cluster.writeSchema("admin", kSchema);
  ASSERT_EQ(cluster.startWorker(schema, {"p1", "c1"}).wait(kRunTimeout), 0) << cluster.logs();
  const std::string topic = "td.assign." + groupOf(cluster, "p1").first;
  EXPECT_EQ(admin.requestsFor("CreateTopics", topic).size(), 1u) << "tried once per group";
  const std::string log = coordinator.output();
  EXPECT_THAT(log, HasSubstr("create topic " + topic));
  EXPECT_THAT(log, HasSubstr("uthorization"));
  EXPECT_THAT(log, HasSubstr("producing to it anyway"));
}

// Whether `topic` exists now (a fresh client's metadata; the brokers of these tests do not
// auto-create topics).
bool topicExists(const Cluster& cluster, const std::string& topic) {
  auto producer = cluster.producer();
  return producer && producer->partitionCount(topic, std::chrono::milliseconds(1500)).has_value();
}

// The coordinator's /metrics page (its --metrics-listen 127.0.0.1:0 port from its log).
std::string metricsPage(Process& coordinator) {
  std::smatch port;
  const std::string out = coordinator.output();
  if (!std::regex_search(out, port, std::regex("metrics on http://\\S+:(\\d+)/"))) return "";
  return httpGet(std::stoi(port[1]), "/metrics").body;
}

TEST(AssignTopics, ApacheKafkaCreatesOnePartitionTopicsBeforeTheirFirstRecordAndDeletesThem) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (a real Admin API)";
  constexpr int kRetentionS = 15;
  Cluster cluster(Cluster::Options{
      .start_coordinator = false,
      .kafka_args = {"--broker-property", "auto.create.topics.enable=false"}});
  const std::vector<std::string> args = {
      "--assign-topics", "admin", "--assign-partitions", "1", "--assign-replication", "1",
      "--assign-topic-config", "retention.ms=86400000", "--admin-timeout-ms", "10000",
      "--finished-group-retention", std::to_string(kRetentionS),
      "--metrics-listen", "127.0.0.1:0"};
  Process& coordinator = cluster.startCoordinator(args);
  auto schema = cluster.writeSchema("admin", kSchema);
  const auto [group, completed_ms] = runPair(cluster, schema);
  ASSERT_FALSE(group.empty());
  const std::string topic = "td.assign." + group;

  // The group ran on its topic, which only the coordinator can have made (no auto-creation),
  // so it was made before its first record; one partition, the configured retention.
  EXPECT_FALSE(cluster.readTopic(topic).empty());
  auto producer = cluster.producer();
  ASSERT_TRUE(producer);
  EXPECT_EQ(producer->partitionCount(topic, std::chrono::seconds(10)).value_or(-1), 1);
  const auto [rc, described] = cluster.kafkaTool(
      "configs", {"--describe", "--entity-type", "topics", "--entity-name", topic});
  EXPECT_EQ(rc, 0) << described;
  EXPECT_THAT(described, HasSubstr("retention.ms=86400000")) << described;

  // Deleted once forgotten, not before: the retention after group_completed. The last time
  // it was seen is within a poll (milliseconds; 5 s of slack for a stalled machine) of its
  // deletion.
  std::int64_t last_seen_ms = 0;
  ASSERT_TRUE(waitUntil(
      [&] {
        if (!topicExists(cluster, topic)) return true;
        last_seen_ms = wallMs();
        return false;
      },
      std::chrono::seconds(kRetentionS + 60)))
      << cluster.logs("coordinator");
  EXPECT_GE(last_seen_ms, completed_ms + (kRetentionS - 5) * 1000) << "deleted too early";
  const std::string page = metricsPage(coordinator);
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"created\"}"), 1.0) << page;
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"deleted\"}"), 1.0) << page;
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"create_failed\"}"), 0.0);

  // The partition's next owner deletes the forgotten group's topic again; Kafka says it is
  // unknown, which counts as deleted.
  coordinator.signal(SIGTERM);
  ASSERT_EQ(coordinator.wait(std::chrono::seconds(30)), 0) << cluster.logs("coordinator");
  Process& next = cluster.startCoordinator(args);
  EXPECT_TRUE(waitUntil(
      [&] {
        return sampleOf(metricsPage(next), "td_coordinator_assign_topics_total{op=\"deleted\"}")
                   .value_or(0) >= 1.0;
      },
      std::chrono::seconds(60)))
      << next.output();
}

TEST(AssignTopics, ApacheKafkaRefusedCreationIsLoggedAndTheGroupCompletes) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (a real Admin API)";
  // Replication 3 on a one-node cluster: Kafka refuses the creation (INVALID_REPLICATION_FACTOR);
  // the broker's auto-creation makes the topic when the coordinator produces to it.
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  Process& coordinator = cluster.startCoordinator(
      {"--assign-topics", "admin", "--assign-partitions", "1", "--assign-replication", "3",
       "--admin-timeout-ms", "10000"});
  auto schema = cluster.writeSchema("admin", kSchema);
  ASSERT_EQ(cluster.startWorker(schema, {"p1", "c1"}).wait(kRunTimeout), 0) << cluster.logs();
  const std::string topic = "td.assign." + groupOf(cluster, "p1").first;
  const std::string log = coordinator.output();
  EXPECT_THAT(log, HasSubstr("create topic " + topic));
  EXPECT_THAT(log, HasSubstr("eplication factor"));
  EXPECT_THAT(log, HasSubstr("producing to it anyway"));
}

// AssignTopics itself, with a short retry backoff: a refused deletion is tried
// delete_attempts times, then given up; the others are deleted once; counters follow.
TEST(AssignTopics, ARefusedDeletionIsRetriedThenGivenUp) {
  using std::chrono::milliseconds;
  TempDir dir;
  FakeAdmin admin(dir.path(), "", /*refuse_delete=*/"refused");
  coordinator::AssignTopicCounters counters;
  const coordinator::AssignTopicOptions options{.create = true,
                                                .partitions = 1,
                                                .replication = 1,
                                                .timeout = milliseconds(5000),
                                                .delete_attempts = 3,
                                                .retry_backoff = milliseconds(50)};
  auto topics = coordinator::AssignTopics::create(
      options, {{"bootstrap.servers", admin.address()}}, protocol::Topics("td."), counters);
  ASSERT_TRUE(topics) << topics.error().message();
  (*topics)->ensure({"ok", "refused", "ok"});
  EXPECT_EQ(counters.created.load(), 2u);
  EXPECT_EQ(admin.requests().size(), 1u) << "one request for a cycle's new groups";

  Millis now{0};
  (*topics)->retire("ok", now);
  (*topics)->retire("refused", now);
  EXPECT_EQ(counters.deletes_pending.load(), 2);
  ASSERT_TRUE(waitUntil(
      [&] {
        now += milliseconds(10);   // the coordinator's clock, as the tick passes it
        (*topics)->poll(now);
        return counters.deletes_pending.load() == 0;
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(counters.deleted.load(), 1u);
  EXPECT_EQ(counters.delete_failures.load(), 3u);
  EXPECT_EQ(admin.requestsFor("DeleteTopics", "td.assign.ok").size(), 1u);
  EXPECT_EQ(admin.requestsFor("DeleteTopics", "td.assign.refused").size(), 3u);
  // Given up: later ticks send nothing more.
  for (int i = 0; i < 20; ++i) (*topics)->poll(now += milliseconds(100));
  EXPECT_EQ(admin.requests().size(), 1u + 1u + 2u) << "create, first deletes, two retries";
}

}  // namespace
}  // namespace td::testing
