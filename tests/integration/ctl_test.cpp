// td-ctl with real processes (issue 20):
//   1. `td-ctl groups` lists a running group from td.state with its members and step counts,
//      `--json` parses, and a finished group leaves the open list;
//   2. `td-ctl cancel` of a group whose owner is frozen when the request is sent and SIGKILLed
//      right after: the surviving coordinator takes the group over, reads the request, and every
//      worker exits 5 printing who cancelled and why; no step starts after the request; one
//      group_cancelled on td.events; td-audit verify is clean;
//   3. cancelling an unknown or a finished group exits 1 naming the problem; bad flags exit 2.
// Steps record their run (kMarkCommand) and wait for a gate file that a test opens or never
// opens. Every wait polls with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "td/v1/completions.pb.h"
#include "td/v1/state.pb.h"
#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(90);
constexpr auto kEndTimeout = std::chrono::seconds(120);

// As failover_test: the embedded broker notices a SIGKILLed coordinator after ~5 s with a 3 s
// session timeout; Apache Kafka accepts nothing under 6 s, its default here.
std::vector<std::string> coordinatorArgs() {
  std::vector<std::string> args = {"-X", "heartbeat.interval.ms=1000"};
  if (!Cluster::onApacheKafka()) args.insert(args.end(), {"-X", "session.timeout.ms=3000"});
  return args;
}

void openGate(const Cluster& cluster) { std::ofstream(cluster.dir() / "go") << "go\n"; }

// `steps` steps s1..sN that mark their run, then wait for the gate file.
std::string gatedSchema(const std::string& name, int steps) {
  std::string yaml = "name: " + name + "\ndefaults: {timeout: 5m, max_attempts: 1}\nsteps:\n";
  for (int i = 1; i <= steps; ++i) {
    yaml += "  - id: s" + std::to_string(i) + "\n    run: '" + kMarkCommand +
            "; while [ ! -e \"$TD_TEST_MARKS/../go\" ]; do sleep 0.05; done'\n";
  }
  return yaml;
}

bool waitMarks(const Cluster& cluster, std::size_t n) {
  return waitUntil([&] { return cluster.marksWritten().size() >= n; }, kStartTimeout);
}

std::string onlyGroup(const Cluster& cluster) {
  std::set<std::string> ids;
  for (const auto& e : cluster.events()) ids.insert(e.group_id());
  return ids.size() == 1 ? *ids.begin() : std::string();
}

// The coordinator that owns `group` now: the writer of its latest td.state snapshot (highest
// epoch, then latest offset).
std::string ownerOf(const Cluster& cluster, const std::string& group) {
  std::uint64_t epoch = 0;
  std::string owner;
  for (const auto& m : cluster.readTopic("td.state")) {
    if (m.key != group) continue;
    td::v1::StateRecord r;
    if (!r.ParseFromString(m.value) || !r.has_group()) continue;
    if (r.group().coordinator_epoch() >= epoch) {
      epoch = r.group().coordinator_epoch();
      owner = r.group().coordinator_id();
    }
  }
  return owner;
}

