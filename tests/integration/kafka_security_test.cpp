// Security on Apache Kafka (issue 14): a one-node cluster with SASL and the StandardAuthorizer
// (allow.everyone.if.no.acl.found=false, super user admin), where deploy/create-acls.sh grants
// td-coordinator and td-worker their ACLs and nothing else does.
//
// - With exactly those ACLs a coordinator and two workers complete a group, every step once,
//   with the coordinator creating td.assign topics through the broker's auto-creation and, in
//   --assign-topics admin mode, through CreateTopics and DeleteTopics.
// - A worker whose credentials or ACLs the broker refuses exits 2 within seconds, saying what
//   was refused (td-other, a principal with no ACLs, then a few at a time), and so does a
//   coordinator; --exactly-once without the transactional-id ACL is refused too.
// - Two topic prefixes on one cluster, each with its coordinators' consumer group, do not see
//   each other's groups (the second one run with --exactly-once under its ACLs).
//
// One cluster for the whole suite (a JVM broker and the ACL script cost ~20 s): the tests run
// in order and each stops the coordinators it started. Only TD_TEST_BROKER=kafka runs it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <iostream>
#include <regex>
#include <set>

#include "kafka/kafka.h"
#include "tests/integration/cluster.h"
#include "tests/support/http.h"
#include "td/v1/events.pb.h"

namespace td::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

constexpr auto kRunTimeout = std::chrono::seconds(120);
// A refused worker must end well within this (not a hang, not the join timeout).
constexpr auto kRefusalBound = std::chrono::seconds(60);

const std::string kSchema =
    "name: secure\n"
    "defaults: {timeout: 1m, max_attempts: 1}\n"
    "steps:\n"
    "  - id: compile\n    run: '" + kMarkCommand + "'\n"
    "  - id: test\n    run: '" + kMarkCommand + "'\n"
    "  - id: lint\n    run: '" + kMarkCommand + "'\n";

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class KafkaSecurity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Cluster::onApacheKafka()) return;
    const auto started = Clock::now();
    cluster_ = new Cluster(Cluster::Options{.start_coordinator = false, .sasl = true});
    // The cache's kafka-acls.sh, as an operator's PATH would have it.
    kafka_acls_ = (cluster_->kafkaToolsDir() / "kafka-acls.sh").string();
    ASSERT_TRUE(std::filesystem::exists(kafka_acls_)) << kafka_acls_;
    ASSERT_EQ(createAcls({}), 0);
    std::cout << "[ setup    ] SASL cluster and deploy/create-acls.sh in "
              << secondsSince(started) << " s" << std::endl;
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (!Cluster::onApacheKafka()) GTEST_SKIP() << "needs TD_TEST_BROKER=kafka (SASL and ACLs)";
    ASSERT_NE(cluster_, nullptr);
    schema_ = cluster_->writeSchema("secure", kSchema);
  }

  // deploy/create-acls.sh against the cluster as admin, plus `args`; its exit code.
  static int createAcls(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"/bin/bash", TD_CREATE_ACLS_SH, "--bootstrap-server",
                                     cluster_->bootstrap(), "--command-config",
                                     (cluster_->dir() / "kafka" / "admin.properties").string()};
    full.insert(full.end(), args.begin(), args.end());
    static int runs = 0;
    const auto started = Clock::now();
    Process script(Process::Options{
        .args = full,
        .env = {{"KAFKA_ACLS", kafka_acls_}},
        .output = cluster_->dir() / ("create-acls-" + std::to_string(++runs) + ".log")});
    const auto code = script.wait(std::chrono::seconds(180));
    std::cout << "[ acls     ] create-acls.sh";
    for (const auto& a : args) std::cout << ' ' << a;
    std::cout << ": exit " << code.value_or(-1) << " in " << secondsSince(started) << " s"
              << std::endl;
    EXPECT_EQ(code, 0) << script.output();
    return code.value_or(-1);
  }

  // One kafka-acls.sh call as admin granting td-other `operation` on the literal `topics`.
  static void grantOther(const std::string& operation, const std::vector<std::string>& topics) {
    std::vector<std::string> args = {"--add", "--allow-principal", "User:td-other",
                                     "--operation", operation};
    for (const auto& t : topics) args.insert(args.end(), {"--topic", t});
    const auto [code, output] = cluster_->kafkaTool("acls", args);
    ASSERT_EQ(code, 0) << output;
  }

  // Starts a worker with `extra` arguments and waits until it exits (kRefusalBound at most).
  struct Ended {
    std::optional<int> code;
    double seconds = 0;
    std::string output;
  };
  Ended runWorker(const std::string& peer, const std::string& change,
                  std::vector<std::string> extra) {
    const auto started = Clock::now();
    Process& worker = cluster_->startWorker(schema_, {peer, change, {}, std::move(extra)});
    Ended ended;
    ended.code = worker.wait(kRefusalBound);
    ended.seconds = secondsSince(started);
    ended.output = worker.output();
    std::cout << "[ worker   ] " << peer << ": exit " << ended.code.value_or(-1) << " after "
              << ended.seconds << " s" << std::endl;
    return ended;
  }

  // Every group of the events on `topic` (decoded), with the peers that joined each.
  static std::map<std::string, std::set<std::string>> groupsOn(const std::string& topic) {
    std::map<std::string, std::set<std::string>> groups;
    for (const auto& m : cluster_->readTopic(topic)) {
      td::v1::Event e;
      if (!e.ParseFromString(m.value)) continue;
      auto& peers = groups[e.group_id()];
      if (e.has_peer_joined()) peers.insert(e.peer_joined().peer_id());
    }
    return groups;
  }

  // The group `peer` joined, from the events on `topic`.
  static std::string groupOf(const std::string& peer, const std::string& topic = "td.events") {
    for (const auto& [group, peers] : groupsOn(topic)) {
      if (peers.contains(peer)) return group;
    }
    return {};
  }

  // Every step of kSchema ran exactly once in `group`, by its steps' own marks.
  static void expectEveryStepOnce(const std::string& group) {
    std::map<std::string, int> runs;
    for (const auto& mark : cluster_->marksWritten()) {
      if (mark.group == group) ++runs[mark.step];
    }
    EXPECT_EQ(runs, (std::map<std::string, int>{{"compile", 1}, {"lint", 1}, {"test", 1}}))
        << "group " << group;
  }

  static void stop(Process& coordinator) {
    coordinator.signal(SIGTERM);
    EXPECT_EQ(coordinator.wait(std::chrono::seconds(30)), 0) << coordinator.output();
  }

  static Cluster* cluster_;
  static std::string kafka_acls_;
  std::filesystem::path schema_;
};

