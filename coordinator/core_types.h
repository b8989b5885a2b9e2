// Inputs, effects and configuration of the coordinator core. The core is a pure function of
// (state, input, now): it reads no clock, does no I/O and starts no thread. The Kafka adapter
// (coordinator/kafka/) turns records into Inputs and carries out the Effects in order.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/time.h"
#include "protocol/protocol.h"
#include "td/v1/assignments.pb.h"
#include "td/v1/completions.pb.h"
#include "td/v1/events.pb.h"
#include "td/v1/joins.pb.h"
#include "td/v1/registrations.pb.h"
#include "td/v1/state.pb.h"
#include "td/v1/stats.pb.h"

namespace td::coordinator {

// Configuration of the core. Every field has a default; the binary validates before use.
struct CoreConfig {
  std::string coordinator_id = "coordinator";  // names this instance on td.events
  // Epoch stamped on the assignments and events of groups on partitions whose epoch was not
  // set with Core::setPartitionEpoch (the Kafka shell always sets it from td.state claims).
  std::uint64_t epoch = 1;
  // A completed group stays joinable (late joiners learn it is done) this long; a finished
  // (completed or failed) group is forgotten after it, so memory stays bounded.
  Millis finished_group_retention{std::chrono::minutes(10)};
  // A running group with no member left (every one left or was lost) this long is ended as
  // abandoned and forgotten at once (docs/architecture.md, "Abandoned groups"); a peer that
  // joins it before then resumes it. 0: never (such a group waits for a member forever).
  Millis abandoned_group_timeout{std::chrono::minutes(5)};
  // A peer silent this long is declared lost and its running step re-queued.
  Millis lease{5000};
  // How often workers are told to heartbeat (in GroupJoined); well under the lease.
  Millis heartbeat_interval{1000};
  // Duration-aware scheduling: learn each (schema, step)'s duration from successful runs
  // (emitting PublishStepStats) and from Core::learnStepStats, and hand out the longest
  // expected queued step first (docs/architecture.md, "Scheduling order"). false: schema
  // order, nothing learned or recorded.
  bool step_stats = true;
  // Speculative attempts for stragglers (docs/architecture.md, "Speculative attempts"): when a
  // running group has no queued step and a member with nothing to run, an attempt that has run
  // longer than max(speculation_factor x expected, expected + speculation_margin) gets a twin
  // on that member; the first success wins and the other is aborted. `expected` is the step's
  // duration history (step_stats), else the median of the group's own successful steps.
  // false: never (td-coordinator --no-speculation); a step's `speculative: false` also turns
  // it off for that step.
  bool speculation = true;
  double speculation_factor = 2.0;     // >= 1
  Millis speculation_margin{2000};     // >= 0: short steps are not raced over noise
  // Speculative attempts one group runs at once, at most (>= 1).
  std::uint32_t max_speculative_per_group = 2;
  protocol::Topics topics;
};

// Timers the core keeps for its groups. Entries are checked when due (a lease may have been
// renewed meanwhile), so arming is cheap and nothing scans all groups.
struct TimerQueue {
  struct Entry {
    std::string group_id;
    std::string peer_id;   // a lease check for this peer; empty = wake the group's scheduler
  };
  std::multimap<Millis, Entry> entries;
  void at(Millis when, std::string group_id, std::string peer_id = {}) {
    entries.emplace(when, Entry{std::move(group_id), std::move(peer_id)});
  }
};

// Why a step was queued again after an attempt (Census::retries_total).
enum class RetryReason { kFailed, kTimedOut, kRejected, kLost };
inline constexpr std::size_t kRetryReasonCount = 4;
// "failed", "timed_out", "rejected", "lost" (the metric label).
std::string_view retryReasonName(RetryReason reason);

// Outcomes a worker reports for a universe run (UniverseFinished), in Census order.
inline constexpr std::size_t kUniverseOutcomeCount = 4;
inline constexpr std::array<td::v1::StepOutcome, kUniverseOutcomeCount> kUniverseOutcomes = {
    td::v1::STEP_OUTCOME_SUCCEEDED, td::v1::STEP_OUTCOME_FAILED, td::v1::STEP_OUTCOME_TIMED_OUT,
    td::v1::STEP_OUTCOME_ABORTED};
// The index of `outcome` in kUniverseOutcomes, or kUniverseOutcomeCount if it is not one.
std::size_t universeOutcomeIndex(td::v1::StepOutcome outcome);

// What the core holds and has done, for the shell's metrics. Kept up to date as states change
// (O(1) per transition, no scan), so reading it costs nothing. Gauges count what the core holds
// now; totals count since the Core was created and never decrease.
struct Census {
  // Groups held, by status. Finished groups stay until finished_group_retention forgets them;
  // groups of a partition that moved away (Core::dropPartition) are no longer counted.
  std::int64_t groups_running = 0;
  std::int64_t groups_completed = 0;
  std::int64_t groups_failed = 0;
  std::int64_t groups_abandoned = 0;   // until the next tick forgets them
  std::int64_t groups_cancelled = 0;
  // Steps of the groups held, by state (docs/architecture.md, the step state diagram).
  std::int64_t steps_waiting = 0;
  std::int64_t steps_queued = 0;
  std::int64_t steps_running = 0;
  std::int64_t steps_succeeded = 0;
  std::int64_t steps_failed = 0;
  // Totals. Restored groups are not counted as created; transitions replayed by a restore
  // happened on the previous owner and are not counted again.
  std::uint64_t groups_created_total = 0;
  std::uint64_t groups_completed_total = 0;
  std::uint64_t groups_failed_total = 0;
  std::uint64_t groups_abandoned_total = 0;
  std::uint64_t groups_cancelled_total = 0;   // cancelled by an operator (td-ctl cancel)
  std::uint64_t steps_assigned_total = 0;
  std::uint64_t peers_lost_total = 0;       // declared lost: missed their lease
  // Speculative attempts (docs/architecture.md, "Speculative attempts"): handed out; those
  // that won the race (the step's success is theirs); those that lost it (aborted because the
  // attempt they raced succeeded first, or failed or lost while it ran on).
  std::uint64_t speculative_started_total = 0;
  std::uint64_t speculative_won_total = 0;
  std::uint64_t speculative_lost_total = 0;
  std::array<std::uint64_t, kRetryReasonCount> retries_total{};   // by RetryReason
  // Universe runs reported finished (universe_finished events), by outcome: index
  // universeOutcomeIndex() of "succeeded", "failed", "timed_out", "aborted".
  std::array<std::uint64_t, kUniverseOutcomeCount> universe_runs_total{};
};

// ---- Inputs -------------------------------------------------------------------------------

// A registration, with the partition it arrived on (the reply goes to the same partition).
struct Registration {
  std::int32_t partition = 0;
  td::v1::PeerRegistered peer;
};
// Time passes: expire finished groups (and, later, leases and backoff timers).
struct Tick {};
// The shell's answer to ProbeFlow: everything written to td.registrations[partition] before
// the probe was sent has been handled, so the partition flows (its leader answers).
struct PartitionCaughtUp {
  std::int32_t partition = 0;
};

// An operator's request to cancel a group (td-ctl cancel) is td::v1::CancelGroup.
using Input = std::variant<Registration, td::v1::PeerHeartbeat, td::v1::PeerLeft,
                           td::v1::StepStarted, td::v1::StepFinished, td::v1::UniverseStarted,
                           td::v1::UniverseFinished, Tick, td::v1::CancelGroup, PartitionCaughtUp>;

// ---- Effects ------------------------------------------------------------------------------

// Write `record` to td.joins on `partition` with `key` (the compatibility key).
struct PublishJoin {
  std::int32_t partition = 0;
  std::string key;
  td::v1::JoinRecord record;
};
// Write `record` to td.assign.<group_id>, partition 0.
struct PublishAssignment {
  std::string group_id;
  td::v1::AssignmentRecord record;
};
// Write `event` to td.events with key = event.group_id().
struct PublishEvent {
  td::v1::Event event;
};
// The input was invalid: write it, with this reason, to td.dlq (the adapter has the bytes).
struct DeadLetter {
  std::string reason;
};
// A step succeeded and its (schema, step)'s expected duration changed: write `stats` to
// td.step-stats with `key`. Advisory: nothing waits for it, and a lost one only makes a later
// group's order less good (a later record of the same key supersedes it anyway).
struct PublishStepStats {
  std::string key;
  td::v1::StepStats stats;
};

// Ask the broker whether td.registrations[partition] flows: nothing was read from it for a
// quarter of a lease while some of its peers are due to be heard. The shell answers with
// PartitionCaughtUp once its leader's high watermark shows everything before the question was
// handled, and with nothing if the leader does not answer (Core::leasesMayLapse).
struct ProbeFlow {
  std::int32_t partition = 0;
};

using Effect = std::variant<PublishJoin, PublishAssignment, PublishEvent, DeadLetter,
                            PublishStepStats, ProbeFlow>;
using Effects = std::vector<Effect>;

}  // namespace td::coordinator
