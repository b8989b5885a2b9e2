// Coordinator fail-over with real processes (issue 6): several td-coordinator processes share
// the consumer group on td.registrations (12 partitions); each group lives on its family's
// input partition and its state in td.state. Three scenarios:
//   1. one coordinator of three is SIGKILLed while it runs groups: the others restore them and
//      every group completes with each step run exactly once (fail-over time measured);
//   2. scale out: two coordinators join one that runs every group; groups move while running;
//   3. every coordinator is SIGKILLed and three new ones continue the groups from td.state.
//
// Every group is its own compatibility family (its own schema name), so groups spread over
// partitions and coordinators. Steps record their run (kMarkCommand), then wait for the gate
// file "<test dir>/go", then sleep 0.3 s: the test holds every group running with one step
// per worker in flight until the moment it wants (a kill, a rebalance) and then lets the
// steps flow; "ran exactly once" is counted from the marks the steps wrote. Every wait polls
// with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include "td/v1/assignments.pb.h"
#include "td/v1/state.pb.h"
#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr int kPartitions = 12;
constexpr std::uint32_t kMaxAttempts = 3;
constexpr auto kOwnershipTimeout = std::chrono::seconds(60);
constexpr auto kStartTimeout = std::chrono::seconds(120);
constexpr auto kFinishTimeout = std::chrono::seconds(120);
// A generous bound on kill -> first assignment by another coordinator. The embedded broker
// moves a SIGKILLed member's partitions after about 2 x session.timeout.ms - 1 s = 5 s.
constexpr std::int64_t kFailoverBoundMs = 30000;

// Coordinators leave the consumer group's view ~5 s after a SIGKILL on the embedded broker
// (the lowest session timeout it accepts is about 2.5 s). Apache Kafka refuses a session
// timeout under its group.min.session.timeout.ms (6 s by default), so there the product's own
// 6 s stays. TD_TEST_COORDINATOR_DEBUG=1 adds librdkafka's consumer-group trace to their logs
// (keep them with TD_KEEP_TEST_DIRS=1).
std::vector<std::string> coordinatorArgs() {
  std::vector<std::string> args = {"-X", "heartbeat.interval.ms=1000"};
  if (!Cluster::onApacheKafka()) args.insert(args.end(), {"-X", "session.timeout.ms=3000"});
  if (const char* debug = std::getenv("TD_TEST_COORDINATOR_DEBUG"); debug && *debug == '1') {
    args.insert(args.end(), {"-X", "debug=cgrp", "--log-level", "trace"});
  }
  return args;
}

std::filesystem::path gate(const Cluster& cluster) { return cluster.dir() / "go"; }
void openGate(const Cluster& cluster) { std::ofstream(gate(cluster)) << "go\n"; }

// Schema `family` with `steps` steps s1..sN: mark, wait for the gate, sleep 0.3 s.
std::string gatedSchema(const std::string& family, int steps) {
  std::string yaml = "name: " + family +
                     "\ndefaults: {timeout: 1m, max_attempts: " + std::to_string(kMaxAttempts) +
                     "}\nsteps:\n";
  for (int i = 1; i <= steps; ++i) {
    yaml += "  - id: s" + std::to_string(i) + "\n    run: '" + kMarkCommand +
            "; while [ ! -e \"$TD_TEST_MARKS/../go\" ]; do sleep 0.05; done; sleep 0.3'\n";
  }
  return yaml;
}

struct Fleet {
  std::vector<std::string> families;  // schema names; group ids are "<family>-<hex>"
  std::vector<Process*> workers;
  int steps = 0;
};

// `groups` families of `workers_per_group` workers each (all workers at once).
Fleet startGroups(Cluster& cluster, const std::string& prefix, int groups, int workers_per_group,
                  int steps) {
  Fleet fleet{.steps = steps};
  for (int g = 0; g < groups; ++g) {
    char family[32];
    std::snprintf(family, sizeof family, "%s%02d", prefix.c_str(), g);
    fleet.families.push_back(family);
    const auto schema = cluster.writeSchema(family, gatedSchema(family, steps));
    for (int w = 1; w <= workers_per_group; ++w) {
      fleet.workers.push_back(&cluster.startWorker(
          schema, {std::string(family) + "w" + std::to_string(w), "c1", {}, {"--quiet-steps"}}));
    }
  }
  return fleet;
}

std::string familyOf(const std::string& group_id) {
  return group_id.substr(0, group_id.rfind('-'));
}

// Partition -> id of the coordinator with the highest claim ("#owner" record) in td.state.
std::map<std::int32_t, std::string> partitionOwners(const Cluster& cluster) {
  std::map<std::int32_t, std::pair<std::uint64_t, std::string>> best;
  for (const auto& m : cluster.readTopic("td.state")) {
    if (m.key != "#owner") continue;
    td::v1::StateRecord record;
    if (!record.ParseFromString(m.value) || !record.has_owner()) continue;
    auto& b = best[m.partition];
    if (record.owner().epoch() >= b.first) {
      b = {record.owner().epoch(), record.owner().coordinator_id()};
    }
  }
  std::map<std::int32_t, std::string> out;
  for (const auto& [p, b] : best) out[p] = b.second;
  return out;
}

// Waits until td.state shows every partition claimed and spread evenly over exactly `ids`
// (the cooperative-sticky assignor's end state).
bool waitBalanced(const Cluster& cluster, const std::set<std::string>& ids) {
  return waitUntil(
      [&] {
        const auto owners = partitionOwners(cluster);
        if (owners.size() != static_cast<std::size_t>(kPartitions)) return false;
        std::map<std::string, int> count;
        for (const auto& [p, id] : owners) ++count[id];
        if (count.size() != ids.size()) return false;
        for (const auto& [id, n] : count) {
          if (!ids.contains(id) || n != kPartitions / static_cast<int>(ids.size())) return false;
        }
        return true;
      },
      kOwnershipTimeout);
}

