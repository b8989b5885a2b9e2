// The coordinator core: a deterministic state machine, `handle(input, now) -> effects`.
// It groups peers (see docs/architecture.md, "Grouping") and owns every group's queue manager.
//
// Per-input cost is independent of the number of groups and peers: groups, peers and
// compatibility families are found through hash maps, and the best group for a new peer is
// found through a per-family index from change ref to groups.
//
// Thread safety: none; one thread owns a Core. No I/O, no clock, no threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "coordinator/core_types.h"
#include "coordinator/group.h"

namespace td::coordinator {

// A group's outbox in wire form, for Core::encodeState: each call appends one GroupSnapshot
// `outbox` entry holding OutboxRecord{event or assignment} with the record's serialized bytes,
// the same bytes the shell produces to the record's own topic.
void appendOutboxEvent(std::string_view event_bytes, std::string* wire);
void appendOutboxAssignment(std::string_view record_bytes, std::string* wire);

class Core {
 public:
  explicit Core(CoreConfig config);
  // Groups keep references into the Core (timers, census): it stays where it was built.
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // Applies one input; returns what the shell must do, in order. Invalid input produces a
  // DeadLetter effect (and, for a registration, a rejection reply) and changes nothing else.
  [[nodiscard]] Effects handle(const Input& input, Instant now);

  // ---- Ownership (coordinator fail-over; see docs/architecture.md, "Fail-over") ----
  // Groups belong to the input partition their family's registrations arrive on. The shell
  // claims a partition in td.state with a new epoch, restores its groups, and only then feeds
  // the partition's input.

  // Groups created on `partition` from now on are stamped with `epoch`.
  void setPartitionEpoch(std::int32_t partition, std::uint64_t epoch);
  // Restores `partition`'s groups from their latest td.state snapshots, owned with `epoch`
  // (which also becomes the partition's epoch). Returns what they must write (Group::restore):
  // each snapshot's outbox again, then group_restored and OwnerChanged for running groups.
  // A snapshot that does not validate is skipped with a DeadLetter effect naming the problem
  // (the shell records the bytes); the other groups are restored.
  // `forgotten` are the partition's forgotten groups: their ids and sessions stay refused.
  [[nodiscard]] Effects restore(std::int32_t partition, std::uint64_t epoch,
                                const std::vector<td::v1::GroupSnapshot>& snapshots,
                                const std::vector<td::v1::ForgottenGroup>& forgotten,
                                Instant now);
  // The partition moved to another coordinator: forgets its groups without writing anything.
  // Returns their ids (the shell releases what it holds for them, such as their td.assign
  // topics' producers).
  std::vector<std::string> dropPartition(std::int32_t partition);
  // The state of a group for td.state, if the core has it.
  std::optional<td::v1::GroupSnapshot> snapshot(const std::string& group_id, Instant now) const;
  // The same as a serialized td.state record with `outbox` (Group::encodeState: costs what
  // changed since the group's previous record).
  // `outbox_wire` is the outbox in wire form (appendOutboxEvent, appendOutboxAssignment above).
  std::optional<std::string> encodeState(const std::string& group_id, Instant now,
                                         std::string_view outbox_wire) const;
  std::optional<std::int32_t> partitionOf(const std::string& group_id) const;
  // Groups forgotten (retention passed) since the last call: the shell replaces their snapshots
  // with these records, so their ids and sessions stay refused after a fail-over too.
  std::vector<td::v1::ForgottenGroup> takeForgotten();
  // Forgotten groups whose refusal period ended since the last call, with their partitions:
  // the shell deletes their records (null value), and compaction removes them.
  std::vector<std::pair<std::string, std::int32_t>> takeExpired();

  // Counts of groups and steps by state and totals of transitions (see Census): kept as states
  // change, so reading it is O(1) and touches no group.
  const Census& census() const { return census_; }

  const CoreConfig& config() const { return config_; }
  std::size_t groupCount() const { return groups_.size(); }
  const Group* findGroupForTest(const std::string& group_id) const;
  // The group a peer (by id) currently belongs to, or empty.
  std::string groupOfPeerForTest(const std::string& peer_id) const;

  // ---- Duration history (td.step-stats; docs/architecture.md, "Scheduling order") ----
  // Takes a record read from td.step-stats under `key`. Returns why it is unusable (the shell
  // dead-letters it), or empty. Steps queued from now on are ordered with it; queues already
  // formed keep their order. O(1): no group is touched. Ignored (empty) when
  // CoreConfig::step_stats is off.
  [[nodiscard]] std::string learnStepStats(std::string_view key, const td::v1::StepStats& stats);
  const DurationTable& durations() const { return durations_; }
  // Step tables some group holds: one per distinct list of steps, however many groups use it.
  std::size_t stepTableCountForTest() const { return step_tables_.liveCount(); }

 private:
  struct Family {
    // Change ref -> ids of this family's groups whose members carry that ref.
    std::unordered_map<std::string, std::vector<std::string>> groups_by_ref;
  };
  struct PeerRecord {
    std::string session_id;
    std::string group_id;
    std::int64_t sent_at_ms = 0;   // of the registration: orders the sessions of one peer
  };

