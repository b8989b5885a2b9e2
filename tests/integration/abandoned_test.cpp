// Abandoned groups (issue 20), with real processes: a coordinator with a short
// --abandoned-group-timeout and two td-workers whose steps block. When both workers take
// SIGTERM the group ends as abandoned after the timeout and leaves nothing open: /metrics shows
// no open group, td.state holds its forgotten-group record, td-ctl groups does not list it,
// td-audit verify accepts it. When a worker of the same peer id comes back before the timeout,
// the group resumes and completes. When both workers are killed by kill -9, both are declared
// lost and the group is abandoned too.
// Every wait polls with a deadline.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <set>
#include <string>

#include "tests/integration/cluster.h"
#include "tests/support/http.h"
#include "td/v1/state.pb.h"

namespace td::testing {
namespace {

using std::chrono::seconds;

constexpr auto kTimeout = seconds(90);

// Two steps that each wait for the file "go" next to the marks directory.
std::string gatedSchema() {
  std::string yaml = "name: gated\ndefaults: {timeout: 5m, max_attempts: 2}\nsteps:\n";
  for (const char* id : {"a", "b"}) {
    yaml += std::string("  - id: ") + id + "\n    run: " + kMarkCommand +
            "; until [ -e \"$TD_TEST_MARKS/../go\" ]; do sleep 0.05; done\n";
  }
  return yaml;
}

class Abandoned : public ::testing::Test {
 protected:
  explicit Abandoned(int timeout_s)
      : cluster_(Cluster::Options{.start_coordinator = false}),
        coordinator_(cluster_.startCoordinator({"--metrics-listen", "127.0.0.1:0",
                                                "--abandoned-group-timeout",
                                                std::to_string(timeout_s)})) {}

  // The port the coordinator logged ("metrics on http://127.0.0.1:N/metrics ..."), once it has.
  int port() {
    if (port_ == 0) port_ = loggedMetricsPort(coordinator_.output()).value_or(0);
    return port_;
  }
  std::string page() { return httpGet(port(), "/metrics").body; }
  bool waitForSample(const std::string& series, double want) {
    return waitUntil(
        [&] {
          auto v = sampleOf(page(), series);
          return v && *v == want;
        },
        kTimeout);
  }
  // Workers w1 and w2 of change c1 run the two gated steps of one group, whose id it returns;
  // then both take `sig`: SIGTERM (each kills its step and leaves, exit 130) or SIGKILL (each
  // dies at once, its step's supervisor kills the step, and nothing is said).
  std::string runThenSignalBoth(int sig = SIGTERM) {
    schema_ = cluster_.writeSchema("gated", gatedSchema());
    auto& w1 = cluster_.startWorker(schema_, {"w1", "c1"});
    auto& w2 = cluster_.startWorker(schema_, {"w2", "c1"});
    std::string group;
    EXPECT_TRUE(waitUntil(
        [&] {
          auto marks = cluster_.marksWritten();
          if (marks.size() < 2) return false;
          group = marks[0].group;
          return true;
        },
        kTimeout))
        << cluster_.logs();
    EXPECT_TRUE(waitForSample("td_coordinator_groups{state=\"open\"}", 1)) << page();
    for (auto* w : {&w1, &w2}) {
      w->signal(sig);
      EXPECT_EQ(w->wait(seconds(30)), sig == SIGTERM ? 130 : 128 + sig) << cluster_.logs();
    }
    return group;
  }
  // Events of `group`, polled until one satisfies `done` (empty on timeout).
  std::vector<td::v1::Event> eventsUntil(const std::string& group,
                                         const std::function<bool(const td::v1::Event&)>& done) {
    std::vector<td::v1::Event> mine;
    const bool found = waitUntil(
        [&] {
          mine.clear();
          bool hit = false;
          for (auto& e : cluster_.events()) {
            if (e.group_id() != group) continue;
            hit = hit || done(e);
            mine.push_back(std::move(e));
          }
          return hit;
        },
        kTimeout);
    if (!found) mine.clear();
    return mine;
  }