// Group id -> coordinator that owns it now: the one of its event with the highest
// (coordinator_epoch, sequence). Re-published outbox events keep their old writer's id but
// never outrank the new owner's group_restored.
std::map<std::string, std::string> groupOwners(const std::vector<td::v1::Event>& events) {
  std::map<std::string, std::pair<std::pair<std::uint64_t, std::uint64_t>, std::string>> best;
  for (const auto& e : events) {
    auto& b = best[e.group_id()];
    const std::pair<std::uint64_t, std::uint64_t> rank{e.coordinator_epoch(), e.sequence()};
    if (rank >= b.first) b = {rank, e.coordinator_id()};
  }
  std::map<std::string, std::string> out;
  for (const auto& [g, b] : best) out[g] = b.second;
  return out;
}

std::set<std::string> completedGroups(const std::vector<td::v1::Event>& events) {
  std::set<std::string> out;
  for (const auto& e : events) {
    if (e.has_group_completed()) out.insert(e.group_id());
  }
  return out;
}

// td.events once every group that ran a step has its group_completed there (at most 60 s).
// A cycle's events and assignments are produced together but acknowledged apart, so a worker
// can end on its group's GroupCompleted while the event's partition is still changing leader
// (a killed broker) or its coordinator is still waiting for the acknowledgement.
std::vector<td::v1::Event> eventsWhenComplete(const Cluster& cluster) {
  std::set<std::string> groups;
  for (const auto& m : cluster.marksWritten()) groups.insert(m.group);
  std::vector<td::v1::Event> events;
  waitUntil(
      [&] {
        events = cluster.events();
        const auto completed = completedGroups(events);
        return std::all_of(groups.begin(), groups.end(),
                           [&](const std::string& g) { return completed.contains(g); });
      },
      std::chrono::seconds(60));
  return events;
}

// Groups restored by one of `by`, with the earliest such group_restored time.
std::map<std::string, std::int64_t> restoredBy(const std::vector<td::v1::Event>& events,
                                               const std::function<bool(const std::string&)>& by) {
  std::map<std::string, std::int64_t> out;
  for (const auto& e : events) {
    if (!e.has_group_restored() || !by(e.coordinator_id())) continue;
    auto [it, inserted] = out.try_emplace(e.group_id(), e.timestamp_ms());
    if (!inserted) it->second = std::min(it->second, e.timestamp_ms());
  }
  return out;
}

// Earliest step_assigned written by a coordinator `by` accepts for one of `groups`, or -1.
std::int64_t firstAssignment(const std::vector<td::v1::Event>& events,
                             const std::set<std::string>& groups,
                             const std::function<bool(const std::string&)>& by) {
  std::int64_t first = -1;
  for (const auto& e : events) {
    if (!e.has_step_assigned() || !groups.contains(e.group_id()) || !by(e.coordinator_id())) {
      continue;
    }
    if (first < 0 || e.timestamp_ms() < first) first = e.timestamp_ms();
  }
  return first;
}

// Marks per family.
std::map<std::string, std::vector<Cluster::Mark>> marksByFamily(const Cluster& cluster) {
  std::map<std::string, std::vector<Cluster::Mark>> out;
  for (auto& m : cluster.marksWritten()) out[familyOf(m.group)].push_back(std::move(m));
  return out;
}

// Waits until every family has `per_family` marks (e.g. one step in flight on each worker).
bool waitMarks(const Cluster& cluster, const Fleet& fleet, std::size_t per_family,
               std::chrono::milliseconds timeout) {
  return waitUntil(
      [&] {
        const auto marks = marksByFamily(cluster);
        for (const auto& f : fleet.families) {
          auto it = marks.find(f);
          if (it == marks.end() || it->second.size() < per_family) return false;
        }
        return true;
      },
      timeout);
}

// Every worker exits 0 (its group completed) before the shared deadline.
void expectWorkersSucceed(const Cluster& cluster, const Fleet& fleet) {
  const auto deadline = std::chrono::steady_clock::now() + kFinishTimeout;
  for (Process* w : fleet.workers) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const auto rc = w->wait(std::max(left, std::chrono::milliseconds(1)));
    EXPECT_EQ(rc, std::optional<int>(0)) << w->outputPath() << ":\n" << w->output();
  }
  if (::testing::Test::HasFailure()) ADD_FAILURE() << cluster.logs("coordinator");
}

// One group per family; each step s1..sN ran exactly once (a mark), attempts within the limit;
// td.events has group_completed for every group and no assignment over the attempt limit.
void expectEveryStepRanOnce(const Cluster& cluster, const Fleet& fleet,
                            const std::vector<td::v1::Event>& events) {
  const auto marks = marksByFamily(cluster);
  EXPECT_EQ(marks.size(), fleet.families.size());
  std::set<std::string> groups;
  for (const auto& family : fleet.families) {
    auto it = marks.find(family);
    ASSERT_NE(it, marks.end()) << family;
    std::map<std::string, int> runs;
    for (const auto& m : it->second) {
      groups.insert(m.group);
      ++runs[m.step];
      EXPECT_LE(m.attempt, kMaxAttempts) << family << " " << m.step;
    }
    std::set<std::string> group_ids;
    for (const auto& m : it->second) group_ids.insert(m.group);
    EXPECT_EQ(group_ids.size(), 1u) << family << ": its three workers share one group";
    for (int i = 1; i <= fleet.steps; ++i) {
      EXPECT_EQ(runs["s" + std::to_string(i)], 1)
          << family << " step s" << i << " ran " << runs["s" + std::to_string(i)] << " times";
    }
  }
  const auto completed = completedGroups(events);
  for (const auto& g : groups) EXPECT_TRUE(completed.contains(g)) << g << " has no group_completed";
  for (const auto& e : events) {
    EXPECT_FALSE(e.has_group_failed()) << e.group_id() << " failed: " << e.DebugString();
    if (e.has_step_assigned()) {
      EXPECT_LE(e.step_assigned().attempt(), kMaxAttempts) << e.DebugString();
    }
  }
}

// ---------------------------------------------------------------------------------------------

