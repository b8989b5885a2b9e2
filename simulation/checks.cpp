#include "simulation/checks.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "audit/audit.h"
#include "td/v1/dlq.pb.h"
#include "td/v1/events.pb.h"
#include "td/v1/state.pb.h"

namespace td::sim {

namespace {

class Checker {
 public:
  explicit Checker(const RunRecord& r) : r_(r) {}

  CheckResult run() {
    const auto& topics = r_.bus.options().topics;
    // td.events: every partition, each in order (the order per group).
    std::vector<td::v1::Event> events;
    for (int p = 0; p < r_.bus.partitionCount(topics.events()); ++p) {
      for (const auto& msg : r_.bus.log(topics.events(), p)) {
        td::v1::Event e;
        if (!e.ParseFromString(msg.value)) {
          violation(fmt::format("undecodable td.events record at {}@{}", p, msg.offset));
          continue;
        }
        events.push_back(std::move(e));
      }
    }
    for (const auto& v : audit::verify(events)) {
      violation(fmt::format("td-audit verify: {} group={} step={}: {}", audit::kindName(v.kind),
                            v.group, v.step, v.message));
    }
    checkForgotten(events);
    checkCreatedOnce(events);
    checkDeadLetters();
    checkResults(events);
    checkExecutions(events);
    checkClaims();
    return {std::move(violations_), speculative_};
  }

 private:
  void violation(std::string what) { violations_.push_back(std::move(what)); }

  // A group once forgotten is never brought back from a snapshot older than its forgetting.
  void checkForgotten(const std::vector<td::v1::Event>& events) {
    const auto& topic = r_.bus.options().topics.state();
    std::map<std::string, std::uint64_t> forgotten;   // group -> epoch of its forgetting
    for (int p = 0; p < r_.bus.partitionCount(topic); ++p) {
      for (const auto& msg : r_.bus.log(topic, p)) {
        td::v1::StateRecord record;
        if (!record.ParseFromString(msg.value) || !record.has_forgotten()) continue;
        auto& epoch = forgotten[record.forgotten().group_id()];
        epoch = std::max(epoch, record.forgotten().coordinator_epoch());
      }
    }
    for (const auto& e : events) {
      if (!e.has_group_restored()) continue;
      auto it = forgotten.find(e.group_id());
      if (it == forgotten.end()) continue;
      if (e.coordinator_epoch() > it->second && e.group_restored().previous_epoch() < it->second) {
        violation(fmt::format("group {} was forgotten under epoch {} and restored under epoch {} "
                              "from a snapshot of epoch {}",
                              e.group_id(), it->second, e.coordinator_epoch(),
                              e.group_restored().previous_epoch()));
      }
    }
  }

  // A group is created once: a registration replayed after its group was forgotten is
  // refused (the forgotten-group record keeps the id), never the start of a second history.
  void checkCreatedOnce(const std::vector<td::v1::Event>& events) {
    std::map<std::string, std::set<std::string>> created;   // group -> distinct group_created
    for (const auto& e : events) {
      if (e.has_group_created()) created[e.group_id()].insert(e.SerializeAsString());
    }
    std::map<std::string, std::uint64_t> ended;   // group -> epoch of its end
    for (const auto& e : events) {
      if (e.has_group_completed() || e.has_group_failed() || e.has_group_abandoned() ||
          e.has_group_cancelled()) {
        ended[e.group_id()] = std::max(ended[e.group_id()], e.coordinator_epoch());
      }
    }
    for (const auto& e : events) {
      if (!e.has_group_created()) continue;
      auto it = ended.find(e.group_id());
      if (it != ended.end() && e.coordinator_epoch() > it->second &&
          created[e.group_id()].size() > 1) {
        violation(fmt::format("group {} created again under epoch {} after it ended under "
                              "epoch {}",
                              e.group_id(), e.coordinator_epoch(), it->second));
      }
    }
  }

  // Every garbage record handled (its offset committed) became a dead letter (guarantee 4).
  void checkDeadLetters() {
    const auto& t = r_.bus.options().topics;
    std::set<std::tuple<std::string, std::int32_t, std::int64_t>> dead;
    for (int p = 0; p < r_.bus.partitionCount(t.dlq()); ++p) {
      for (const auto& msg : r_.bus.log(t.dlq(), p)) {
        td::v1::DeadLetter letter;
        if (letter.ParseFromString(msg.value)) {
          dead.insert({letter.source_topic(), letter.source_partition(), letter.source_offset()});
        }
      }
    }
    for (const auto& g : r_.garbage) {
      const auto& [topic, partition, offset] = g;
      if (offset < r_.bus.committed(topic, partition) && !dead.contains(g)) {
        violation(fmt::format("garbage at {}[{}]@{} was handled and has no dead letter", topic,
                              partition, offset));
      }
    }
  }