Cluster* KafkaSecurity::cluster_ = nullptr;
std::string KafkaSecurity::kafka_acls_;

TEST_F(KafkaSecurity, PrincipalsWithTheGrantedAclsCompleteGroupsInBothAssignTopicModes) {
  auto& cluster = *cluster_;
  // --assign-topics auto: the broker creates td.assign.<group> on the coordinator's first
  // produce (auto.create.topics.enable), which needs CREATE on the prefix too.
  Process& automatic = cluster.startCoordinator("auto", {"--log-level", "debug"});
  Process& w1 = cluster.startWorker(schema_, {"a1", "change-a"});
  Process& w2 = cluster.startWorker(schema_, {"a2", "change-a"});
  ASSERT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
  ASSERT_EQ(w2.wait(kRunTimeout), 0) << cluster.logs();
  const std::string first = groupOf("a1");
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(groupOf("a2"), first);
  expectEveryStepOnce(first);
  // The workers' readers never use their placeholder consumer group, and say nothing about
  // the GROUP_AUTHORIZATION_FAILED its coordinator lookup gets.
  EXPECT_THAT(w1.output(), Not(HasSubstr("authorization failed")));
  EXPECT_THAT(w2.output(), Not(HasSubstr("authorization failed")));
  stop(automatic);

  // --assign-topics admin: CreateTopics before the group's first assignment, DeleteTopics
  // once it is forgotten (2 s after it completed).
  Process& admin = cluster.startCoordinator(
      "admin", {"--log-level", "debug", "--assign-topics", "admin", "--assign-partitions", "1",
                "--assign-replication", "1", "--finished-group-retention", "2",
                "--metrics-listen", "127.0.0.1:0"});
  Process& w3 = cluster.startWorker(schema_, {"a3", "change-b"});
  Process& w4 = cluster.startWorker(schema_, {"a4", "change-b"});
  ASSERT_EQ(w3.wait(kRunTimeout), 0) << cluster.logs();
  ASSERT_EQ(w4.wait(kRunTimeout), 0) << cluster.logs();
  const std::string second = groupOf("a3");
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(groupOf("a4"), second);
  expectEveryStepOnce(second);
  const std::string topic = "td.assign." + second;
  ASSERT_TRUE(waitUntil(
      [&] { return admin.output().find("deleted " + topic) != std::string::npos; },
      std::chrono::seconds(60)))
      << admin.output();
  std::smatch port;
  const std::string out = admin.output();
  ASSERT_TRUE(std::regex_search(out, port, std::regex("metrics on http://\\S+:(\\d+)/")));
  // The first group, restored from td.state, counts as created (its topic exists) and is
  // forgotten and deleted the same way: CreateTopics and DeleteTopics were never refused.
  const std::string page = httpGet(std::stoi(port[1]), "/metrics").body;
  EXPECT_GE(sampleOf(page, "td_coordinator_assign_topics_total{op=\"created\"}").value_or(0), 1.0)
      << page;
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"create_failed\"}"), 0.0);
  EXPECT_GE(sampleOf(page, "td_coordinator_assign_topics_total{op=\"deleted\"}").value_or(0), 1.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_assign_topics_total{op=\"delete_failed\"}"), 0.0);
  const auto [code, listed] = cluster.kafkaTool("topics", {"--list"});
  ASSERT_EQ(code, 0) << listed;
  EXPECT_THAT(listed, Not(HasSubstr(topic)));
  EXPECT_THAT(admin.output(), Not(HasSubstr("AUTHORIZATION_FAILED")));
  stop(admin);
}

