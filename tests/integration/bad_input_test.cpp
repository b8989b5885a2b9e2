// Bad input on the coordinator's input topics while two groups run: garbage, invalid records,
// and a replay (twice) of everything workers wrote so far. The groups must complete exactly as
// without it (each step one run per group, per the steps' own marks), and every garbage or
// invalid record must reach td.dlq with its reason and original bytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <random>
#include <set>

#include "td/v1/completions.pb.h"
#include "td/v1/dlq.pb.h"
#include "td/v1/events.pb.h"
#include "td/v1/joins.pb.h"
#include "td/v1/registrations.pb.h"
#include "td/v1/state.pb.h"
#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kRunTimeout = std::chrono::seconds(60);
const std::string kRegistrations = "td.registrations";
const std::string kCompletions = "td.completions";

std::string schemaOf(const std::string& name, int steps) {
  std::string yaml = "name: " + name + "\ndefaults: {timeout: 1m, max_attempts: 3}\nsteps:\n";
  for (int i = 0; i < steps; ++i) {
    yaml += "  - id: s" + std::to_string(i) + "\n    run: '" + kMarkCommand + "; sleep 0.4'\n";
  }
  return yaml;
}

struct Injected {
  std::string what;
  std::string topic;
  std::int32_t partition = 0;
  std::string key;
  std::string value;
};

// A dead letter keeps the original value, or (over 256 KiB, docs/protocol.md) its beginning,
// flagged as truncated with the original size.
bool keepsOriginal(const td::v1::DeadLetter& letter, const std::string& original) {
  if (!letter.value_truncated()) return letter.value() == original;
  return letter.value_size() == original.size() && letter.value().size() < original.size() &&
         original.starts_with(letter.value());
}

// Produces every record and waits for the broker's acknowledgement of each.
void produceAll(kafka::Producer& producer, const std::vector<Injected>& records) {
  int acked = 0, failed = 0;
  for (const auto& r : records) {
    auto status = producer.produce(r.topic, r.partition, r.key, r.value,
                                   [&](const td::Status& result, std::int32_t, std::int64_t) {
                                     (result ? acked : failed) += 1;
                                   });
    ASSERT_TRUE(status.has_value()) << r.what << ": " << status.error().message();
  }
  ASSERT_TRUE(producer.flush(std::chrono::seconds(30)).has_value());
  ASSERT_EQ(failed, 0);
  ASSERT_EQ(acked, static_cast<int>(records.size()));
}