TEST(Failover, KillOneOfThreeCoordinatorsEveryGroupCompletesOnce) {
  constexpr int kGroups = 20, kWorkers = 3, kSteps = 9;
  Cluster cluster(Cluster::Options{.start_coordinator = false, .partitions = kPartitions});
  const std::set<std::string> ids = {"c1", "c2", "c3"};
  std::map<std::string, Process*> coordinators;
  for (const auto& id : ids) coordinators[id] = &cluster.startCoordinator(id, coordinatorArgs());
  ASSERT_TRUE(waitBalanced(cluster, ids)) << cluster.logs("coordinator");

  Fleet fleet = startGroups(cluster, "kill", kGroups, kWorkers, kSteps);
  // Every worker has a step in flight, held at the gate.
  ASSERT_TRUE(waitMarks(cluster, fleet, kWorkers, kStartTimeout)) << cluster.logs("coordinator");

  // The victim: the coordinator owning the most groups (all of them running).
  const auto owners = groupOwners(cluster.events());
  ASSERT_EQ(owners.size(), static_cast<std::size_t>(kGroups));
  std::map<std::string, std::set<std::string>> groups_of;
  for (const auto& [group, owner] : owners) groups_of[owner].insert(group);
  std::string victim;
  for (const auto& [id, groups] : groups_of) {
    if (victim.empty() || groups.size() > groups_of[victim].size()) victim = id;
  }
  const std::set<std::string> victim_groups = groups_of[victim];
  std::printf("[ owners   ] c1=%zu c2=%zu c3=%zu groups; killing %s\n", groups_of["c1"].size(),
              groups_of["c2"].size(), groups_of["c3"].size(), victim.c_str());

  // Let the steps flow and kill the victim as soon as one of its groups starts its second round:
  // it is busy (completions arriving, assignments going out) and every one of its groups still
  // has steps nobody was assigned yet.
  openGate(cluster);
  ASSERT_TRUE(waitUntil(
      [&] {
        for (const auto& m : cluster.marksWritten()) {
          if (victim_groups.contains(m.group) && m.step != "s1" && m.step != "s2" &&
              m.step != "s3") {
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(30)))
      << cluster.logs("coordinator");
  const std::int64_t killed_at = wallMs();
  coordinators[victim]->signal(SIGKILL);
  ASSERT_EQ(coordinators[victim]->wait(std::chrono::seconds(10)), 128 + SIGKILL);

  expectWorkersSucceed(cluster, fleet);
  const auto events = eventsWhenComplete(cluster);
  expectEveryStepRanOnce(cluster, fleet, events);

  auto survivor = [&](const std::string& id) { return ids.contains(id) && id != victim; };
  const auto moved = restoredBy(events, survivor);
  for (const auto& g : victim_groups) {
    EXPECT_TRUE(moved.contains(g)) << g << " of " << victim << " has no group_restored by "
                                   << "a surviving coordinator";
  }
  for (const auto& e : events) {
    EXPECT_FALSE(victim_groups.contains(e.group_id()) && e.has_group_completed() &&
                 e.timestamp_ms() < killed_at)
        << e.group_id() << " completed before the kill: nothing was left to take over";
  }
  const std::int64_t first_assignment = firstAssignment(events, victim_groups, survivor);
  ASSERT_GT(first_assignment, 0) << "no survivor assigned a step of the victim's groups\n"
                                 << cluster.logs("coordinator");
  std::int64_t first_restore = -1;
  std::size_t groups_moved = 0;
  for (const auto& [g, at] : moved) {
    if (!victim_groups.contains(g)) continue;
    ++groups_moved;
    if (first_restore < 0 || at < first_restore) first_restore = at;
  }
  const std::int64_t failover_ms = first_assignment - killed_at;
  std::printf(
      "[ measured ] failover_ms=%lld restore_ms=%lld groups_moved=%zu (of %zu groups, "
      "killed %s)\n",
      static_cast<long long>(failover_ms), static_cast<long long>(first_restore - killed_at),
      groups_moved, owners.size(), victim.c_str());
  std::fflush(stdout);
  ::testing::Test::RecordProperty("failover_ms", std::to_string(failover_ms));
  EXPECT_GT(failover_ms, 0);
  EXPECT_LT(failover_ms, kFailoverBoundMs);

  expectAuditClean(cluster, "audit-kill-one");
}

TEST(Failover, ScaleOutMovesRunningGroupsToNewCoordinators) {
  constexpr int kGroups = 8, kWorkers = 3, kSteps = 12;
  Cluster cluster(Cluster::Options{.start_coordinator = false, .partitions = kPartitions});
  cluster.startCoordinator("c1", coordinatorArgs());
  ASSERT_TRUE(waitBalanced(cluster, {"c1"})) << cluster.logs("coordinator");

  Fleet fleet = startGroups(cluster, "out", kGroups, kWorkers, kSteps);
  ASSERT_TRUE(waitMarks(cluster, fleet, kWorkers, kStartTimeout)) << cluster.logs("coordinator");

  const std::int64_t scaled_at = wallMs();
  cluster.startCoordinator("c2", coordinatorArgs());
  cluster.startCoordinator("c3", coordinatorArgs());
  auto newcomer = [](const std::string& id) { return id == "c2" || id == "c3"; };
  // Hold the groups until one of them moved, then let the steps flow while the rebalance may
  // still move others.
  ASSERT_TRUE(
      waitUntil([&] { return !restoredBy(cluster.events(), newcomer).empty(); }, kOwnershipTimeout))
      << cluster.logs("coordinator");
  openGate(cluster);

  expectWorkersSucceed(cluster, fleet);
  const auto events = eventsWhenComplete(cluster);
  expectEveryStepRanOnce(cluster, fleet, events);
  const auto moved = restoredBy(events, newcomer);
  std::int64_t first_restore = -1;
  for (const auto& [g, at] : moved) {
    first_restore = first_restore < 0 ? at : std::min(first_restore, at);
  }
  // Cooperative rebalancing: the groups c1 keeps go on being served and are never restored by
  // c1 again. (They were, while the coordinator committed offsets itself: a commit landing in
  // the rebalance carried a stale generation (ILLEGAL_GENERATION), librdkafka declared c1's
  // whole assignment lost and c1 re-claimed and restored its own groups.)
  std::size_t restored_in_place = 0;
  for (const auto& e : events) {
    restored_in_place += e.has_group_restored() && e.coordinator_id() == "c1" ? 1 : 0;
  }
  std::printf(
      "[ measured ] scale_out groups_moved=%zu of %d first_restore_ms=%lld "
      "restored_in_place_by_c1=%zu\n",
      moved.size(), kGroups, static_cast<long long>(first_restore - scaled_at), restored_in_place);
  std::fflush(stdout);
  EXPECT_GE(moved.size(), 1u);
  EXPECT_EQ(restored_in_place, 0u) << "c1 lost partitions it kept";
  // Every group the newcomers took over was restored from a snapshot of c1's.
  for (const auto& e : events) {
    if (e.has_group_restored() && newcomer(e.coordinator_id())) {
      EXPECT_TRUE(e.group_restored().previous_coordinator_id() == "c1" ||
                  newcomer(e.group_restored().previous_coordinator_id()))
          << e.DebugString();
    }
  }
  EXPECT_TRUE(waitBalanced(cluster, {"c1", "c2", "c3"})) << cluster.logs("coordinator");
  expectAuditClean(cluster, "audit-scale-out");
}

TEST(Failover, RestartOfEveryCoordinatorContinuesFromTheChangelog) {
  constexpr int kGroups = 6, kWorkers = 3, kSteps = 9;
  Cluster cluster(Cluster::Options{.start_coordinator = false, .partitions = kPartitions});
  std::vector<Process*> old;
  for (const char* id : {"c1", "c2", "c3"})
    old.push_back(&cluster.startCoordinator(id, coordinatorArgs()));
  ASSERT_TRUE(waitBalanced(cluster, {"c1", "c2", "c3"})) << cluster.logs("coordinator");

  Fleet fleet = startGroups(cluster, "all", kGroups, kWorkers, kSteps);
  ASSERT_TRUE(waitMarks(cluster, fleet, kWorkers, kStartTimeout)) << cluster.logs("coordinator");
  // Steps flowing: kill every coordinator once some group started its second round.
  openGate(cluster);
  ASSERT_TRUE(waitUntil([&] { return cluster.marksWritten().size() > kGroups * kWorkers; },
                        std::chrono::seconds(30)));
  const std::int64_t killed_at = wallMs();
  for (Process* c : old) c->signal(SIGKILL);
  for (Process* c : old) ASSERT_EQ(c->wait(std::chrono::seconds(10)), 128 + SIGKILL);

  // What the old coordinators wrote: the groups still running when they died.
  const auto before = cluster.events();
  const auto completed_before = completedGroups(before);
  std::set<std::string> running;
  for (const auto& [group, owner] : groupOwners(before)) {
    if (!completed_before.contains(group)) running.insert(group);
  }
  std::printf("[ restart  ] %zu of %d groups running when every coordinator was killed\n",
              running.size(), kGroups);
  EXPECT_FALSE(running.empty());

  const std::int64_t restarted_at = wallMs();
  for (const char* id : {"c4", "c5", "c6"}) cluster.startCoordinator(id, coordinatorArgs());
  expectWorkersSucceed(cluster, fleet);
  const auto events = eventsWhenComplete(cluster);
  expectEveryStepRanOnce(cluster, fleet, events);

  auto fresh = [](const std::string& id) { return id == "c4" || id == "c5" || id == "c6"; };
  const auto restored = restoredBy(events, fresh);
  for (const auto& g : running) {
    EXPECT_TRUE(restored.contains(g)) << g << " was running and has no group_restored by c4..c6";
  }
  const std::int64_t first_assignment = firstAssignment(events, running, fresh);
  std::printf(
      "[ measured ] restart_all groups_restored=%zu kill_to_first_assignment_ms=%lld "
      "(new coordinators started %lld ms after the kill)\n",
      restored.size(), static_cast<long long>(first_assignment - killed_at),
      static_cast<long long>(restarted_at - killed_at));
  std::fflush(stdout);
  expectAuditClean(cluster, "audit-restart-all");
}

// The epoch rule on td.state, with hand-written records: claims with epochs 1 and 2, a snapshot
// of epoch 1 written before the second claim (valid), and one written after it by a coordinator
// that had lost the partition (a zombie). A new coordinator claims epoch 3, restores the valid
// snapshot and skips the zombie's.
TEST(Failover, ZombieSnapshotsAfterANewerClaimAreSkipped) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  auto owner = [](std::uint64_t epoch) {
    td::v1::StateRecord r;
    r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    r.mutable_owner()->set_epoch(epoch);
    r.mutable_owner()->set_coordinator_id("old-" + std::to_string(epoch));
    return r.SerializeAsString();
  };
  auto snapshot = [](std::uint64_t next_sequence, std::string id = "zg", std::int32_t partition = 0,
                     std::uint64_t epoch = 1) {
    td::v1::StateRecord r;
    r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& g = *r.mutable_group();
    g.set_group_id(id);
    g.set_compatibility_key("zk");
    g.set_partition(partition);
    g.set_ordinal(1);
    g.set_coordinator_epoch(epoch);
    g.set_coordinator_id("old-1");
    g.set_status(td::v1::GROUP_STATUS_RUNNING);
    g.set_next_sequence(next_sequence);
    auto& step = *g.add_steps();
    step.mutable_spec()->set_id("a");
    step.mutable_spec()->set_max_attempts(3);
    step.set_state(td::v1::STEP_STATE_QUEUED);
    return r.SerializeAsString();
  };
  auto producer = cluster.producer();
  int acked = 0;
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"#owner", owner(1)}, {"zg", snapshot(4)}, {"#owner", owner(2)}, {"zg", snapshot(9)}}) {
    ASSERT_TRUE(producer->produce("td.state", 0, key, value,
                                  [&](const td::Status& s, std::int32_t, std::int64_t) {
                                    acked += s ? 1 : 0;
                                  }).has_value());
    ASSERT_TRUE(producer->flush(std::chrono::seconds(10)).has_value());   // in this order
  }
  ASSERT_EQ(acked, 4);
  // Partition 1 lost its claims (the embedded broker drops a partition's oldest records past
  // about 5 MiB): the new owner's epoch must still be above the snapshot's 5, or workers that
  // saw epoch 5 would fence it.
  ASSERT_TRUE(producer->produce("td.state", 1, "tg", snapshot(3, "tg", 1, 5)).has_value());
  ASSERT_TRUE(producer->flush(std::chrono::seconds(10)).has_value());

  cluster.startCoordinator("c1", {});
  std::optional<td::v1::Event> restored, truncated;
  waitUntil(
      [&] {
        for (const auto& e : cluster.events()) {
          if (e.group_id() == "zg" && e.has_group_restored()) restored = e;
          if (e.group_id() == "tg" && e.has_group_restored()) truncated = e;
        }
        return restored.has_value() && truncated.has_value();
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(restored.has_value()) << cluster.logs();
  ASSERT_TRUE(truncated.has_value()) << cluster.logs();
  EXPECT_EQ(truncated->coordinator_epoch(), 6u);
  EXPECT_EQ(restored->sequence(), 4u) << "restored from the zombie's snapshot";
  EXPECT_EQ(restored->coordinator_epoch(), 3u);
  EXPECT_EQ(restored->group_restored().previous_epoch(), 1u);
  EXPECT_NE(cluster.logs().find("1 stale snapshots of an earlier owner skipped"), std::string::npos)
      << cluster.logs();
}

// ---------------------------------------------------------------------------------------------
// Apache Kafka only: what the embedded broker cannot show.

// #owner claims in td.state per coordinator id.
std::map<std::string, int> claimsBy(const Cluster& cluster) {
  std::map<std::string, int> out;
  for (const auto& m : cluster.readTopic("td.state")) {
    td::v1::StateRecord record;
    if (m.key == "#owner" && record.ParseFromString(m.value) && record.has_owner()) {
      ++out[record.owner().coordinator_id()];
    }
  }
  return out;
}

// A session timeout Apache Kafka refuses (under its group.min.session.timeout.ms, 6 s): the
// coordinator stops at once saying why, instead of retrying its join forever.
TEST(Failover, ApacheKafkaRefusedSessionTimeoutStopsTheCoordinatorWithItsReason) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (the embedded broker accepts it)";
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  Process& coordinator = cluster.startCoordinator({"-X", "session.timeout.ms=3000"});
  const auto rc = coordinator.wait(std::chrono::seconds(60));
  ASSERT_TRUE(rc.has_value()) << "still running:\n" << coordinator.output();
  EXPECT_EQ(*rc, 2) << "a setting the broker refuses is a configuration error";
  EXPECT_NE(coordinator.output().find("session.timeout.ms"), std::string::npos) << coordinator.output();
  EXPECT_NE(coordinator.output().find("group.min.session.timeout.ms"), std::string::npos);
}