TEST(Ctl, GroupsListsARunningGroupWithItsMembersAndSteps) {
  Cluster cluster;
  std::printf("[ broker   ] %s\n", cluster.brokerName().c_str());
  const auto schema = cluster.writeSchema("listed", gatedSchema("listed", 3));
  Process& w1 = cluster.startWorker(schema, {"w1", "c1", {}, {"--quiet-steps"}});
  Process& w2 = cluster.startWorker(schema, {"w2", "c1", {}, {"--quiet-steps"}});
  ASSERT_TRUE(waitMarks(cluster, 2)) << cluster.logs();
  const std::string group = onlyGroup(cluster);
  ASSERT_FALSE(group.empty());

  // Two steps run, one is queued (one slot per worker); td.state may lag a cycle behind.
  std::string out;
  ASSERT_TRUE(waitUntil(
      [&] {
        auto [rc, text] = cluster.ctl({"groups"}, "groups");
        out = text;
        return rc == std::optional<int>(0) && text.find(group) != std::string::npos &&
               text.find("w1") != std::string::npos && text.find("w2") != std::string::npos &&
               text.find("running") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << out;
  std::printf("[ groups   ]\n%s", out.c_str());
  EXPECT_NE(out.find("listed"), std::string::npos) << out;

  auto [rc, json] = cluster.ctl({"groups", "--json"}, "groups-json");
  ASSERT_EQ(rc, std::optional<int>(0)) << json;
  const auto json_file = cluster.dir() / "groups.json";
  std::ofstream(json_file) << json;
  const std::string check =
      "/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
      "assert len(d)==1, d; g=d[0]; assert g[\"group\"]==sys.argv[2], g; "
      "assert g[\"state\"]==\"running\", g; assert sorted(g[\"members\"])==[\"w1\",\"w2\"], g; "
      "s=g[\"steps\"]; assert (s[\"total\"],s[\"done\"],s[\"running\"],s[\"queued\"])==(3,0,2,1), s; "
      "assert g[\"owner\"] and g[\"epoch\"]>=1 and g[\"age_ms\"]>=0, g' " +
      json_file.string() + " " + group;
  EXPECT_EQ(std::system(check.c_str()), 0) << json;

  openGate(cluster);
  EXPECT_EQ(w1.wait(kEndTimeout), std::optional<int>(0)) << cluster.logs();
  EXPECT_EQ(w2.wait(kEndTimeout), std::optional<int>(0)) << cluster.logs();
  // A finished group leaves the open list; --state completed shows it.
  ASSERT_TRUE(waitUntil(
      [&] {
        auto [rc2, text] = cluster.ctl({"groups"}, "groups-after");
        out = text;
        return rc2 == std::optional<int>(0) && text == "no open groups\n";
      },
      std::chrono::seconds(30)))
      << out;
  auto [rc3, completed] = cluster.ctl({"groups", "--state", "completed"}, "groups-completed");
  EXPECT_EQ(rc3, std::optional<int>(0));
  EXPECT_NE(completed.find(group), std::string::npos) << completed;
}

TEST(Ctl, CancelReachesTheGroupsNextOwnerWhenTheOwnerDiesAfterTheRequest) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  std::printf("[ broker   ] %s\n", cluster.brokerName().c_str());
  std::map<std::string, Process*> coordinators;
  coordinators["c1"] = &cluster.startCoordinator("c1", coordinatorArgs());
  coordinators["c2"] = &cluster.startCoordinator("c2", coordinatorArgs());
  const auto schema = cluster.writeSchema("doomed", gatedSchema("doomed", 6));
  std::vector<Process*> workers = {
      &cluster.startWorker(schema, {"w1", "c1", {}, {"--quiet-steps"}}),
      &cluster.startWorker(schema, {"w2", "c1", {}, {"--quiet-steps"}})};
  ASSERT_TRUE(waitMarks(cluster, 2)) << cluster.logs();
  const std::string group = onlyGroup(cluster);
  ASSERT_FALSE(group.empty());
  std::string owner;
  ASSERT_TRUE(waitUntil([&] { return !(owner = ownerOf(cluster, group)).empty(); },
                        std::chrono::seconds(30)));
  ASSERT_TRUE(coordinators.contains(owner)) << owner;
  std::printf("[ owner    ] %s owns %s; freezing it, then cancelling\n", owner.c_str(),
              group.c_str());

  // Frozen, the owner cannot act on the request before it dies: its successor must.
  coordinators[owner]->signal(SIGSTOP);
  const std::int64_t sent_at = wallMs();
  Process& ctl = cluster.startCtl({"cancel", group, "--reason", "runaway build", "--requested-by",
                                   "tester@ci", "--timeout", "150"},
                                  "cancel");
  ASSERT_TRUE(waitUntil(
      [&] {
        for (const auto& m : cluster.readTopic("td.completions")) {
          td::v1::CompletionRecord r;
          if (r.ParseFromString(m.value) && r.has_cancel() && r.cancel().group_id() == group) {
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(30)))
      << ctl.output();
  coordinators[owner]->signal(SIGKILL);
  const std::int64_t killed_at = wallMs();

  for (auto* w : workers) {
    const auto rc = w->wait(kEndTimeout);
    EXPECT_EQ(rc, std::optional<int>(5)) << w->output() << cluster.logs("coordinator");
    EXPECT_NE(w->output().find("CANCELLED by tester@ci: runaway build"), std::string::npos)
        << w->output();
  }
  const std::int64_t ended_at = wallMs();
  std::printf("[ measured ] kill_to_workers_exited_ms=%lld\n",
              static_cast<long long>(ended_at - killed_at));
  EXPECT_EQ(ctl.wait(std::chrono::seconds(30)), std::optional<int>(0)) << ctl.output();
  EXPECT_NE(ctl.output().find("CANCELLED by tester@ci"), std::string::npos) << ctl.output();

  // Nothing started after the request; only the two steps that ran before it.
  for (const auto& m : cluster.marksWritten()) {
    EXPECT_LT(m.at_ms, sent_at) << m.step << " attempt " << m.attempt << " started after the "
                                << "cancel request";
  }
  EXPECT_EQ(cluster.marksWritten().size(), 2u);
  // The step processes are gone (their trees were killed).
  for (const auto& m : cluster.marksWritten()) {
    EXPECT_TRUE(waitUntil([&] { return !processGroupAlive(m.pgid); }, std::chrono::seconds(10)))
        << m.step;
  }

  std::set<std::uint64_t> cancelled;
  std::string by;
  for (const auto& e : cluster.events()) {
    if (e.group_id() != group || !e.has_group_cancelled()) continue;
    cancelled.insert(e.sequence());
    by = e.coordinator_id();
    EXPECT_EQ(e.group_cancelled().requested_by(), "tester@ci");
    EXPECT_EQ(e.group_cancelled().reason(), "runaway build");
  }
  EXPECT_EQ(cancelled.size(), 1u);
  EXPECT_NE(by, owner) << "the frozen owner cannot have cancelled it";
  auto [rc, listed] = cluster.ctl({"groups", "--state", "cancelled"}, "groups-cancelled");
  EXPECT_EQ(rc, std::optional<int>(0));
  EXPECT_NE(listed.find(group), std::string::npos) << listed;
  expectAuditClean(cluster, "audit-cancel");
}

TEST(Ctl, CancellingAnUnknownOrFinishedGroupIsAClearError) {
  Cluster cluster;
  std::printf("[ broker   ] %s\n", cluster.brokerName().c_str());
  const auto schema = cluster.writeSchema("quick", "name: quick\nsteps:\n  - id: a\n    run: 'true'\n");
  Process& w = cluster.startWorker(schema, {"w1", "c1", {}, {"--quiet-steps"}});
  ASSERT_EQ(w.wait(kEndTimeout), std::optional<int>(0)) << cluster.logs();
  const std::string group = onlyGroup(cluster);
  ASSERT_FALSE(group.empty());
  std::optional<int> rc;
  std::string out;
  ASSERT_TRUE(waitUntil(
      [&] {
        std::tie(rc, out) = cluster.ctl({"cancel", group}, "cancel-finished");
        return out.find("already completed") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << out;
  EXPECT_EQ(rc, std::optional<int>(1)) << out;
  EXPECT_NE(out.find("group " + group + " already completed"), std::string::npos) << out;

  std::tie(rc, out) = cluster.ctl({"cancel", "no-such-group"}, "cancel-unknown");
  EXPECT_EQ(rc, std::optional<int>(1)) << out;
  EXPECT_NE(out.find("no group no-such-group (td-ctl groups lists the open ones)"),
            std::string::npos)
      << out;

  // Bad usage: exit 2, saying what is wrong.
  std::tie(rc, out) = cluster.ctl({"cancel"}, "cancel-no-group");
  EXPECT_EQ(rc, std::optional<int>(2)) << out;
  EXPECT_NE(out.find("which GROUP"), std::string::npos) << out;
  std::tie(rc, out) = cluster.ctl({"groups", "--state", "sideways"}, "groups-bad-state");
  EXPECT_EQ(rc, std::optional<int>(2)) << out;
  EXPECT_NE(out.find("--state"), std::string::npos) << out;
}

}  // namespace
}  // namespace td::testing
