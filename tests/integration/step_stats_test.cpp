// Duration history on td.step-stats (issue 7) with real processes: the durations of a first
// group land on the topic, and a second group of the same schema, on a coordinator that only
// knows them from the topic, gets its steps longest first; bad records on td.step-stats reach
// td.dlq and do not stop anything.
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <set>

#include "td/v1/dlq.pb.h"
#include "td/v1/events.pb.h"
#include "td/v1/stats.pb.h"
#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kRunTimeout = std::chrono::seconds(90);
const std::string kStepStats = "td.step-stats";

// Steps in schema order with these sleeps (seconds); longest first is s1 s3 s2 s0.
const std::vector<std::pair<std::string, std::string>> kSleeps = {
    {"s0", "0.1"}, {"s1", "0.7"}, {"s2", "0.3"}, {"s3", "0.5"}};
const std::vector<std::string> kLongestFirst = {"s1", "s3", "s2", "s0"};

std::string sleepySchema(const std::string& name) {
  std::string yaml = "name: " + name + "\ndefaults: {timeout: 1m, max_attempts: 2}\nsteps:\n";
  for (const auto& [id, seconds] : kSleeps) {
    yaml += "  - id: " + id + "\n    run: 'sleep " + seconds + "'\n";
  }
  return yaml;
}

// The latest StepStats per key on td.step-stats (undecodable records skipped).
std::map<std::string, td::v1::StepStats> latestStats(const Cluster& cluster) {
  std::map<std::string, td::v1::StepStats> out;
  for (const auto& m : cluster.readTopic(kStepStats)) {
    td::v1::StepStats s;
    if (!m.value.empty() && s.ParseFromString(m.value)) out[m.key] = s;
  }
  return out;
}

// Step ids in the order the group founded by `founder` had them assigned (first attempts).
std::vector<std::string> assignedOrder(const Cluster& cluster, const std::string& founder) {
  std::string group;
  std::vector<std::string> order;
  for (const auto& e : cluster.events()) {
    if (e.has_group_created() && e.group_created().founding_peer_id() == founder) {
      group = e.group_id();
    }
    if (!group.empty() && e.group_id() == group && e.has_step_assigned() &&
        e.step_assigned().attempt() == 1) {
      order.push_back(e.step_assigned().step_id());
    }
  }
  return order;
}

TEST(StepStats, DurationsOfAFirstRunOrderTheNextGroupOnAFreshCoordinator) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  Process& first = cluster.startCoordinator("first", {"--log-level", "debug"});
  auto schema = cluster.writeSchema("durations", sleepySchema("durations"));

  // 1. Nothing known: schema order. One peer, so the assignment order is the queue order.
  Process& w1 = cluster.startWorker(schema, {"p1", "c1"});
  ASSERT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_EQ(assignedOrder(cluster, "p1"), (std::vector<std::string>{"s0", "s1", "s2", "s3"}));

  // 2. Its durations land on td.step-stats, one record per step, keyed schema/step.
  std::map<std::string, td::v1::StepStats> stats;
  ASSERT_TRUE(waitUntil(
      [&] {
        stats = latestStats(cluster);
        return stats.size() == kSleeps.size();
      },
      kRunTimeout))
      << cluster.logs("coordinator");
  for (const auto& [id, seconds] : kSleeps) {
    const auto& s = stats.at("durations/" + id);
    EXPECT_EQ(s.schema_name(), "durations");
    EXPECT_EQ(s.step_id(), id);
    EXPECT_EQ(s.samples(), 1u);
    EXPECT_EQ(s.coordinator_id(), "first");
    const auto slept_ms = static_cast<std::uint64_t>(std::stod(seconds) * 1000);
    EXPECT_GE(s.expected_ms(), slept_ms) << id;
    EXPECT_LT(s.expected_ms(), slept_ms + 2000) << id;
  }

  // 3. A new coordinator (it knows the history only from the topic) and a new group of the
  //    same schema: longest expected first.
  first.signal(SIGTERM);
  ASSERT_EQ(first.wait(std::chrono::seconds(30)), 0) << cluster.logs("coordinator");
  cluster.startCoordinator("second", {"--log-level", "debug"});
  Process& w2 = cluster.startWorker(schema, {"p2", "c2"});
  ASSERT_EQ(w2.wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_EQ(assignedOrder(cluster, "p2"), kLongestFirst) << cluster.logs("coordinator-second");

  // 4. The second run was folded in: two samples per step now, written by "second".
  ASSERT_TRUE(waitUntil(
      [&] {
        stats = latestStats(cluster);
        return std::all_of(stats.begin(), stats.end(),
                           [](const auto& kv) { return kv.second.samples() == 2; });
      },
      kRunTimeout))
      << cluster.logs("coordinator");
  EXPECT_EQ(stats.at("durations/s1").coordinator_id(), "second");
}