// td.state compacted with small segments (what deploy/create-topics.sh makes it, with
// segments rolled every second here so the cleaner runs within the test), on one partition so
// every group shares it: one group idles with its step held at the gate while other groups
// run, finish and are forgotten, rewriting td.state. Once the cleaner has removed the idle
// group's own superseded snapshots (one record of it left), the coordinator is SIGKILLed; a
// new one restores exactly the groups that were open (the idle one) and they complete.
TEST(Failover, ApacheKafkaCompactedChangelogRestoresExactlyTheOpenGroups) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (log compaction)";
  Cluster cluster(Cluster::Options{.start_coordinator = false, .partitions = 1});
  const auto [rc, out] = cluster.kafkaTool(
      "configs", {"--alter", "--entity-type", "topics", "--entity-name", "td.state",
                  "--add-config",
                  "segment.ms=1000,min.cleanable.dirty.ratio=0.01,delete.retention.ms=1000,"
                  "min.compaction.lag.ms=0"});
  ASSERT_EQ(rc, 0) << out;
  auto args = coordinatorArgs();
  args.insert(args.end(), {"--finished-group-retention", "1"});
  Process* first = &cluster.startCoordinator("c1", args);

  // The idle group: one worker whose steps wait at the gate.
  Fleet idle = startGroups(cluster, "idle", 1, 1, 2);
  ASSERT_TRUE(waitMarks(cluster, idle, 1, kStartTimeout)) << cluster.logs("coordinator");
  std::string idle_group;
  for (const auto& e : cluster.events()) {
    if (e.has_group_created()) idle_group = e.group_id();
  }
  ASSERT_FALSE(idle_group.empty());
  auto snapshots_of_idle = [&] {
    int n = 0;
    for (const auto& m : cluster.readTopic("td.state")) n += m.key == idle_group ? 1 : 0;
    return n;
  };
  // Its founding cycle and its step's start (reported a moment after the step's mark) are two
  // snapshots at least.
  int snapshots_before = 0;
  ASSERT_TRUE(waitUntil([&] { return (snapshots_before = snapshots_of_idle()) >= 2; },
                        std::chrono::seconds(30)))
      << "the idle group wrote " << snapshots_before << " snapshot(s)";
  // Churn: groups of quick steps, one after another, each finished and forgotten, until the
  // cleaner has compacted the idle group's key.
  int churned = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (snapshots_of_idle() > 1) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "td.state never compacted";
    const std::string family = "churn" + std::to_string(churned++);
    const auto schema = cluster.writeSchema(
        family, "name: " + family + "\nsteps:\n  - {id: a, run: 'true'}\n  - {id: b, run: 'true'}\n");
    ASSERT_EQ(cluster.startWorker(schema, {family + "w", "c1", {}, {"--quiet-steps"}})
                  .wait(std::chrono::seconds(60)),
              0);
  }
  // The groups open now, by td.events: created and neither completed nor failed.
  std::set<std::string> open;
  for (const auto& e : cluster.events()) {
    if (e.has_group_created()) open.insert(e.group_id());
    if (e.has_group_completed() || e.has_group_failed()) open.erase(e.group_id());
  }
  ASSERT_EQ(open, std::set<std::string>{idle_group}) << "only the idle group is open";

  first->signal(SIGKILL);
  ASSERT_EQ(first->wait(std::chrono::seconds(10)), 128 + SIGKILL);
  cluster.startCoordinator("c2", args);
  std::map<std::string, std::int64_t> restored;
  ASSERT_TRUE(waitUntil(
      [&] {
        restored = restoredBy(cluster.events(), [](const std::string& id) { return id == "c2"; });
        return !restored.empty();
      },
      kOwnershipTimeout))
      << cluster.logs("coordinator");
  std::set<std::string> restored_ids;
  for (const auto& [g, at] : restored) restored_ids.insert(g);
  EXPECT_EQ(restored_ids, open) << "a compacted td.state restores exactly the open groups";
  openGate(cluster);
  expectWorkersSucceed(cluster, idle);
  expectEveryStepRanOnce(cluster, idle, eventsWhenComplete(cluster));
  std::printf("[ measured ] compaction: the idle group's %d snapshots compacted to 1 after %d "
              "groups churned through td.state; restored by the next owner: %zu group\n",
              snapshots_before, churned, restored_ids.size());
  expectAuditClean(cluster, "audit-compacted");
}

