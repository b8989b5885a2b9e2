// Metrics and health (issue 8, "Observability"), with real processes: td-broker, a
// td-coordinator with --metrics-listen 127.0.0.1:0, and td-worker peers. The test reads
// /metrics, /healthz and /readyz over plain HTTP before, during and after a group runs, and
// sees /readyz turn 503 while the broker is down. Every wait polls with a deadline.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>

#include "tests/integration/cluster.h"
#include "tests/support/http.h"

namespace td::testing {
namespace {

using std::chrono::seconds;

constexpr auto kTimeout = seconds(90);

class Metrics : public ::testing::Test {
 protected:
  Metrics()
      : cluster_(Cluster::Options{.start_coordinator = false, .broker_control = true}),
        coordinator_(cluster_.startCoordinator({"--metrics-listen", "127.0.0.1:0"})) {}

  // The port the coordinator logged ("metrics on http://127.0.0.1:N/metrics ..."), once it has.
  int port() {
    if (port_ == 0) port_ = loggedMetricsPort(coordinator_.output()).value_or(0);
    return port_;
  }
  int status(const std::string& path) { return httpGet(port(), path).status; }
  std::string page() { return httpGet(port(), "/metrics").body; }
  double value(const std::string& series) {
    auto v = sampleOf(page(), series);
    return v ? *v : -1;
  }
  // Waits until `series` is `predicate`-true; returns the last page for messages.
  bool waitFor(const std::string& series, const std::function<bool(double)>& predicate) {
    return waitUntil(
        [&] {
          auto v = sampleOf(page(), series);
          return v && predicate(*v);
        },
        kTimeout);
  }

  Cluster cluster_;
  Process& coordinator_;
  int port_ = 0;
};

TEST_F(Metrics, ExposesGroupsStepsDispatchLagAndHealthAcrossAGroupsLife) {
  ASSERT_TRUE(waitUntil([&] { return port() > 0; }, kTimeout)) << cluster_.logs();
  ASSERT_TRUE(waitUntil([&] { return status("/healthz") == 200; }, kTimeout)) << cluster_.logs();
  ASSERT_TRUE(waitUntil([&] { return status("/readyz") == 200; }, kTimeout)) << cluster_.logs();

  // Before: nothing held, everything exported.
  std::string before = page();
  EXPECT_EQ(sampleOf(before, "td_coordinator_groups{state=\"open\"}"), 0.0) << before;
  EXPECT_EQ(sampleOf(before, "td_coordinator_groups_created_total"), 0.0) << before;
  EXPECT_EQ(sampleOf(before, "td_coordinator_dispatch_latency_seconds_count"), 0.0) << before;
  EXPECT_EQ(sampleOf(before, "td_coordinator_ready"), 1.0) << before;
  EXPECT_GE(sampleOf(before, "td_coordinator_rebalances_total{kind=\"assigned\"}").value_or(0), 1)
      << before;
  EXPECT_EQ(sampleOf(before, "td_coordinator_partitions_owned"), 4.0) << before;
  EXPECT_NE(before.find("# TYPE td_coordinator_dispatch_latency_seconds histogram"),
            std::string::npos);

  // During: four steps that hold until the test creates "go"; two peers run two at a time.
  const auto go = cluster_.dir() / "go";
  std::string yaml = "name: gated\ndefaults: {timeout: 1m, max_attempts: 2}\nsteps:\n";
  for (const char* id : {"a", "b", "c", "d"}) {
    yaml += std::string("  - id: ") + id + "\n    run: " + kMarkCommand +
            "; until [ -e \"$TD_TEST_MARKS/../go\" ]; do sleep 0.05; done\n";
  }
  auto schema = cluster_.writeSchema("gated", yaml);
  auto& w1 = cluster_.startWorker(schema, {"w1", "c1"});
  auto& w2 = cluster_.startWorker(schema, {"w2", "c1"});
  EXPECT_TRUE(waitFor("td_coordinator_steps{state=\"running\"}", [](double v) { return v == 2; }))
      << page() << cluster_.logs();
  std::string during = page();
  EXPECT_EQ(sampleOf(during, "td_coordinator_groups{state=\"open\"}"), 1.0) << during;
  EXPECT_EQ(sampleOf(during, "td_coordinator_steps{state=\"queued\"}"), 2.0) << during;
  EXPECT_EQ(sampleOf(during, "td_coordinator_groups_created_total"), 1.0) << during;
  EXPECT_EQ(sampleOf(during, "td_coordinator_groups{state=\"completed\"}"), 0.0) << during;

  // After: the steps finish; each peer's first finish is dispatched its next step at once.
  std::ofstream(go) << "go\n";
  for (auto* w : {&w1, &w2}) ASSERT_EQ(w->wait(kTimeout), 0) << cluster_.logs();
  EXPECT_TRUE(
      waitFor("td_coordinator_groups{state=\"completed\"}", [](double v) { return v == 1; }))
      << page();
  EXPECT_TRUE(waitUntil(
      [&] { return page().find("td_coordinator_consumer_lag_records{") != std::string::npos; },
      kTimeout))
      << page();
  std::string after = page();
  EXPECT_EQ(sampleOf(after, "td_coordinator_groups{state=\"open\"}"), 0.0) << after;
  EXPECT_EQ(sampleOf(after, "td_coordinator_groups_finished_total{outcome=\"completed\"}"), 1.0)
      << after;
  EXPECT_EQ(sampleOf(after, "td_coordinator_steps{state=\"succeeded\"}"), 4.0) << after;
  EXPECT_EQ(sampleOf(after, "td_coordinator_steps_assigned_total"), 4.0) << after;
  EXPECT_GE(sampleOf(after, "td_coordinator_dispatch_latency_seconds_count").value_or(0), 1)
      << after;
  EXPECT_GT(sampleOf(after, "td_coordinator_records_consumed_total").value_or(0), 0) << after;
  EXPECT_GT(sampleOf(after, "td_coordinator_snapshots_total").value_or(0), 0) << after;
  EXPECT_EQ(sampleOf(after, "td_coordinator_dead_letters_total"), 0.0) << after;
  EXPECT_EQ(sampleOf(after, "td_coordinator_step_retries_total{reason=\"failed\"}"), 0.0) << after;

  // Readiness follows the broker: 503 while it is down, 200 again once it is back; the
  // process stays live throughout.
  cluster_.takeBrokerDown();
  EXPECT_TRUE(waitUntil([&] { return status("/readyz") == 503; }, kTimeout)) << cluster_.logs();
  EXPECT_EQ(status("/healthz"), 200);
  EXPECT_EQ(value("td_coordinator_ready"), 0.0);
  cluster_.bringBrokerUp();
  EXPECT_TRUE(waitUntil([&] { return status("/readyz") == 200; }, kTimeout)) << cluster_.logs();
}

}  // namespace
}  // namespace td::testing