TEST(BadInput, GarbageAndReplayedInputChangeNothingAndGarbageIsDeadLettered) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  Process& coordinator = cluster.startCoordinator();
  constexpr int kSteps = 10;
  auto schema = cluster.writeSchema("pair", schemaOf("pair", kSteps));
  std::vector<Process*> workers = {
      &cluster.startWorker(schema, {"a1", "ca"}), &cluster.startWorker(schema, {"b1", "cb"}),
      &cluster.startWorker(schema, {"a2", "ca2", {"ca"}}),
      &cluster.startWorker(schema, {"b2", "cb2", {"cb"}})};

  // Both groups have started running steps, and some step has reported its result.
  ASSERT_TRUE(waitUntil(
      [&] {
        std::set<std::string> groups;
        for (const auto& m : cluster.marksWritten()) groups.insert(m.group);
        return groups.size() == 2;
      },
      kRunTimeout))
      << cluster.logs();
  auto has_finished = [](const std::vector<kafka::Message>& records) {
    return std::any_of(records.begin(), records.end(), [](const kafka::Message& m) {
      td::v1::CompletionRecord r;
      return r.ParseFromString(m.value) && r.has_finished();
    });
  };
  std::vector<kafka::Message> completions;
  ASSERT_TRUE(waitUntil(
      [&] {
        completions = cluster.readTopic(kCompletions);
        return has_finished(completions);
      },
      kRunTimeout))
      << cluster.logs();

  auto producer = cluster.producer({{"message.max.bytes", "4000000"}});
  ASSERT_TRUE(producer);

  // 1. Replay: everything on both input topics so far, produced again twice (same partition
  //    and key), before any garbage so the garbage is not replayed.
  std::vector<Injected> replay;
  const auto registrations = cluster.readTopic(kRegistrations);
  ASSERT_FALSE(registrations.empty());
  ASSERT_FALSE(completions.empty());
  for (int copy = 0; copy < 2; ++copy) {
    for (const auto& m : registrations) replay.push_back({"replay", m.topic, m.partition, m.key, m.value});
    for (const auto& m : completions) replay.push_back({"replay", m.topic, m.partition, m.key, m.value});
  }
  ASSERT_NO_FATAL_FAILURE(produceAll(*producer, replay));

  // 2. Garbage and invalid records, on the partition the workers use (in line with their
  //    traffic), built from real records where "valid but ..." is meant.
  const kafka::Message* real_registration = nullptr;
  for (const auto& m : registrations) {
    td::v1::RegistrationRecord r;
    if (r.ParseFromString(m.value) && r.has_registered()) real_registration = &m;
  }
  const kafka::Message* real_finished = nullptr;
  for (const auto& m : completions) {
    td::v1::CompletionRecord r;
    if (r.ParseFromString(m.value) && r.has_finished()) real_finished = &m;
  }
  ASSERT_TRUE(real_registration && real_finished);
  const std::int32_t p = real_registration->partition;
  const std::string key = real_registration->key;

  std::mt19937 rng(20240611);
  std::string random_bytes(300, '\0');
  for (char& c : random_bytes) c = static_cast<char>(rng() & 0xff);

  td::v1::CompletionRecord v99;
  ASSERT_TRUE(v99.ParseFromString(real_finished->value));
  v99.set_protocol_version(static_cast<td::v1::ProtocolVersion>(99));

  td::v1::CompletionRecord ghost;
  ghost.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& finished = *ghost.mutable_finished();
  finished.set_peer_id("a1");
  finished.set_session_id("0123456789abcdef");
  finished.set_group_id("pair-000000000000");
  finished.set_step_id("s0");
  finished.set_attempt(1);
  finished.set_outcome(td::v1::STEP_OUTCOME_SUCCEEDED);

  td::v1::RegistrationRecord absurd;
  ASSERT_TRUE(absurd.ParseFromString(real_registration->value));
  absurd.mutable_registered()->set_peer_id("intruder");
  absurd.mutable_registered()->set_session_id("intruder-session");
  absurd.mutable_registered()->mutable_steps(0)->set_max_attempts(0);

  const std::string& reg = real_registration->value;
  const std::string& fin = real_finished->value;
  const std::vector<Injected> garbage = {
      {"random bytes (registrations)", kRegistrations, p, key, random_bytes},
      {"random bytes (completions)", kCompletions, p, key, random_bytes.substr(0, 150)},
      {"registration truncated to half", kRegistrations, p, key, reg.substr(0, reg.size() / 2)},
      {"completion missing its last byte", kCompletions, p, key, fin.substr(0, fin.size() - 1)},
      {"protocol_version 99", kCompletions, p, key, v99.SerializeAsString()},
      {"empty (registrations)", kRegistrations, p, key, ""},
      {"empty (completions)", kCompletions, p, key, ""},
      // Over the coordinator's 512 KiB limit, under Apache Kafka's default 1 MB per record
      // (a larger one never reaches the coordinator: the broker refuses it).
      {"900 KiB record", kCompletions, p, key, std::string(900 * 1024, 'x')},
      {"completion of an unknown group", kCompletions, p, key, ghost.SerializeAsString()},
      {"registration with max_attempts 0", kRegistrations, p, key, absurd.SerializeAsString()},
  };
  ASSERT_NO_FATAL_FAILURE(produceAll(*producer, garbage));
  const auto marks_after_injection = cluster.marksWritten().size();
  EXPECT_LT(marks_after_injection, 2u * kSteps) << "the groups should still be running";

  // Both groups complete; each step ran exactly once per group.
  for (Process* w : workers) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();
  std::map<std::string, std::set<std::string>> steps_of_group;
  const auto marks = cluster.marksWritten();
  for (const auto& m : marks) {
    EXPECT_EQ(m.attempt, 1u) << m.step << " in " << m.group;
    EXPECT_TRUE(steps_of_group[m.group].insert(m.step).second) << m.step << " ran twice";
  }
  EXPECT_EQ(marks.size(), 2u * kSteps) << cluster.logs();
  ASSERT_EQ(steps_of_group.size(), 2u);
  for (const auto& [group, steps] : steps_of_group) EXPECT_EQ(steps.size(), 1u * kSteps) << group;
  EXPECT_TRUE(coordinator.running()) << "the coordinator survived its input\n" << cluster.logs();

  // Every garbage record is on td.dlq with a reason and its original bytes.
  std::vector<td::v1::DeadLetter> letters;
  std::vector<bool> found(garbage.size(), false);
  const bool all_found = waitUntil(
      [&] {
        letters.clear();
        for (const auto& m : cluster.readTopic("td.dlq")) {
          td::v1::DeadLetter letter;
          EXPECT_TRUE(letter.ParseFromString(m.value)) << "td.dlq holds a DeadLetter";
          letters.push_back(std::move(letter));
        }
        for (std::size_t i = 0; i < garbage.size(); ++i) {
          for (const auto& l : letters) {
            found[i] = found[i] || (l.source_topic() == garbage[i].topic &&
                                    l.key() == garbage[i].key && keepsOriginal(l, garbage[i].value));
          }
        }
        return std::all_of(found.begin(), found.end(), [](bool f) { return f; });
      },
      std::chrono::seconds(20));
  for (std::size_t i = 0; i < garbage.size(); ++i) {
    EXPECT_TRUE(found[i]) << "no dead letter (with the original bytes) for: " << garbage[i].what;
  }
  EXPECT_TRUE(all_found) << cluster.logs();
  for (const auto& l : letters) {
    EXPECT_FALSE(l.reason().empty());
    EXPECT_FALSE(l.coordinator_id().empty());
    if (l.value_size() == 0) {
      EXPECT_THAT(l.reason(), HasSubstr("empty record"));
      EXPECT_THAT(l.reason(), Not(HasSubstr("protocol_version")));
    }
    std::cout << "[ dlq ] " << l.source_topic() << "[" << l.source_partition() << "]@"
              << l.source_offset() << " (" << l.value().size() << " bytes of " << l.value_size()
              << (l.value_truncated() ? ", truncated" : "") << ", key " << l.key().size()
              << " bytes): " << l.reason() << "\n";
  }
  // Only the garbage was dead-lettered: the replayed records were valid input (duplicates).
  EXPECT_EQ(letters.size(), garbage.size());

  // The replay reached the coordinator, which recognised it as duplicates; the invalid
  // registration was answered with a rejection.
  int duplicates = 0;
  for (const auto& m : cluster.readTopic("td.events")) {
    td::v1::Event e;
    if (e.ParseFromString(m.value) && e.has_input_ignored()) ++duplicates;
  }
  EXPECT_GT(duplicates, 0);
  bool rejected = false;
  for (const auto& m : cluster.readTopic("td.joins")) {
    td::v1::JoinRecord r;
    rejected |= r.ParseFromString(m.value) && r.has_rejected() &&
                r.rejected().peer_id() == "intruder";
  }
  EXPECT_TRUE(rejected);
}