// Three brokers (replication 3, min.insync.replicas 2): the one leading the most partitions of
// td.registrations and td.state is SIGKILLed while the groups run. Leadership moves to the
// others; every group completes, every step ran once, td-audit verify is clean.
TEST(Failover, ApacheKafkaThreeBrokersLosingTheLeaderOfInputAndStateLosesNothing) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (three real brokers)";
  constexpr int kGroups = 6, kWorkers = 3, kSteps = 6;
  Cluster cluster(Cluster::Options{
      .start_coordinator = false, .partitions = kPartitions, .kafka_nodes = 3});
  const std::set<std::string> ids = {"c1", "c2"};
  for (const auto& id : ids) cluster.startCoordinator(id, coordinatorArgs());
  ASSERT_TRUE(waitBalanced(cluster, ids)) << cluster.logs("coordinator");

  // The leaders are looked up before any step runs: each lookup starts a JVM (kafka-topics),
  // which took 28 to 35 s on a loaded machine, and steps waiting at the gate meanwhile ran
  // into their 1-minute timeout and were retried (a step "ran twice" for the test's reason).
  std::map<int, int> led;   // node -> partitions of td.registrations and td.state it leads
  for (const char* topic : {"td.registrations", "td.state"}) {
    for (const auto& [partition, node] : cluster.kafkaLeaders(topic)) ++led[node];
  }
  ASSERT_FALSE(led.empty());
  int victim = led.begin()->first;
  for (const auto& [node, count] : led) victim = count > led[victim] ? node : victim;
  std::printf("[ leaders  ] node 1: %d, node 2: %d, node 3: %d partitions; killing node %d\n",
              led[1], led[2], led[3], victim);

  Fleet fleet = startGroups(cluster, "leader", kGroups, kWorkers, kSteps);
  ASSERT_TRUE(waitMarks(cluster, fleet, kWorkers, kStartTimeout)) << cluster.logs("coordinator");
  openGate(cluster);
  // Steps flowing (a second round started somewhere), then the leader dies.
  ASSERT_TRUE(waitUntil([&] { return cluster.marksWritten().size() > kGroups * kWorkers; },
                        std::chrono::seconds(60)));
  const std::int64_t killed_at = wallMs();
  cluster.signalKafkaNode(victim, SIGKILL);

  expectWorkersSucceed(cluster, fleet);
  std::printf("[ measured ] three brokers, leader node %d killed -> last group completed: %lld ms\n",
              victim, static_cast<long long>(wallMs() - killed_at));
  const auto events = eventsWhenComplete(cluster);
  expectEveryStepRanOnce(cluster, fleet, events);
  for (const auto& [partition, node] : cluster.kafkaLeaders("td.state")) {
    EXPECT_NE(node, victim) << "td.state[" << partition << "] still led by the dead node";
  }
  expectAuditClean(cluster, "audit-leader-killed");
}

