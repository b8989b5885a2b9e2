// A broker that goes away for good, or is not there at all (issue 15): td-worker gives up with
// exit 3 (infrastructure) once it has heard nothing from the broker for --broker-timeout,
// naming the address it tried; SIGTERM in that state still exits 130 within seconds; and
// td-coordinator waits for a missing broker, not ready on /readyz meanwhile, instead of
// exiting. Real processes; every wait polls with a deadline.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include "tests/integration/cluster.h"
#include "tests/support/http.h"

namespace td::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kExitInfrastructure = 3;
constexpr auto kBrokerTimeout = seconds(5);
// How much later than the bound an exit may come: the worker notices within a poll (at most
// 1 s of a metadata probe or 250 ms of a flush), then closes its clients.
constexpr auto kSlack = seconds(10);

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

long long msSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

// Steps that record their run and then hold for a minute: they are still running when the
// broker goes.
std::string holdingSchema(const std::string& name, int steps) {
  std::string yaml = "name: " + name + "\ndefaults: {timeout: 5m, max_attempts: 1}\nsteps:\n";
  for (int i = 0; i < steps; ++i) {
    yaml += "  - id: s" + std::to_string(i) + "\n    run: '" + kMarkCommand + "; sleep 60'\n";
  }
  return yaml;
}

// A loopback port nobody listens on (bound, then closed; nothing else here binds it).
int unusedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(BrokerLoss, EveryWorkerExitsThreeWithinTheBoundWhenTheBrokerIsGoneForGood) {
  Cluster cluster(Cluster::Options{.broker_control = true});
  if (cluster.broker() == Cluster::Broker::kEmbedded && !cluster.hasControl()) {
    GTEST_SKIP() << "needs td-broker's control socket";
  }
  auto schema = cluster.writeSchema("gone", holdingSchema("gone", 4));
  const std::vector<std::string> bound = {"--broker-timeout",
                                          std::to_string(kBrokerTimeout.count())};
  std::vector<Process*> workers;
  for (const char* peer : {"w1", "w2"}) {
    workers.push_back(&cluster.startWorker(schema, {peer, "c1", {}, bound}));
  }
  // Both run a step, so both are past registration and following the group.
  ASSERT_TRUE(waitUntil([&] { return cluster.marksWritten().size() >= 2; }, seconds(60)))
      << cluster.logs();

  cluster.takeBrokerDown();
  const auto down_at = Clock::now();
  for (Process* w : workers) {
    const auto code = w->wait(kBrokerTimeout + kSlack);
    ASSERT_TRUE(code.has_value()) << "still running " << msSince(down_at) << " ms after the "
                                  << "broker went\n" << cluster.logs();
    EXPECT_EQ(*code, kExitInfrastructure) << cluster.logs();
    // The message names the address it tried and the bound.
    EXPECT_TRUE(contains(w->output(), "the Kafka broker at " + cluster.bootstrap() +
                                          " did not answer for"))
        << w->output();
    EXPECT_TRUE(contains(w->output(), "(--broker-timeout 5)")) << w->output();
  }
  std::cout << "[ measured ] broker gone -> both workers exited 3: " << msSince(down_at)
            << " ms (--broker-timeout 5)\n";
  // Their steps went with them (the step runner kills the process group).
  for (const auto& mark : cluster.marksWritten()) {
    EXPECT_TRUE(waitUntil([&] { return !processGroupAlive(mark.pgid); }, seconds(10)))
        << "step " << mark.step << " survived its worker";
  }
}

TEST(BrokerLoss, SigtermWhileTheBrokerIsGoneExits130WithinSeconds) {
  Cluster cluster(Cluster::Options{.broker_control = true});
  if (cluster.broker() == Cluster::Broker::kEmbedded && !cluster.hasControl()) {
    GTEST_SKIP() << "needs td-broker's control socket";
  }
  auto schema = cluster.writeSchema("term", holdingSchema("term", 1));
  Process& worker = cluster.startWorker(schema, {"w1", "c1", {}, {"--broker-timeout", "300"}});
  ASSERT_TRUE(waitUntil([&] { return !cluster.marksWritten().empty(); }, seconds(60)))
      << cluster.logs();
  cluster.takeBrokerDown();
  // The worker has noticed (its one line about the silence), so it is waiting on the broker.
  ASSERT_TRUE(waitUntil([&] { return contains(worker.output(), "no answer from the Kafka broker"); },
                        seconds(30)))
      << worker.output();
  const auto term_at = Clock::now();
  worker.signal(SIGTERM);
  const auto code = worker.wait(seconds(5));
  ASSERT_TRUE(code.has_value()) << "no exit within 5 s of SIGTERM\n" << worker.output();
  EXPECT_EQ(*code, 130) << worker.output();
  std::cout << "[ measured ] SIGTERM with the broker gone -> exit 130: " << msSince(term_at)
            << " ms\n";
}