  Cluster cluster_;
  Process& coordinator_;
  int port_ = 0;
  std::filesystem::path schema_;
};

class AbandonedAfterTimeout : public Abandoned {
 protected:
  AbandonedAfterTimeout() : Abandoned(3) {}
};

class ResumedBeforeTimeout : public Abandoned {
 protected:
  ResumedBeforeTimeout() : Abandoned(60) {}
};

TEST_F(AbandonedAfterTimeout, AGroupWhoseMembersAllTookSigtermEndsAndLeavesNothingOpen) {
  ASSERT_TRUE(waitUntil([&] { return port() > 0; }, kTimeout)) << cluster_.logs();
  const std::string group = runThenSignalBoth();
  ASSERT_FALSE(group.empty());
  const std::int64_t gone_ms = wallMs();

  // group_abandoned on td.events, after the timeout (3 s) and within a few seconds of it.
  auto events = eventsUntil(group, [](const auto& e) { return e.has_group_abandoned(); });
  ASSERT_FALSE(events.empty()) << cluster_.logs();
  const auto& last = events.back();
  ASSERT_TRUE(last.has_group_abandoned()) << "nothing follows it";
  const auto& abandoned = last.group_abandoned();
  EXPECT_GE(abandoned.memberless_for_ms(), 3000u);
  EXPECT_LT(abandoned.memberless_for_ms(), 10000u);
  EXPECT_LT(last.timestamp_ms() - gone_ms, 15000);
  EXPECT_EQ(abandoned.steps_succeeded(), 0u);
  EXPECT_EQ(abandoned.steps_not_run(), 2u);
  EXPECT_TRUE(abandoned.last_peer_id() == "w1" || abandoned.last_peer_id() == "w2")
      << abandoned.last_peer_id();
  // Each running attempt was seen to end (lost when its worker left) before the group did.
  std::set<std::string> ended;
  for (const auto& e : events) {
    if (e.has_step_finished() && e.step_finished().attempt() == 1) {
      ended.insert(e.step_finished().step_id());
    }
  }
  EXPECT_EQ(ended, (std::set<std::string>{"a", "b"}));

  // Nothing open: the metrics are back to zero.
  EXPECT_TRUE(waitForSample("td_coordinator_groups_abandoned_total", 1)) << page();
  EXPECT_TRUE(waitForSample("td_coordinator_groups{state=\"abandoned\"}", 0)) << page();
  const std::string after = page();
  EXPECT_EQ(sampleOf(after, "td_coordinator_groups{state=\"open\"}"), 0.0) << after;
  for (const char* state : {"waiting", "queued", "running", "succeeded", "failed"}) {
    EXPECT_EQ(sampleOf(after, std::string("td_coordinator_steps{state=\"") + state + "\"}"), 0.0)
        << state << "\n" << after;
  }

  // td.state: the group's latest record is its forgotten-group record.
  td::v1::StateRecord latest;
  EXPECT_TRUE(waitUntil(
      [&] {
        for (const auto& m : cluster_.readTopic("td.state")) {
          if (m.key != group || m.value.empty()) continue;
          (void)latest.ParseFromString(m.value);
        }
        return latest.has_forgotten();
      },
      kTimeout))
      << latest.ShortDebugString();
  EXPECT_EQ(latest.forgotten().group_id(), group);
  EXPECT_EQ(latest.forgotten().peer_ids_size(), 2);

  // td-ctl, which reads the cluster (td.state), lists it in no state at all.
  auto [ctl_code, ctl_out] = cluster_.ctl({"groups", "--state", "all"}, "ctl-groups");
  EXPECT_EQ(ctl_code, 0) << ctl_out;
  EXPECT_EQ(ctl_out.find(group), std::string::npos) << ctl_out;

  // td-audit accepts the ending, and shows it.
  auto [verify_code, verify_out] = cluster_.audit({"verify", "--group", group}, "verify");
  EXPECT_EQ(verify_code, 0) << verify_out;
  auto [show_code, show_out] = cluster_.audit({"show", group}, "show");
  EXPECT_EQ(show_code, 0) << show_out;
  EXPECT_NE(show_out.find("status=abandoned"), std::string::npos) << show_out;
  EXPECT_NE(show_out.find("abandoned: no member for"), std::string::npos) << show_out;
}

// Both members killed by kill -9 on a coordinator that hears nothing else: no heartbeat, no
// leave, no other group. The partition's silence still counts because the coordinator probes it
// (its leader's high watermark was handled; architecture.md, "Leases and lost peers"), so both
// peers are declared lost within a few leases and the memberless group is then abandoned.
TEST_F(AbandonedAfterTimeout, AGroupWhoseMembersWereAllKilledLosesThemAndEnds) {
  ASSERT_TRUE(waitUntil([&] { return port() > 0; }, kTimeout)) << cluster_.logs();
  const std::string group = runThenSignalBoth(SIGKILL);
  ASSERT_FALSE(group.empty());
  auto events = eventsUntil(group, [](const auto& e) { return e.has_group_abandoned(); });
  ASSERT_FALSE(events.empty()) << "the killed peers were never declared lost\n"
                               << page() << cluster_.logs();
  std::set<std::string> lost;
  for (const auto& e : events) {
    EXPECT_FALSE(e.has_peer_left()) << "a killed worker says nothing";
    if (e.has_peer_lost()) lost.insert(e.peer_lost().peer_id());
  }
  EXPECT_EQ(lost, (std::set<std::string>{"w1", "w2"}));
  auto probes = sampleOf(page(), "td_coordinator_flow_probes_total{result=\"caught_up\"}");
  ASSERT_TRUE(probes.has_value()) << page();
  EXPECT_GE(*probes, 1.0) << page();
  EXPECT_TRUE(waitForSample("td_coordinator_groups{state=\"open\"}", 0)) << page();
  auto [verify_code, verify_out] = cluster_.audit({"verify", "--group", group}, "verify");
  EXPECT_EQ(verify_code, 0) << verify_out;
}

TEST_F(ResumedBeforeTimeout, AMemberThatComesBackBeforeTheTimeoutResumesTheGroup) {
  ASSERT_TRUE(waitUntil([&] { return port() > 0; }, kTimeout)) << cluster_.logs();
  const std::string group = runThenSignalBoth();
  ASSERT_FALSE(group.empty());
  // Both gone (the group is memberless); w1 comes back as a new process, and its steps may
  // now finish.
  ASSERT_TRUE(eventsUntil(group, [&](const auto& e) {
                return e.has_peer_left() && e.peer_left().peer_id() == "w2";
              }).size() > 0)
      << cluster_.logs();
  std::ofstream(cluster_.dir() / "go") << "go\n";
  auto& again = cluster_.startWorker(schema_, {"w1", "c1"});
  EXPECT_EQ(again.wait(kTimeout), 0) << cluster_.logs();

  auto events = eventsUntil(group, [](const auto& e) { return e.has_group_completed(); });
  ASSERT_FALSE(events.empty()) << "the group resumed and completed\n" << cluster_.logs();
  int joins_of_w1 = 0;
  for (const auto& e : events) {
    EXPECT_FALSE(e.has_group_abandoned());
    if (e.has_peer_joined() && e.peer_joined().peer_id() == "w1") ++joins_of_w1;
  }
  EXPECT_EQ(joins_of_w1, 2) << "w1's second session joined the same group";
  EXPECT_TRUE(waitForSample("td_coordinator_groups{state=\"completed\"}", 1)) << page();
  EXPECT_EQ(sampleOf(page(), "td_coordinator_groups_abandoned_total"), 0.0) << page();
  auto [verify_code, verify_out] = cluster_.audit({"verify", "--group", group}, "verify");
  EXPECT_EQ(verify_code, 0) << verify_out;
}

}  // namespace
}  // namespace td::testing