// --assign-topics admin whose admin client (--admin-property) logs in as a principal an ACL
// does not allow to create topics: the refusal is logged with the topic and Kafka's reason,
// and the group completes on the topic the broker auto-creates for the coordinator's own
// principal (CREATE on the prefix, from create-acls.sh). Runs before td-other gets any ACL.
TEST_F(KafkaSecurity, AnAclRefusedTopicCreationIsLoggedAndTheGroupCompletes) {
  auto& cluster = *cluster_;
  Process& coordinator = cluster.startCoordinator(
      "refused", {"--log-level", "debug", "--assign-topics", "admin", "--assign-partitions", "1",
                  "--assign-replication", "1", "--admin-property", "sasl.username=td-other",
                  "--admin-property", "sasl.password=other-secret"});
  Process& worker = cluster.startWorker(schema_, {"r1", "change-r"});
  ASSERT_EQ(worker.wait(kRunTimeout), 0) << cluster.logs();
  const std::string group = groupOf("r1");
  ASSERT_FALSE(group.empty());
  expectEveryStepOnce(group);
  const std::string log = coordinator.output();
  EXPECT_THAT(log, HasSubstr("create topic td.assign." + group + ": Authorization failed"));
  EXPECT_THAT(log, HasSubstr("producing to it anyway"));
  stop(coordinator);
}