  // Every worker of a group ends as its group did.
  void checkResults(const std::vector<td::v1::Event>& events) {
    std::map<std::string, int> ended;   // group -> 0 completed, 1 failed
    for (const auto& e : events) {
      if (e.has_group_completed()) ended[e.group_id()] = 0;
      if (e.has_group_failed()) ended[e.group_id()] = 1;
    }
    for (std::size_t i = 0; i < r_.outcomes.size(); ++i) {
      const auto& o = r_.outcomes[i];
      if (!o.finished || !o.error.empty()) continue;
      auto it = ended.find(o.group_id);
      if (it == ended.end()) {
        violation(fmt::format("worker {} exited {} but group {} has no result on td.events",
                              r_.specs[i]->peer_id, o.exit_code, o.group_id));
      } else if (it->second != o.exit_code) {
        violation(fmt::format("worker {} exited {} but group {} ended with {}", r_.specs[i]->peer_id,
                              o.exit_code, o.group_id, it->second));
      }
    }
  }

  // No attempt ran twice; a completed group's steps succeeded once each, in a real run.
  void checkExecutions(const std::vector<td::v1::Event>& events) {
    std::map<std::tuple<std::string, std::string, std::uint32_t>, int> runs;
    std::map<std::pair<std::string, std::string>, int> successes;
    for (const auto& e : r_.executions) {
      if (++runs[{e.group_id, e.step_id, e.attempt}] == 2) {
        violation(fmt::format("group {} step {} attempt {} ran twice", e.group_id, e.step_id,
                              e.attempt));
      }
      if (e.succeeded) ++successes[{e.group_id, e.step_id}];
    }
    for (const auto& e : events) {
      if (!e.has_step_finished() || e.step_finished().outcome() != td::v1::STEP_OUTCOME_SUCCEEDED) {
        continue;
      }
      const auto& f = e.step_finished();
      const bool ran = std::any_of(r_.executions.begin(), r_.executions.end(), [&](const Execution& x) {
        return x.group_id == e.group_id() && x.step_id == f.step_id() &&
               x.attempt == f.attempt() && x.succeeded;
      });
      if (!ran) {
        violation(fmt::format("group {} step {} attempt {} recorded as succeeded but no worker "
                              "ran it to success",
                              e.group_id(), f.step_id(), f.attempt()));
      }
    }
    // A raced step (a speculative attempt, issue 18) may succeed on both sides: the loser's
    // abort can reach it too late (a broker outage), and the core ignores its report.
    std::set<std::pair<std::string, std::string>> raced;
    for (const auto& e : events) {
      if (e.has_step_assigned() && e.step_assigned().speculative()) {
        if (raced.insert({e.group_id(), e.step_assigned().step_id()}).second) {
          ++speculative_;
        }
      }
    }
    for (const auto& [key, count] : successes) {
      if (count > 1 && !(count == 2 && raced.contains(key))) {
        violation(fmt::format("group {} step {} succeeded {} times", key.first, key.second, count));
      }
    }
  }

  // A coordinator claims a partition again only after the group moved it away, or after it
  // lost its membership (frozen, or cut off from the broker, past the session timeout): never
  // in place, which costs a restore for nothing and, before 2221d83, happened on scale-out.
  void checkClaims() {
    const auto& topic = r_.bus.options().topics.state();
    for (int p = 0; p < r_.bus.partitionCount(topic); ++p) {
      std::string last;
      Millis last_at{0};
      for (const auto& msg : r_.bus.log(topic, p)) {
        td::v1::StateRecord record;
        if (!record.ParseFromString(msg.value) || !record.has_owner()) continue;
        const std::string& id = record.owner().coordinator_id();
        const Millis at(msg.timestamp_ms);
        if (id == last && !lostInBetween(id, p, last_at, at)) {
          violation(fmt::format("{} claimed partition {} again at {} ms though the group had left "
                                "it there (a restore in place)",
                                id, p, at.count()));
        }
        last = id;
        last_at = at;
      }
    }
  }

  bool lostInBetween(const std::string& id, std::int32_t partition, Millis from, Millis to) const {
    for (const auto& r : r_.bus.revocations()) {
      if (r.member == id && r.partition == partition && r.at >= from && r.at <= to &&
          r.reason != MemoryBus::Revocation::kRefusedCommit) {
        return true;
      }
    }
    return false;
  }

  const RunRecord& r_;
  std::vector<std::string> violations_;
  std::uint64_t speculative_ = 0;
};

}  // namespace

CheckResult checkRun(const RunRecord& record) { return Checker(record).run(); }

}  // namespace td::sim
