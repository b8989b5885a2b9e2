// MetricsServer on loopback with a probe the test fills in: what /metrics renders from it,
// and /healthz and /readyz following the probe and a ManualClock (no Kafka, no sleeps).
#include "coordinator/kafka/metrics_server.h"

#include <gtest/gtest.h>

#include "tests/support/http.h"
#include "tests/support/manual_clock.h"

namespace td::coordinator {
namespace {

using td::testing::httpGet;
using td::testing::sampleOf;

class MetricsServerTest : public ::testing::Test {
 protected:
  MetricsServerTest() {
    auto started = MetricsServer::start("127.0.0.1:0", probe_, clock_, Millis(30000));
    EXPECT_TRUE(started.has_value()) << started.error().message();
    if (started) server_ = std::move(*started);
  }
  ServiceProbe probe_;
  td::testing::ManualClock clock_;
  std::unique_ptr<MetricsServer> server_;
};

TEST(LatencyHistogramTest, ObservationsLandInTheirFirstBucketOrOnlyInTheCount) {
  LatencyHistogram h;
  h.observe(0.0005);
  h.observe(0.003);
  h.observe(0.003);
  h.observe(100);
  EXPECT_EQ(h.count, 4u);
  EXPECT_DOUBLE_EQ(h.sum, 100.0065);
  EXPECT_EQ(h.buckets[0], 1u);   // <= 1 ms
  EXPECT_EQ(h.buckets[2], 2u);   // <= 5 ms
  std::uint64_t bucketed = 0;
  for (auto b : h.buckets) bucketed += b;
  EXPECT_EQ(bucketed, 3u) << "100 s is above every bound: +Inf only";
}

TEST_F(MetricsServerTest, RendersTheCensusAndTheProbe) {
  ASSERT_NE(server_, nullptr);
  probe_.dead_letters.store(3);
  probe_.batches.store(7);
  probe_.updateStats([](ProbeStats& stats) {
    stats.census.groups_running = 2;
    stats.census.groups_completed = 1;
    stats.census.groups_abandoned = 3;
    stats.census.groups_abandoned_total = 7;
    stats.census.groups_cancelled = 1;
    stats.census.groups_cancelled_total = 6;
    stats.census.steps_queued = 5;
    stats.census.retries_total[static_cast<std::size_t>(RetryReason::kTimedOut)] = 4;
    stats.census.universe_runs_total[universeOutcomeIndex(td::v1::STEP_OUTCOME_FAILED)] = 2;
    stats.census.speculative_started_total = 5;
    stats.census.speculative_won_total = 3;
    stats.census.speculative_lost_total = 2;
    stats.lag.push_back({"td.completions", 3, 12});
    stats.dispatch.observe(0.002);
    stats.dispatch.observe(0.2);
  });
  const auto reply = httpGet(server_->port(), "/metrics");
  ASSERT_EQ(reply.status, 200);
  const auto& page = reply.body;
  EXPECT_EQ(sampleOf(page, "td_coordinator_groups{state=\"open\"}"), 2.0) << page;
  EXPECT_EQ(sampleOf(page, "td_coordinator_groups{state=\"completed\"}"), 1.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_groups{state=\"abandoned\"}"), 3.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_groups_abandoned_total"), 7.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_groups{state=\"cancelled\"}"), 1.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_groups_cancelled_total"), 6.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_steps{state=\"queued\"}"), 5.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_step_retries_total{reason=\"timed_out\"}"), 4.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_universe_runs_total{outcome=\"failed\"}"), 2.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_universe_runs_total{outcome=\"succeeded\"}"), 0.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_speculative_attempts_total{result=\"started\"}"), 5.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_speculative_attempts_total{result=\"won\"}"), 3.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_speculative_attempts_total{result=\"lost\"}"), 2.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_dead_letters_total"), 3.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_cycles_total{trigger=\"input\"}"), 7.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_consumer_lag_records{partition=\"3\","
                           "topic=\"td.completions\"}"),
            12.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_dispatch_latency_seconds_count"), 2.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_dispatch_latency_seconds_bucket{le=\"0.0025\"}"), 1.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_dispatch_latency_seconds_bucket{le=\"0.25\"}"), 2.0);
  EXPECT_EQ(sampleOf(page, "td_coordinator_dispatch_latency_seconds_bucket{le=\"+Inf\"}"), 2.0);
  EXPECT_NE(page.find("# TYPE td_coordinator_groups gauge"), std::string::npos);
  EXPECT_NE(page.find("# TYPE td_coordinator_dead_letters_total counter"), std::string::npos);
}

TEST_F(MetricsServerTest, HealthFollowsTheLoopAndReadinessTheProbe) {
  ASSERT_NE(server_, nullptr);
  const int port = server_->port();
  probe_.loop_turned_ms.store(clock_.now().mono.count());
  EXPECT_EQ(httpGet(port, "/healthz").status, 200);
  EXPECT_EQ(httpGet(port, "/readyz").status, 503) << "not joined yet";
  probe_.joined.store(true);
  probe_.restoring.store(true);
  probe_.broker_reachable.store(true);
  auto reply = httpGet(port, "/readyz");
  EXPECT_EQ(reply.status, 503);
  EXPECT_NE(reply.body.find("restoring"), std::string::npos) << reply.body;
  probe_.restoring.store(false);
  EXPECT_EQ(httpGet(port, "/readyz").status, 200);
  EXPECT_EQ(sampleOf(httpGet(port, "/metrics").body, "td_coordinator_ready"), 1.0);
  probe_.broker_reachable.store(false);
  EXPECT_EQ(httpGet(port, "/readyz").status, 503);
  probe_.broker_reachable.store(true);

  clock_.advance(Millis(30001));   // the loop has not turned for longer than stall_after
  EXPECT_EQ(httpGet(port, "/healthz").status, 503);
  EXPECT_EQ(httpGet(port, "/readyz").status, 503);
  probe_.loop_turned_ms.store(clock_.now().mono.count());
  EXPECT_EQ(httpGet(port, "/healthz").status, 200);
}

TEST(MetricsServerStart, RefusesAMalformedAddressAndAPortInUse) {
  ServiceProbe probe;
  td::testing::ManualClock clock;
  EXPECT_FALSE(MetricsServer::start("9464", probe, clock).has_value());
  EXPECT_FALSE(MetricsServer::start("127.0.0.1:x", probe, clock).has_value());
  auto first = MetricsServer::start("127.0.0.1:0", probe, clock);
  ASSERT_TRUE(first.has_value());
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  EXPECT_FALSE(MetricsServer::start(taken, probe, clock).has_value());
}

}  // namespace
}  // namespace td::coordinator
