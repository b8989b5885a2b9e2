// The simulation's Kafka: topics of partitioned logs, one consumer group with cooperative
// rebalancing and committed offsets, broker outages. Records are written whole or not at all;
// readers see a record once it is appended. Everything runs on the Scheduler's one thread.
//
// The consumer group (the coordinators' input, td.registrations with td.completions as a
// co-partitioned companion) models what the shell relies on from librdkafka:
//   - a member whose heartbeats stop for `session_timeout` (its process crashed or is frozen,
//     or the broker is unreachable) is dropped from the group and its partitions are free; a
//     member that leaves frees them at once. As librdkafka's, heartbeats go on while the
//     member's own thread is busy (blocked in a flush, restoring);
//   - the target assignment spreads the partitions evenly over the members, keeping owners
//     where it can (cooperative-sticky); a partition moves only after its owner revoked it at
//     one of its polls (or was dropped), and is assigned at one of the new owner's polls;
//   - stored offsets are committed at a poll (most of the time: librdkafka's timer) and at a
//     revocation, only by a member still in the group that owns the partition; a member
//     dropped from the group learns it at its next poll (every partition revoked) and joins
//     again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/time.h"
#include "kafka/types.h"
#include "protocol/protocol.h"
#include "simulation/scheduler.h"

namespace td::sim {

struct BusOptions {
  int partitions = 3;               // of every topic but td.assign.* (one)
  Millis session_timeout{6000};
  protocol::Topics topics;
  // A fixed bug re-introduced on purpose (docs/testing.md, "Simulation"): the coordinator
  // commits its offsets itself when it stores them (before 2221d83) instead of leaving that to
  // librdkafka's timer. A commit made while the member's assignment is changing carries the
  // old generation: the group refuses it and librdkafka drops the whole assignment and joins
  // again.
  bool bug_stale_generation_commit = false;
  bool trace = false;   // rebalances on stderr
};

class MemoryBus {
 public:
  MemoryBus(Scheduler& scheduler, BusOptions options);

  Scheduler& scheduler() { return scheduler_; }
  const BusOptions& options() const { return options_; }

  // ---- Logs
  int partitionCount(const std::string& topic) const;
  // `partition`, or by key (protocol::partitionFor) when it is -1.
  std::int32_t partitionOf(const std::string& topic, std::int32_t partition,
                           const std::string& key) const {
    return partition >= 0 ? partition : protocol::partitionFor(key, partitionCount(topic));
  }
  // partition -1: by key (partitionOf). Returns the record's offset.
  std::int64_t append(const std::string& topic, std::int32_t partition, const std::string& key,
                      const std::string& value);
  const std::vector<kafka::Message>& log(const std::string& topic, std::int32_t partition);
  std::int64_t high(const std::string& topic, std::int32_t partition) {
    return static_cast<std::int64_t>(log(topic, partition).size());
  }
  std::vector<std::string> topicsWithPrefix(const std::string& prefix) const;

  // ---- Outages: the broker answers nothing before `until`.
  void outage(Millis until) { down_until_ = std::max(down_until_, until); }
  bool down() const { return scheduler_.now() < down_until_; }
  Millis downUntil() const { return down_until_; }

  // ---- Freezes that strike inside a flush: the coordinator stops with its cycle's records
  // queued and writes them when it thaws (a zombie, if it stayed away past the session timeout).
  void freezeInFlush(Scheduler::ActorId actor, Millis length) { freeze_in_flush_[actor] = length; }
  std::optional<Millis> takeFreeze(Scheduler::ActorId actor) {
    auto it = freeze_in_flush_.find(actor);
    if (it == freeze_in_flush_.end()) return std::nullopt;
    const Millis length = it->second;
    freeze_in_flush_.erase(it);
    return length;
  }

  // ---- The consumer group
  struct Rebalance {
    std::vector<std::int32_t> revoked;
    std::vector<std::int32_t> assigned;
  };
  int join(Scheduler::ActorId actor);   // a new member id; `actor` heartbeats for it
  void leave(int member);           // its partitions are free at once
  bool inGroup(int member) const;
  // What `member` hears at this poll: every owned partition revoked if it was dropped (it is
  // then a member again), else what the target assignment moves. Applies it.
  Rebalance rebalance(int member);
  bool rebalancePending(int member) const;
  const std::set<std::int32_t>& owned(int member) const;
  // Offsets stored for the next commit; with bug_stale_generation_commit, committed at once.
  void store(int member, const std::string& topic, std::int32_t partition, std::int64_t next);
  // Commits what `member` stored for the partitions it owns (some of them, or all).
  void commit(int member, const std::set<std::int32_t>& partitions);
  std::int64_t committed(const std::string& topic, std::int32_t partition) const;
  // Drops members silent past the session timeout. Returns the next time one may be dropped.
  Millis expireMembers();

  // Why a member stopped owning a partition.
  struct Revocation {
    std::string member;   // its actor's name (the coordinator id)
    std::int32_t partition = 0;
    Millis at{0};
    enum Reason { kMoved, kDropped, kRefusedCommit } reason = kMoved;
  };
  const std::vector<Revocation>& revocations() const { return revocations_; }

  // Counters for the run's summary line.
  std::uint64_t rebalances() const { return rebalances_; }

 private:
  struct Member {
    bool in_group = true;
    bool dropped = false;   // dropped from the group: its next poll hears everything revoked
    Revocation::Reason dropped_for = Revocation::kDropped;
    Scheduler::ActorId actor = -1;
    Millis last_seen{0};   // its last heartbeat
    std::set<std::int32_t> owned;
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> stored;
  };
  std::set<std::int32_t> target(int member) const;
  void revoked(int member, std::int32_t partition, Revocation::Reason reason);
  bool assigning(int member) const;

  Scheduler& scheduler_;
  BusOptions options_;
  std::map<std::string, std::vector<std::vector<kafka::Message>>> topics_;
  Millis down_until_{0};
  std::map<Scheduler::ActorId, Millis> freeze_in_flush_;
  std::map<int, Member> members_;
  int next_member_ = 0;
  std::map<std::int32_t, int> owner_;   // td.registrations partition -> member
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> committed_;
  std::uint64_t rebalances_ = 0;
  std::vector<Revocation> revocations_;
};

}  // namespace td::sim