// Static membership: a coordinator SIGKILLed and started again with the same --coordinator-id
// (its group.instance.id) within the session timeout takes its own partitions back; the other
// coordinators claim nothing (no rebalance of everyone).
TEST(Failover, ApacheKafkaStaticMemberRestartedTakesBackItsPartitionsWithoutARebalance) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (static membership)";
  constexpr int kGroups = 6, kWorkers = 2, kSteps = 6;
  Cluster cluster(Cluster::Options{.start_coordinator = false, .partitions = kPartitions});
  auto args = coordinatorArgs();
  args.push_back("--static-membership");
  const std::set<std::string> ids = {"c1", "c2", "c3"};
  std::map<std::string, Process*> coordinators;
  for (const auto& id : ids) coordinators[id] = &cluster.startCoordinator(id, args);
  ASSERT_TRUE(waitBalanced(cluster, ids)) << cluster.logs("coordinator");
  Fleet fleet = startGroups(cluster, "static", kGroups, kWorkers, kSteps);
  ASSERT_TRUE(waitMarks(cluster, fleet, kWorkers, kStartTimeout)) << cluster.logs("coordinator");

  const auto owners_before = partitionOwners(cluster);
  const auto claims_before = claimsBy(cluster);
  coordinators["c2"]->signal(SIGKILL);
  ASSERT_EQ(coordinators["c2"]->wait(std::chrono::seconds(10)), 128 + SIGKILL);
  const std::int64_t restarted_at = wallMs();
  cluster.startCoordinator("c2", args);
  // c2 claims each of its partitions again (a new epoch each).
  const int c2_partitions = kPartitions / 3;
  ASSERT_TRUE(waitUntil([&] { return claimsBy(cluster)["c2"] >= claims_before.at("c2") + c2_partitions; },
                        kOwnershipTimeout))
      << cluster.logs("coordinator");
  const std::int64_t reclaimed_ms = wallMs() - restarted_at;
  openGate(cluster);
  expectWorkersSucceed(cluster, fleet);
  const auto events = eventsWhenComplete(cluster);
  expectEveryStepRanOnce(cluster, fleet, events);

  const auto claims_after = claimsBy(cluster);
  EXPECT_EQ(partitionOwners(cluster), owners_before) << "partitions moved";
  EXPECT_EQ(claims_after.at("c1"), claims_before.at("c1")) << "c1 claimed partitions again";
  EXPECT_EQ(claims_after.at("c3"), claims_before.at("c3")) << "c3 claimed partitions again";
  std::printf("[ measured ] static membership: restart of c2 -> its %d partitions claimed again: "
              "%lld ms (upper bound: polled); c1 and c3 claimed nothing\n",
              c2_partitions, static_cast<long long>(reclaimed_ms));
  expectAuditClean(cluster, "audit-static");
}