// The broker goes while a peer runs its universe (its group completed): the universe's report
// cannot reach td.events, yet the worker exits with the universe's result (1: it exits 3)
// within seconds of its end, warning that the report did not get through.
TEST(BrokerLoss, AUniverseEndingWhileTheBrokerIsGoneStillGivesItsResult) {
  Cluster cluster(Cluster::Options{.broker_control = true});
  if (cluster.broker() == Cluster::Broker::kEmbedded && !cluster.hasControl()) {
    GTEST_SKIP() << "needs td-broker's control socket";
  }
  // The universe says it runs, then waits for the test's go and fails.
  const std::string universe =
      "touch \"$TD_TEST_MARKS/../universe-runs\"; "
      "while [ ! -e \"$TD_TEST_MARKS/../go\" ]; do sleep 0.05; done; exit 3";
  auto schema = cluster.writeSchema(
      "cut_off", "name: cut_off\nuniverse: '" + universe + "'\nsteps:\n  - id: only\n    run: true\n");
  Process& worker = cluster.startWorker(schema, {"w1", "c1", {}, {"--broker-timeout", "300"}});
  ASSERT_TRUE(waitUntil([&] { return std::filesystem::exists(cluster.dir() / "universe-runs"); },
                        seconds(60)))
      << cluster.logs();
  cluster.takeBrokerDown();
  std::ofstream(cluster.dir() / "go").close();
  const auto go_at = Clock::now();
  const auto code = worker.wait(seconds(15));
  ASSERT_TRUE(code.has_value()) << "still running 15 s after its universe ended\n"
                                << worker.output();
  EXPECT_EQ(*code, 1) << worker.output();
  EXPECT_TRUE(contains(worker.output(), "  universe: failed (exit 3) in ")) << worker.output();
  EXPECT_TRUE(contains(worker.output(), "the universe's reports did not reach the broker at " +
                                            cluster.bootstrap()))
      << worker.output();
  std::cout << "[ measured ] universe ended with the broker gone -> exit 1: " << msSince(go_at)
            << " ms\n";
}

TEST(BrokerLoss, AWorkerWithNoBrokerAtAllExitsThreeNamingTheAddress) {
  if (Cluster::requestedBroker() != Cluster::Broker::kEmbedded) {
    GTEST_SKIP() << "no broker involved: runs once, in the embedded variant";
  }
  TempDir dir;
  auto schema = dir.path() / "s.yaml";
  std::ofstream(schema) << "name: s\nsteps:\n  - id: a\n    run: 'true'\n";
  const std::string address = "127.0.0.1:" + std::to_string(unusedPort());
  const auto start = Clock::now();
  Process worker({.args = {TD_WORKER_BIN, "--bootstrap-server", address, "--schema",
                           schema.string(), "--peer-id", "w1", "--repository", "r",
                           "--base-ref", "main", "--change-ref", "c1", "--remote-cache-id", "c",
                           "--broker-timeout", "3"},
                  .output = dir.path() / "out"});
  const auto code = worker.wait(seconds(3) + kSlack);
  ASSERT_TRUE(code.has_value()) << worker.output();
  EXPECT_EQ(*code, kExitInfrastructure) << worker.output();
  EXPECT_GE(msSince(start), 3000) << "gave up before the bound\n" << worker.output();
  EXPECT_TRUE(contains(worker.output(), "the Kafka broker at " + address + " did not answer"))
      << worker.output();
}