TEST_F(KafkaSecurity, RefusedCredentialsAndAclsEndAWorkerAtOnceWithExit2SayingWhatWasRefused) {
  auto& cluster = *cluster_;
  const std::vector<std::string> as_other = {"-X", "sasl.username=td-other", "-X",
                                             "sasl.password=other-secret"};
  const std::string needs = "td-worker's principal needs WRITE on td.registrations and "
                            "td.completions, and READ on td.joins and on the topics prefixed "
                            "td.assign.";

  // No ACLs at all: describing td.registrations is refused first.
  auto none = runWorker("o1", "change-o", as_other);
  EXPECT_EQ(none.code, 2) << none.output;
  EXPECT_THAT(none.output, HasSubstr("not authorized to write td.registrations"));
  EXPECT_THAT(none.output, HasSubstr("TOPIC_AUTHORIZATION_FAILED"));
  EXPECT_THAT(none.output, HasSubstr(needs));

  // A wrong password.
  auto wrong = runWorker("o2", "change-o", {"-X", "sasl.password=not-the-password"});
  EXPECT_EQ(wrong.code, 2) << wrong.output;
  EXPECT_THAT(wrong.output, HasSubstr("authentication failed"));
  EXPECT_THAT(wrong.output, HasSubstr("Check the credentials"));

  // A coordinator without ACLs, and one in --exactly-once mode whose transactional id has no
  // ACL (create-acls.sh ran without --exactly-once): refused at start, exit 2.
  const auto started = Clock::now();
  Process& other_coordinator = cluster.startCoordinator("other", as_other);
  EXPECT_EQ(other_coordinator.wait(kRefusalBound), 2) << other_coordinator.output();
  EXPECT_THAT(other_coordinator.output(), HasSubstr("TOPIC_AUTHORIZATION_FAILED"));
  EXPECT_THAT(other_coordinator.output(), HasSubstr("deploy/create-acls.sh"));
  Process& eos = cluster.startCoordinator("eos-refused", {"--exactly-once"});
  EXPECT_EQ(eos.wait(kRefusalBound), 2) << eos.output();
  EXPECT_THAT(eos.output(), HasSubstr("TRANSACTIONAL_ID_AUTHORIZATION_FAILED"));
  // A consumer group without an ACL: refused once running (joining the group), exit 2 too.
  Process& no_group =
      cluster.startCoordinator("no-group", {"--consumer-group", "td-not-granted"});
  EXPECT_EQ(no_group.wait(kRefusalBound), 2) << no_group.output();
  EXPECT_THAT(no_group.output(), HasSubstr("GROUP_AUTHORIZATION_FAILED"));
  std::cout << "[ refused  ] three coordinators exited in " << secondsSince(started) << " s"
            << std::endl;

  // Then td-other gets one ACL after another; each run is refused at the next thing it needs.
  // DESCRIBE on td.registrations (through READ), none on td.joins: reading the replies.
  grantOther("Read", {"td.registrations"});
  auto no_joins = runWorker("o3", "change-o", as_other);
  EXPECT_EQ(no_joins.code, 2) << no_joins.output;
  EXPECT_THAT(no_joins.output, HasSubstr("not authorized to read td.joins"));
  EXPECT_THAT(no_joins.output, HasSubstr("TOPIC_AUTHORIZATION_FAILED"));

  // READ on td.joins, WRITE on nothing: the idempotent producer is refused its producer id
  // (IdempotentWrite comes with WRITE on any topic), so the registration cannot be written.
  grantOther("Read", {"td.joins"});
  auto no_write = runWorker("o4", "change-o", as_other);
  EXPECT_EQ(no_write.code, 2) << no_write.output;
  EXPECT_THAT(no_write.output, HasSubstr("not authorized to write td.registrations"));
  EXPECT_THAT(no_write.output, HasSubstr("CLUSTER_AUTHORIZATION_FAILED"));

  // WRITE on td.completions only: the registration's delivery is refused.
  grantOther("Write", {"td.completions"});
  auto no_register = runWorker("o5", "change-o", as_other);
  EXPECT_EQ(no_register.code, 2) << no_register.output;
  EXPECT_THAT(no_register.output,
              HasSubstr("not authorized to write td.registrations: delivery to td.registrations"));
  EXPECT_THAT(no_register.output, HasSubstr("TOPIC_AUTHORIZATION_FAILED"));

  // WRITE on td.registrations too, nothing on td.assign.*: it joins a group, then may not
  // read the group's assignments.
  grantOther("Write", {"td.registrations"});
  Process& coordinator = cluster.startCoordinator("for-other", {});
  auto no_assign = runWorker("o6", "change-o", as_other);
  EXPECT_EQ(no_assign.code, 2) << no_assign.output;
  EXPECT_THAT(no_assign.output, HasSubstr("joined group="));
  EXPECT_THAT(no_assign.output, HasSubstr("not authorized to read td.assign."));
  EXPECT_THAT(no_assign.output, HasSubstr("TOPIC_AUTHORIZATION_FAILED"));
  stop(coordinator);

  for (const auto* run : {&none, &wrong, &no_joins, &no_write, &no_register, &no_assign}) {
    EXPECT_LT(run->seconds, 20.0) << run->output;
  }
}