  void onRegistration(const Registration& input, Instant now, Effects& out);
  void onLeft(const td::v1::PeerLeft& msg, Instant now, Effects& out);
  void onHeartbeat(const td::v1::PeerHeartbeat& msg, Instant now, Effects& out);
  void onStarted(const td::v1::StepStarted& msg, Instant now, Effects& out);
  void onFinished(const td::v1::StepFinished& msg, Instant now, Effects& out);
  void onUniverseStarted(const td::v1::UniverseStarted& msg, Instant now, Effects& out);
  void onUniverseFinished(const td::v1::UniverseFinished& msg, Instant now, Effects& out);
  void onTick(Instant now, Effects& out);
  void onCancel(const td::v1::CancelGroup& msg, Instant now, Effects& out);
  void runTimers(Instant now, Effects& out);

  // The group `peer` should join, or null to start a new one; `shared` gets the overlap.
  Group* chooseGroup(const td::v1::PeerRegistered& peer, const std::vector<std::string>& refs,
                     Instant now, std::uint32_t* shared);
  std::string newGroupId(const td::v1::PeerRegistered& peer, const std::string& key) const;
  void indexRefs(Family& family, const Group& group, const std::vector<std::string>& refs);
  // When a finished group is forgotten: finished_group_retention after it finished, or at once
  // (the next tick) for an abandoned group.
  Millis retentionOf(const Group& group) const;
  void scheduleExpiry(const Group& group);
  // Arms the abandonment timer of `group` if it runs without a member (Group::memberlessSince;
  // docs/architecture.md, "Abandoned groups"). Called wherever a member may have gone.
  void watchMembers(const Group& group);
  // Ends the groups whose abandonment timer is due and that are still memberless.
  void abandonDue(Instant now, Effects& out);
  void forget(const std::string& group_id, Instant now);
  // Removes a group from every index (families, peers); the caller erases it from groups_.
  void unlink(const Group& group);
  // Adds a new or restored group to the indexes (families, peers).
  void link(Group& group);
  std::uint64_t epochOf(std::int32_t partition) const;
  // The group a worker message names, if the message's peer belongs to it; otherwise records
  // why it is ignored (on the group's stream, or the DLQ for an unknown group) and returns null.
  Group* groupFor(const std::string& group_id, Effects& out);
  // The same for a worker message after its validation: `problem` non-empty dead-letters it
  // as "invalid <what>: <problem>".
  Group* checkedGroup(const std::string& problem, std::string_view what,
                      const std::string& group_id, Effects& out);
  void reply(const td::v1::PeerRegistered& peer, std::int32_t partition, const Group& group,
             Effects& out) const;
  void reject(const td::v1::PeerRegistered& peer, std::int32_t partition,
              const std::string& reason, Effects& out) const;

  CoreConfig config_;
  DurationTable durations_;
  StepTables step_tables_;   // shared step specs; declared before groups_, which hold them
  DurationTable* durationsForGroups() { return config_.step_stats ? &durations_ : nullptr; }
  std::uint64_t next_ordinal_ = 1;
  std::unordered_map<std::int32_t, std::uint64_t> partition_epochs_;
  std::vector<td::v1::ForgottenGroup> forgotten_;
  std::vector<std::pair<std::string, std::int32_t>> expired_;
  // Forgotten group id -> its partition, while its id is refused (dropped with the partition).
  std::unordered_map<std::string, std::int32_t> forgotten_partition_;
  Census census_;   // declared before groups_: groups take their counts out of it when destroyed
  std::unordered_map<std::string, std::unique_ptr<Group>> groups_;
  std::unordered_map<std::string, Family> families_;
  std::unordered_map<std::string, PeerRecord> peers_;
  std::multimap<Millis, std::string> expiry_;   // mono time -> group id to forget
  std::multimap<Millis, std::string> abandon_;  // mono time -> group id to abandon if memberless
  TimerQueue timers_;                           // leases and backoff wake-ups
  // Sessions (peer id + session id) and group ids of forgotten groups, kept for
  // kTombstoneRetentionFactor x finished_group_retention: a replayed registration of such a
  // session is refused instead of founding a group under an id td.events already used.
  static constexpr int kTombstoneRetentionFactor = 6;
  std::unordered_map<std::string, Millis> tombstones_;   // key -> mono time it may be dropped
  std::multimap<Millis, std::string> tombstone_expiry_;
  void tombstone(const std::string& key, Millis until);
  Millis refusalPeriod() const {
    return config_.finished_group_retention * kTombstoneRetentionFactor;
  }
  bool isTombstoned(const std::string& key) const { return tombstones_.contains(key); }
  // Leases lapse only while the peers' own input partition flows (td.registrations[p], where
  // their heartbeats arrive): after a silence of it longer than half a lease (its leader was
  // unreachable, or this coordinator just claimed it) every peer there gets one full lease to
  // be heard again before it can be declared lost. Other partitions flowing prove nothing:
  // one broker of several may lead just this one. A partition whose peers are due to be heard
  // and that carried nothing for a quarter of a lease is probed (ProbeFlow): the shell's
  // PartitionCaughtUp shows its leader answers and nothing written there was missed, so the
  // silence of peers that all died still counts.
  struct Flow {
    std::optional<Millis> last_read;    // mono time the partition was last seen to flow
    Millis flowing_since{0};
    std::optional<Millis> probe_sent;   // an unanswered ProbeFlow's time
  };
  std::unordered_map<std::int32_t, Flow> flow_;
  Millis next_probe_scan_{0};
  void noteFlow(std::int32_t partition, Instant now);
  void noteFlowOfGroup(const std::string& group_id, Instant now);
  bool leasesMayLapse(std::int32_t partition, Instant now) const;
  void probeQuietPartitions(Instant now, Effects& out);
};

}  // namespace td::coordinator