TEST(BrokerLoss, AWorkerNoCoordinatorAnswersExitsThreeAfterTheJoinTimeout) {
  if (Cluster::requestedBroker() != Cluster::Broker::kEmbedded) {
    GTEST_SKIP() << "the broker only has to answer: runs once, in the embedded variant";
  }
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  auto schema = cluster.writeSchema("alone", holdingSchema("alone", 1));
  // Cluster::startWorker sets --join-timeout 60 itself.
  Process worker({.args = {TD_WORKER_BIN, "--bootstrap-server", cluster.bootstrap(), "--schema",
                           schema.string(), "--peer-id", "w1", "--repository", "r", "--base-ref",
                           "main", "--change-ref", "c1", "--remote-cache-id", "c",
                           "--join-timeout", "2"},
                  .output = cluster.dir() / "worker-alone.log"});
  const auto code = worker.wait(seconds(2) + kSlack);
  ASSERT_TRUE(code.has_value()) << worker.output();
  EXPECT_EQ(*code, kExitInfrastructure) << worker.output();
  EXPECT_TRUE(contains(worker.output(), "no reply from a coordinator within the join timeout"))
      << worker.output();
}

// The port the coordinator logged ("metrics on http://127.0.0.1:N/metrics ..."), or 0.
int metricsPort(const Process& coordinator) {
  std::smatch m;
  const std::string out = coordinator.output();
  if (std::regex_search(out, m, std::regex("metrics on http://\\S+:(\\d+)/metrics"))) {
    return std::stoi(m[1]);
  }
  return 0;
}

TEST(BrokerLoss, ACoordinatorStartedWithoutTheBrokerWaitsNotReadyAndBecomesReadyWhenItComes) {
  Cluster cluster(Cluster::Options{.start_coordinator = false, .broker_control = true});
  if (cluster.broker() == Cluster::Broker::kEmbedded && !cluster.hasControl()) {
    GTEST_SKIP() << "needs td-broker's control socket";
  }
  cluster.takeBrokerDown();
  Process& coordinator = cluster.startCoordinator({"--metrics-listen", "127.0.0.1:0"});
  // Before the broker answers: the metrics server is up, live, not ready, and says why.
  int port = 0;
  ASSERT_TRUE(waitUntil([&] { return (port = metricsPort(coordinator)) > 0; }, seconds(30)))
      << coordinator.output();
  EXPECT_EQ(httpGet(port, "/healthz").status, 200);
  const HttpReply ready = httpGet(port, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_TRUE(contains(ready.body, "broker unreachable")) << ready.body;
  // It keeps retrying (and says so) rather than exiting: the old code exited 2 here.
  ASSERT_TRUE(waitUntil([&] { return contains(coordinator.output(), "cannot start: the Kafka broker at"); },
                        seconds(30)))
      << coordinator.output();
  EXPECT_TRUE(coordinator.running()) << coordinator.output();
  EXPECT_EQ(httpGet(port, "/readyz").status, 503);

  cluster.bringBrokerUp();
  EXPECT_TRUE(waitUntil([&] { return httpGet(port, "/readyz").status == 200; }, seconds(90)))
      << httpGet(port, "/readyz").body << cluster.logs();
  EXPECT_TRUE(coordinator.running()) << coordinator.output();
  coordinator.signal(SIGTERM);
  EXPECT_EQ(coordinator.wait(seconds(30)), 0) << coordinator.output();
}

TEST(BrokerLoss, ACoordinatorWithoutABrokerStopsPromptlyOnSigterm) {
  if (Cluster::requestedBroker() != Cluster::Broker::kEmbedded) {
    GTEST_SKIP() << "no broker involved: runs once, in the embedded variant";
  }
  TempDir dir;
  Process coordinator({.args = {TD_COORDINATOR_BIN, "--bootstrap-server",
                                "127.0.0.1:" + std::to_string(unusedPort())},
                       .output = dir.path() / "out"});
  ASSERT_TRUE(waitUntil([&] { return contains(coordinator.output(), "cannot start"); },
                        seconds(30)))
      << coordinator.output();
  const auto term_at = Clock::now();
  coordinator.signal(SIGTERM);
  EXPECT_EQ(coordinator.wait(seconds(6)), 0) << coordinator.output();
  std::cout << "[ measured ] coordinator without a broker: SIGTERM -> exit: " << msSince(term_at)
            << " ms\n";
}

}  // namespace
}  // namespace td::testing