TEST_F(KafkaSecurity, TwoTopicPrefixesOnOneClusterDoNotSeeEachOthersGroups) {
  auto& cluster = *cluster_;
  // The second prefix's topics, made as admin (as create-topics.sh would), and its ACLs:
  // another consumer group, transactional ids for --exactly-once.
  auto admin = kafka::Admin::create(
      [&] {
        kafka::Properties props{{"bootstrap.servers", cluster.bootstrap()}};
        for (auto& p : cluster.clientProperties("admin")) props.push_back(std::move(p));
        return props;
      }());
  ASSERT_TRUE(admin.has_value()) << admin.error().message();
  std::vector<kafka::NewTopic> topics;
  for (const char* name : {"registrations", "completions", "joins", "events", "dlq"}) {
    topics.push_back({.name = std::string("tdb.") + name, .partitions = 4, .replication = 1});
  }
  for (const char* name : {"state", "step-stats"}) {
    topics.push_back({.name = std::string("tdb.") + name, .partitions = 4, .replication = 1,
                      .config = {{"cleanup.policy", "compact"}}});
  }
  for (const auto& outcome : (*admin)->createTopics(topics, std::chrono::seconds(30))) {
    ASSERT_TRUE(outcome.status.has_value()) << outcome.status.error().message();
  }
  ASSERT_EQ(createAcls({"--prefix", "tdb.", "--consumer-group", "tdb-coordinator",
                        "--exactly-once"}),
            0);

  const std::vector<std::string> prefix_b = {"--topic-prefix", "tdb."};
  Process& coordinator_a = cluster.startCoordinator("prefix-a", {});
  Process& coordinator_b = cluster.startCoordinator(
      "prefix-b", {"--topic-prefix", "tdb.", "--consumer-group", "tdb-coordinator",
                   "--exactly-once", "--assign-topics", "admin", "--assign-replication", "1"});
  // One schema and change for all four: on shared topics they would make one group.
  Process& a1 = cluster.startWorker(schema_, {"pa1", "change-p"});
  Process& b1 = cluster.startWorker(schema_, {"pb1", "change-p", {}, prefix_b});
  Process& a2 = cluster.startWorker(schema_, {"pa2", "change-p"});
  Process& b2 = cluster.startWorker(schema_, {"pb2", "change-p", {}, prefix_b});
  // On failure the coordinators' logs come last: a CI log keeps the end of long output.
  for (Process* w : {&a1, &b1, &a2, &b2}) {
    ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs("worker") << cluster.logs("coordinator");
  }

  const auto groups_a = groupsOn("td.events");
  const auto groups_b = groupsOn("tdb.events");
  const std::string group_a = groupOf("pa1", "td.events");
  const std::string group_b = groupOf("pb1", "tdb.events");
  ASSERT_FALSE(group_a.empty());
  ASSERT_FALSE(group_b.empty());
  EXPECT_NE(group_a, group_b);
  EXPECT_EQ(groups_a.at(group_a), (std::set<std::string>{"pa1", "pa2"}));
  EXPECT_EQ(groups_b.at(group_b), (std::set<std::string>{"pb1", "pb2"}));
  for (const auto& [group, peers] : groups_a) {
    EXPECT_FALSE(groups_b.contains(group)) << group << " is on both prefixes' td.events";
    EXPECT_FALSE(peers.contains("pb1") || peers.contains("pb2")) << "td.events saw a tdb. peer";
  }
  for (const auto& [group, peers] : groups_b) {
    EXPECT_FALSE(peers.contains("pa1") || peers.contains("pa2")) << "tdb.events saw a td. peer";
  }
  expectEveryStepOnce(group_a);
  expectEveryStepOnce(group_b);
  EXPECT_THAT(coordinator_b.output(), HasSubstr("exactly-once"));
  stop(coordinator_a);
  stop(coordinator_b);

  // td-audit reads tdb.events with the -X credentials on every client it makes (its
  // partition-count lookup used to connect without them, and timed out).
  std::vector<std::string> audit = {TD_AUDIT_BIN, "verify", "--bootstrap-server",
                                    cluster.bootstrap(), "--topic-prefix", "tdb."};
  for (auto& arg : cluster.clientArgs("admin")) audit.push_back(std::move(arg));
  Process verify({.args = audit, .output = cluster.dir() / "td-audit-tdb.out"});
  EXPECT_EQ(verify.wait(std::chrono::seconds(60)), 0) << verify.output();
  EXPECT_THAT(verify.output(), HasSubstr("0 violation(s)"));
}

}  // namespace
}  // namespace td::testing