// --exactly-once on real transactions: the owner of most groups is SIGSTOPped until the other
// coordinator has taken its groups over, then SIGCONTed just as a retry's backoff ends, so its
// next tick assigns the retried step (a cycle with no input). Which comes first on waking is
// librdkafka's: its session timer may revoke the partitions before that tick runs (the zombie
// then writes nothing), or the tick runs first and its transaction must fail (its offsets carry
// a generation the group has left). Either way no record it wrote after the new owner's
// OwnerChanged may be readable (read_committed, librdkafka's default for every reader), and
// the retried step runs once. A zombie stopped inside a transaction holds every
// read_committed reader of what it wrote until the broker aborts it (transaction.timeout.ms,
// 10 s, plus the broker's cleanup interval): the take-over wait allows for it.
TEST(Failover, ApacheKafkaExactlyOnceZombieGetsNoRecordInFrontOfAWorker) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (transactions)";
  constexpr int kGroups = 4, kBackoffS = 30;
  Cluster cluster(Cluster::Options{.start_coordinator = false, .partitions = kPartitions});
  auto args = coordinatorArgs();
  args.push_back("--exactly-once");
  // A lease longer than the broker takes to abort a transaction the zombie was stopped inside
  // (transaction.timeout.ms 10 s + up to 10 s of cleanup interval): until then the new owner
  // cannot fetch that partition's committed offsets (KIP-447 waits for them to be stable), so
  // it hears no heartbeat of the restored groups' peers, and with the default 5 s lease it
  // declared them lost (seen once in a fresh-clone run; architecture.md, "Fail-over", says so).
  args.insert(args.end(), {"--lease-ms", "30000"});
  const std::set<std::string> ids = {"c1", "c2"};
  std::map<std::string, Process*> coordinators;
  for (const auto& id : ids) coordinators[id] = &cluster.startCoordinator(id, args);
  ASSERT_TRUE(waitBalanced(cluster, ids)) << cluster.logs("coordinator");
  // One worker per group; s1 fails its first attempt, and only that worker may retry it, after
  // the backoff.
  Fleet fleet{.steps = 2};
  for (int g = 0; g < kGroups; ++g) {
    const std::string family = "zombie" + std::to_string(g);
    fleet.families.push_back(family);
    const auto schema = cluster.writeSchema(
        family, "name: " + family +
                    "\ndefaults: {timeout: 1m, max_attempts: 3, backoff: {initial: " +
                    std::to_string(kBackoffS) + "s, jitter: 0}}\nsteps:\n"
                    "  - id: s1\n    run: '" + kMarkCommand + "; [ \"$TD_ATTEMPT\" -gt 1 ]'\n"
                    "  - id: s2\n    run: '" + kMarkCommand + "'\n");
    fleet.workers.push_back(&cluster.startWorker(schema, {family + "w", "c1", {}, {"--quiet-steps"}}));
  }
  // Every group's s1 failed once (its failure is on td.events, committed).
  std::int64_t failed_at = 0;
  ASSERT_TRUE(waitUntil(
      [&] {
        int failures = 0;
        for (const auto& e : cluster.events()) {
          if (e.has_step_finished() && e.step_finished().outcome() != td::v1::STEP_OUTCOME_SUCCEEDED) {
            ++failures;
            failed_at = std::max(failed_at, e.timestamp_ms());
          }
        }
        return failures == kGroups;
      },
      kStartTimeout))
      << cluster.logs("coordinator");
  const auto owners = groupOwners(cluster.events());
  std::map<std::string, std::set<std::string>> groups_of;
  for (const auto& [group, owner] : owners) groups_of[owner].insert(group);
  const std::string victim = groups_of["c1"].size() >= groups_of["c2"].size() ? "c1" : "c2";
  const std::string survivor = victim == "c1" ? "c2" : "c1";
  const std::set<std::string> victim_groups = groups_of[victim];
  ASSERT_FALSE(victim_groups.empty());
  coordinators[victim]->signal(SIGSTOP);
  const std::int64_t stopped_at = wallMs();
  // The survivor restores the victim's groups after the session timeout...
  ASSERT_TRUE(waitUntil(
      [&] {
        return restoredBy(cluster.events(), [&](const std::string& id) { return id == survivor; })
                   .size() >= victim_groups.size();
      },
      kOwnershipTimeout))
      << cluster.logs("coordinator");
  const std::int64_t taken_over_ms = wallMs() - stopped_at;
  ASSERT_LT(wallMs(), failed_at + kBackoffS * 1000) << "taken over after the backoff ended";
  // ... and the zombie wakes as the backoff ends (the fault's chosen moment, not a wait for
  // something to happen).
  waitUntil([&] { return wallMs() >= failed_at + kBackoffS * 1000 + 200; },
            std::chrono::seconds(kBackoffS + 5));
  coordinators[victim]->signal(SIGCONT);

  expectWorkersSucceed(cluster, fleet);
  // The zombie either tried and was refused, or heard of its loss first.
  std::string outcome;
  EXPECT_TRUE(waitUntil(
      [&] {
        const std::string log = readFile(cluster.dir() / ("coordinator-" + victim + ".log"));
        if (log.find("transaction failed") != std::string::npos) outcome = "its transaction was refused";
        else if (log.find("lost 12 partitions") != std::string::npos ||
                 log.find("revoked") != std::string::npos) outcome = "it heard of the loss first";
        return !outcome.empty();
      },
      std::chrono::seconds(30)))
      << cluster.logs("coordinator-" + victim);
  if (outcome == "its transaction was refused") {
    // Stopped past transaction.timeout.ms, its producer was fenced (a fatal error): it stops.
    // A transaction that can still be aborted would make it join the group again instead.
    std::string zombie_log;
    EXPECT_TRUE(waitUntil(
        [&] {
          zombie_log = readFile(cluster.dir() / ("coordinator-" + victim + ".log"));
          return zombie_log.find("critical [coordinator] stopped") != std::string::npos ||
                 zombie_log.find("joining it again") != std::string::npos;
        },
        std::chrono::seconds(30)))
        << zombie_log;
    if (zombie_log.find("_FENCED") != std::string::npos) {
      EXPECT_NE(zombie_log.find("critical [coordinator] stopped"), std::string::npos)
          << zombie_log;
    }
  }
  // No record of the zombie's epoch after the new owner's fence on any of its groups' topics.
  int zombie_records = 0, checked = 0;
  for (const auto& group : victim_groups) {
    std::uint64_t fence = 0;
    for (const auto& m : cluster.readTopic("td.assign." + group)) {
      td::v1::AssignmentRecord r;
      if (!r.ParseFromString(m.value)) continue;
      ++checked;
      std::uint64_t epoch = 0;
      if (r.has_owner()) {
        fence = std::max(fence, r.owner().coordinator_epoch());
        continue;
      }
      if (r.has_assigned()) epoch = r.assigned().coordinator_epoch();
      if (r.has_abort()) epoch = r.abort().coordinator_epoch();
      if (r.has_completed()) epoch = r.completed().coordinator_epoch();
      if (r.has_failed()) epoch = r.failed().coordinator_epoch();
      if (fence > 0 && epoch < fence) {
        ++zombie_records;
        ADD_FAILURE() << group << ": a record of epoch " << epoch << " after the fence " << fence
                      << ": " << r.DebugString();
      }
    }
  }
  // No event of the zombie either. A victim whose refused transaction made it join the group
  // again may be given a partition back: it then restores the group under an epoch above the
  // survivor's, and its events from then on are an owner's, not a zombie's.
  std::map<std::string, std::uint64_t> survivor_epoch;   // group -> epoch of the survivor's restore
  const auto events = cluster.events();
  for (const auto& e : events) {
    if (e.has_group_restored() && e.coordinator_id() == survivor) {
      auto& epoch = survivor_epoch[e.group_id()];
      epoch = std::max(epoch, e.coordinator_epoch());
    }
  }
  for (const auto& e : events) {
    const auto fence = survivor_epoch.find(e.group_id());
    const bool reowned = fence != survivor_epoch.end() && e.coordinator_epoch() > fence->second;
    EXPECT_FALSE(e.coordinator_id() == victim && victim_groups.contains(e.group_id()) &&
                 e.timestamp_ms() > stopped_at && !reowned)
        << "the zombie's event is readable: " << e.DebugString();
  }
  // s1 ran twice (its failure, then the retry: once, by whichever owner), s2 once.
  for (const auto& [family, marks] : marksByFamily(cluster)) {
    std::multiset<std::pair<std::string, std::uint32_t>> runs;
    for (const auto& m : marks) runs.insert({m.step, m.attempt});
    const std::multiset<std::pair<std::string, std::uint32_t>> expected = {
        {"s1", 1}, {"s1", 2}, {"s2", 1}};
    EXPECT_EQ(runs, expected) << family;
  }
  std::printf("[ measured ] exactly-once: SIGSTOP of %s -> %s restored its %zu groups: %lld ms; "
              "on waking %s; %d records checked, %d of the zombie after a fence\n",
              victim.c_str(), survivor.c_str(), victim_groups.size(),
              static_cast<long long>(taken_over_ms), outcome.c_str(), checked, zombie_records);
  expectAuditClean(cluster, "audit-zombie");
}