TEST(StepStats, BadRecordsOnTheTopicAreDeadLetteredAndSchedulingGoesOn) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  auto producer = cluster.producer();
  ASSERT_TRUE(producer);
  auto stats = [](const std::string& schema, const std::string& step, std::uint64_t ms) {
    td::v1::StepStats s;
    s.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    s.set_schema_name(schema);
    s.set_step_id(step);
    s.set_expected_ms(ms);
    s.set_samples(1);
    s.set_updated_at_ms(1);
    return s.SerializeAsString();
  };
  struct Record {
    std::string key;
    std::string value;
  };
  // Read at the coordinator's start ...
  const std::vector<Record> before = {
      {"garbage/1", std::string("\xff\xfe\x00\x01 not a protobuf", 20)},
      {"wrong/key", stats("g", "a", 5)},
      {"g/", stats("g", "", 5)},
      {"g/b", stats("g", "b", 900)},   // valid: b is the longest step of schema g
  };
  // ... and while it runs.
  const std::vector<Record> after = {
      {"garbage/2", std::string("\x0a\xff\xff\xff\xff\x0f", 6)},
      {"g/c", stats("g", "c", 0) + std::string("\x28\x00", 2)},   // samples 0: unusable
  };
  auto produceAll = [&](const std::vector<Record>& records) {
    int acked = 0;
    for (const auto& r : records) {
      ASSERT_TRUE(producer
                      ->produce(kStepStats, -1, r.key, r.value,
                                [&](const td::Status& s, std::int32_t, std::int64_t) {
                                  acked += s ? 1 : 0;
                                })
                      .has_value());
    }
    ASSERT_TRUE(producer->flush(std::chrono::seconds(30)).has_value());
    ASSERT_EQ(acked, static_cast<int>(records.size()));
  };
  ASSERT_NO_FATAL_FAILURE(produceAll(before));
  Process& coordinator = cluster.startCoordinator();

  auto schema = cluster.writeSchema(
      "g", "name: g\nsteps:\n  - {id: a, run: 'true'}\n  - {id: b, run: 'true'}\n"
           "  - {id: c, run: 'true'}\n");
  Process& w1 = cluster.startWorker(schema, {"p1", "c1"});
  ASSERT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
  // b has history (900 ms), a and c none: a and c first in schema order, then b.
  EXPECT_EQ(assignedOrder(cluster, "p1"), (std::vector<std::string>{"a", "c", "b"}));

  ASSERT_NO_FATAL_FAILURE(produceAll(after));
  auto isBad = [&](const std::string& key) { return key != "g/b"; };
  std::vector<td::v1::DeadLetter> letters;
  ASSERT_TRUE(waitUntil(
      [&] {
        letters.clear();
        for (const auto& m : cluster.readTopic("td.dlq")) {
          td::v1::DeadLetter d;
          if (d.ParseFromString(m.value) && d.source_topic() == kStepStats) letters.push_back(d);
        }
        return letters.size() >= 5;
      },
      std::chrono::seconds(30)))
      << letters.size() << " dead letters\n"
      << cluster.logs("coordinator");
  std::set<std::string> dead_keys;
  for (const auto& d : letters) {
    dead_keys.insert(d.key());
    EXPECT_FALSE(d.reason().empty());
  }
  for (const auto* records : {&before, &after}) {
    for (const auto& r : *records) {
      if (!isBad(r.key)) continue;
      EXPECT_TRUE(dead_keys.contains(r.key)) << r.key;
      bool same_bytes = false;
      for (const auto& d : letters) same_bytes |= d.key() == r.key && d.value() == r.value;
      EXPECT_TRUE(same_bytes) << r.key << ": the dead letter keeps the original bytes";
    }
  }
  EXPECT_EQ(dead_keys.count("g/b"), 0u);

  // Still serving: a second group completes.
  Process& w2 = cluster.startWorker(schema, {"p2", "c2"});
  ASSERT_EQ(w2.wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_TRUE(coordinator.running());
}

}  // namespace
}  // namespace td::testing