// Garbage on the coordinators' own changelog (td.state) costs only itself: an undecodable record
// and a snapshot that does not validate go to td.dlq with their reasons while the coordinator
// restores the partition and a group runs to completion.
TEST(BadInput, GarbageOnTheChangelogIsDeadLetteredAndCostsNothingElse) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  td::v1::StateRecord invalid;   // decodes, but has no steps
  invalid.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  invalid.mutable_group()->set_group_id("s-bad-snapshot");
  invalid.mutable_group()->set_next_sequence(1);
  std::vector<Injected> records;
  for (std::int32_t p = 0; p < 4; ++p) {
    records.push_back({"garbage", "td.state", p, "s-garbage", std::string("\xff\x01garbage", 9)});
    invalid.mutable_group()->set_partition(p);
    records.push_back({"invalid snapshot", "td.state", p, "s-bad-snapshot",
                       invalid.SerializeAsString()});
  }
  auto producer = cluster.producer();
  produceAll(*producer, records);

  auto& coordinator = cluster.startCoordinator();
  auto schema = cluster.writeSchema("state", schemaOf("state", 2));
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  auto& w2 = cluster.startWorker(schema, {"w2", "c1"});
  ASSERT_EQ(w1.wait(kRunTimeout), 0) << cluster.logs();
  ASSERT_EQ(w2.wait(kRunTimeout), 0) << cluster.logs();
  EXPECT_TRUE(coordinator.running()) << cluster.logs();

  int undecodable = 0, not_restored = 0;
  waitUntil(
      [&] {
        undecodable = not_restored = 0;
        for (const auto& m : cluster.readTopic("td.dlq")) {
          td::v1::DeadLetter letter;
          if (!letter.ParseFromString(m.value)) continue;
          if (letter.source_topic() == "td.state" && letter.key() == "s-garbage" &&
              letter.reason() == "undecodable td.state record") {
            ++undecodable;
          }
          if (letter.reason().find("snapshot of group 's-bad-snapshot'") != std::string::npos) {
            ++not_restored;
          }
        }
        return undecodable == 4 && not_restored == 4;
      },
      std::chrono::seconds(20));
  EXPECT_EQ(undecodable, 4) << cluster.logs();
  EXPECT_EQ(not_restored, 4) << cluster.logs();
}

}  // namespace
}  // namespace td::testing