// --exactly-once through rebalances: a second coordinator joins and leaves three times while
// every worker heartbeats (a transaction every few tens of milliseconds). A transaction that
// a rebalance overtakes is refused (its offsets carry the old generation): the coordinator
// aborts it and joins the group again instead of stopping (seen in a fresh-clone run:
// "Specified group generation id is not valid", and the coordinator stopped). Every group
// completes, every step ran once, td-audit verify is clean, the first coordinator still runs.
TEST(Failover, ApacheKafkaExactlyOnceCoordinatorSurvivesRebalancesUnderItsTransactions) {
  if (!Cluster::onApacheKafka()) GTEST_SKIP() << "Apache Kafka only (transactions)";
  constexpr int kGroups = 4, kWorkers = 3, kSteps = 6;
  Cluster cluster(Cluster::Options{.start_coordinator = false, .partitions = kPartitions});
  auto args = coordinatorArgs();
  args.push_back("--exactly-once");
  Process& c1 = cluster.startCoordinator("c1", args);
  ASSERT_TRUE(waitBalanced(cluster, {"c1"})) << cluster.logs("coordinator");
  Fleet fleet = startGroups(cluster, "churn", kGroups, kWorkers, kSteps);
  ASSERT_TRUE(waitMarks(cluster, fleet, kWorkers, kStartTimeout)) << cluster.logs("coordinator");
  for (const char* id : {"c2", "c3", "c4"}) {
    Process& other = cluster.startCoordinator(id, args);
    ASSERT_TRUE(waitBalanced(cluster, {"c1", id})) << cluster.logs("coordinator");
    other.signal(SIGTERM);
    ASSERT_EQ(other.wait(std::chrono::seconds(30)), 0) << cluster.logs("coordinator");
    ASSERT_TRUE(waitBalanced(cluster, {"c1"})) << cluster.logs("coordinator");
    ASSERT_TRUE(c1.running()) << cluster.logs("coordinator");
  }
  openGate(cluster);
  expectWorkersSucceed(cluster, fleet);
  expectEveryStepRanOnce(cluster, fleet, eventsWhenComplete(cluster));
  EXPECT_TRUE(c1.running()) << cluster.logs("coordinator");
  const std::string log = readFile(cluster.dir() / "coordinator-c1.log");
  std::size_t rejoins = 0;
  for (auto at = log.find("joining it again"); at != std::string::npos;
       at = log.find("joining it again", at + 1)) {
    ++rejoins;
  }
  std::printf("[ measured ] exactly-once through 6 rebalances: c1 rejoined %zu times after a "
              "refused transaction\n",
              rejoins);
  expectAuditClean(cluster, "audit-churn");
}

}  // namespace
}  // namespace td::testing
