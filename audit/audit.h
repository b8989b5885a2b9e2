// td_audit: the audit model of the td.events stream, with no Kafka in it.
//   Replay   -- collects Events in any arrival order and builds one Timeline per group
//   verify() -- checks a set of events against the protocol's invariants
// Everything here is a pure function of the events given; thread safety: none (one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "td/v1/events.pb.h"

namespace td::audit {

// One attempt of one step: what step_queued / step_assigned / step_started / step_finished /
// step_aborted said about it. Times are the events' timestamp_ms (coordinator wall clock), -1
// when the event is absent.
struct Attempt {
  std::uint32_t number = 0;
  std::string queued_reason;        // "initial", "retry after failed (exit 1)", ...
  std::uint64_t backoff_ms = 0;     // from step_queued
  std::int64_t queued_ms = -1;
  std::string peer_id;
  std::string session_id;
  std::int64_t assigned_ms = -1;
  std::int64_t started_ms = -1;
  std::int64_t finished_ms = -1;
  std::optional<td::v1::StepOutcome> outcome;  // set by step_finished
  std::int32_t exit_code = 0;
  std::int32_t signal = 0;
  std::uint64_t duration_ms = 0;    // as the worker measured it
  std::string finish_detail;        // output_tail (for lost: the coordinator's reason)
  bool aborted = false;             // a step_aborted was sent for it
  std::string abort_reason;
  std::int64_t aborted_ms = -1;
  // For overlapping_attempts (docs/audit.md). Sequences are 0 when the event is absent.
  std::uint64_t assigned_seq = 0;   // its step_assigned
  std::uint64_t aborted_seq = 0;    // its step_aborted
  // Its worker's own account, accepted (step_started / step_finished) or late (a report the
  // coordinator refused, carried by input_ignored): whether it ran at all, when it started by
  // the worker's clock, and when and in which event its worker reported it ended.
  bool ran = false;
  std::int64_t worker_started_ms = -1;  // StepStarted.started_at_ms
  std::uint64_t ended_seq = 0;          // the event with its worker's finish; 0: never reported
  std::int64_t worker_ended_ms = -1;    // worker_started_ms + duration_ms, else that event's time
  bool late_report = false;             // the finish came after it was lost/replaced
  // A speculative attempt (step_assigned speculative: docs/architecture.md, "Speculative
  // attempts") races attempt `races`, which ran on another peer; the two may overlap.
  bool speculative = false;
  std::uint32_t races = 0;
  std::uint32_t won_by = 0;             // its step_aborted: the attempt that succeeded first
  std::uint64_t finished_seq = 0;       // its step_finished (0: none)
};

struct StepTimeline {
  std::string id;
  td::v1::StepSpec spec;           // from group_created (empty if it was not seen)
  bool spec_known = false;
  std::vector<Attempt> attempts;   // by attempt number
  std::uint32_t successes = 0;
  std::uint32_t failures = 0;      // counted toward max_attempts (see verify())
  std::uint32_t lost = 0;          // lost attempts (incl. worker-aborted while running)
  std::uint32_t retries = 0;       // step_queued events other than the first
  // Of `failures` and `lost`: those that ended while the other attempt of their race (a
  // speculative attempt and the attempt it races) still ran. The coordinator counts them but
  // never fails a step while an attempt of it runs, so each allows one over the limit.
  std::uint32_t race_failures = 0;
  std::uint32_t race_lost = 0;
  std::uint32_t speculative = 0;   // speculative attempts handed out
};

struct PeerTimeline {
  std::string peer_id;
  std::string session_id;
  std::int64_t joined_ms = -1;
  std::int64_t gone_ms = -1;
  bool lost = false;               // peer_lost (true) or peer_left (false) when gone_ms >= 0
  std::string gone_reason;
};

struct IgnoredInput {
  std::int64_t at_ms = -1;
  std::string reason;
  std::string detail;
  std::string peer_id;
  std::string step_id;
  std::uint32_t attempt = 0;
};

// One peer session's universe run (universe_started / universe_finished): once its group
// completed, every peer builds the schema's universe itself. Times as in Attempt.
struct UniverseRun {
  std::string peer_id;
  std::string session_id;
  std::int64_t started_ms = -1;         // its universe_started; -1 if none (not reported)
  std::int64_t finished_ms = -1;        // its universe_finished; -1 while it runs
  std::int64_t worker_started_ms = -1;  // started_at_ms, by its worker's clock
  std::optional<td::v1::StepOutcome> outcome;   // set by universe_finished
  std::int32_t exit_code = 0;
  std::int32_t signal = 0;
  std::uint64_t duration_ms = 0;        // as the worker measured it
  std::string output_tail;
  // For verify(): how many universe_started / universe_finished events it had, and whether one
  // came before the group completed or while its session was not a present member.
  std::uint32_t starts = 0;
  std::uint32_t finishes = 0;
  bool before_completion = false;
  bool from_non_member = false;
};

// A group_restored event: a coordinator took the group over from its changelog (fail-over,
// rebalance or restart) and owns it from this sequence on.
struct Restore {
  std::uint64_t sequence = 0;
  std::int64_t at_ms = -1;
  std::int32_t partition = 0;          // input partition of the group
  std::uint64_t previous_epoch = 0;    // of the snapshot it restored
  std::string previous_coordinator;
  std::uint64_t epoch = 0;             // the new owner's (the event's coordinator_epoch)
  std::string coordinator;             // the new owner (the event's coordinator_id)
  std::uint32_t republished = 0;       // outbox records it wrote again
};

struct Timeline {
  std::string group_id;
  std::string schema_name;
  std::string founding_peer;
  std::int64_t created_ms = -1;    // -1 when group_created was not seen
  std::int64_t first_ms = -1;      // earliest event timestamp
  std::int64_t ended_ms = -1;      // group_completed / group_failed / group_abandoned
  td::v1::GroupStatus status = td::v1::GROUP_STATUS_RUNNING;  // RUNNING until it ends
  std::string failed_step;
  std::string failure_reason;
  // group_abandoned: how long it had no member, who went last, the steps it left undone.
  std::string abandoned_reason;
  std::string cancelled_by;       // group_cancelled: who asked, and why
  std::string cancel_reason;
  std::vector<PeerTimeline> peers;  // one entry per join (a rejoin is a new entry)
  std::vector<StepTimeline> steps;  // in spec order, then any unknown ones
  std::vector<IgnoredInput> ignored;
  std::vector<Restore> restores;    // group_restored events, in sequence order
  std::vector<UniverseRun> universes;  // one per (peer, session), in order of first report
  std::vector<std::uint64_t> epochs;  // distinct coordinator_epochs of its events, ascending
  std::size_t events = 0;           // distinct sequences applied
  // Records repeating an earlier record of the group byte for byte (same sequence, same
  // content): redeliveries, e.g. an outbox re-published after a fail-over. Not violations.
  std::size_t redelivered = 0;
  // Records of a coordinator that had lost the group (a zombie: stalled past its session
  // timeout, at-least-once mode): their epoch is below that of a record of the group at or
  // before their sequence. Skipped, as workers skip its assignments. Not violations.
  std::size_t fenced = 0;
  // Sequences seen again with DIFFERENT content than their first record (once each).
  std::vector<std::uint64_t> duplicates;
  std::uint64_t max_sequence = 0;
  std::vector<std::uint64_t> missing;  // sequences below max_sequence never seen

  const StepTimeline* step(std::string_view id) const;
  // Milliseconds of `t` relative to the group's start (created_ms, else first_ms).
  std::int64_t relative(std::int64_t t) const;
};

// Collects events (any order, duplicates allowed) and builds timelines by per-group sequence.
class Replay {
 public:
  void add(const td::v1::Event& event);
  void add(td::v1::Event&& event);
  std::size_t eventCount() const { return count_; }
  std::size_t groupCount() const { return by_group_.size(); }
  std::vector<std::string> groupIds() const;
  // Every group's events in sequence order, duplicates included (a duplicate follows the
  // first record with its sequence).
  const std::map<std::string, std::vector<td::v1::Event>>& eventsByGroup() const;
  // The timeline of one group, or nullopt if no event of it was added.
  std::optional<Timeline> timeline(std::string_view group_id) const;
  std::vector<Timeline> timelines() const;

 private:
  void sort() const;
  mutable std::map<std::string, std::vector<td::v1::Event>> by_group_;
  mutable bool sorted_ = true;
  std::size_t count_ = 0;
};

// Builds one group's timeline from its events (any order). A record whose coordinator_epoch
// (non-zero) is below that of another record of the group with a sequence at or below its own
// is a zombie's and is skipped (counted in `fenced`): a new owner's records begin at its
// group_restored (re-published records keep their first epoch) or at the group_created of a
// group it made. Of the other records with one sequence, the
// first given is applied; each later one is counted in `redelivered` when it serializes
// (deterministically, unknown fields included) to the same bytes as that first one, and
// listed in `duplicates` otherwise.
Timeline buildTimeline(std::string_view group_id, std::vector<td::v1::Event> events);

enum class ViolationKind {
  kSequenceGap,             // a sequence number below the group's highest was never seen
  kDuplicateSequence,       // two records with the same (group, sequence) and different content
  kMultipleSuccesses,       // a step succeeded more than once
  kTooManyFailures,         // counted failures above the step's max_attempts
  kTooManyLost,             // lost attempts above max_lost_attempts
  kCompletedWithoutSuccess, // group_completed while a step has no success
  kUnansweredAssignment,    // step_assigned with no step_finished/step_aborted in an ended group
  kOverlappingAttempts,     // a later attempt of a step ran while an earlier one may still have
  kUniverseBeforeCompletion,  // a universe event while the group had not completed
  kUniverseFromNonMember,   // a universe event of a session that was not a present member
  kDuplicateUniverse,       // a session's universe started or finished more than once
};
std::string_view kindName(ViolationKind kind);

struct Violation {
  ViolationKind kind;
  std::string group;
  std::string step;      // empty for group-level violations
  std::string message;
};

// Checks:
//  - per group, sequences 1..max without gaps (also across group_restored: a new owner
//    continues the sequence of the snapshot it restored) and without two different records
//    for one sequence; byte-identical repeats are redeliveries (Timeline::redelivered), fine;
//  - no step succeeds more than once;
//  - counted failures (failed / timed_out / rejected finishes, plus lost ones when
//    retry.count_lost_attempts) <= max_attempts; lost attempts (lost finishes, and aborted
//    finishes while the group was running: the coordinator counts both) <= max_lost_attempts
//    when that is > 0. A spec without retry gets protocol::defaultRetryPolicy(). An attempt
//    that ended so while the other attempt of its speculative race still ran raises its
//    step's limit by one (StepTimeline::race_failures, race_lost): the step does not fail
//    while an attempt of it runs;
//  - no group_completed while a step of its group_created has no success;
//  - every step_assigned is answered by a step_finished (any outcome) or a step_aborted,
//    unless the group is still running at the end of the input;
//  - no two attempts of a step ran at the same time: a later attempt B that ran (started, or
//    reported by its worker) overlaps an earlier attempt A that ran unless A's worker
//    reported A ended (step_finished of another outcome than LOST, or a late report in
//    input_ignored) in an event before B's step_assigned; or A was aborted (step_aborted)
//    before B's step_assigned and its worker reported it ended at any time; or A's worker
//    reported it ended, by its own clock (started_at_ms + duration_ms), no later than B
//    started (B's started_at_ms; else the coordinator's time of B's step_started or
//    step_assigned). An attempt its worker never reported ended overlaps every later attempt
//    that ran, unless the coordinator declared its peer lost (peer_lost: silent past its
//    lease; not a replaced or leaving session): then it is taken to have ended with its
//    worker (td-worker's step supervisor kills a step when its worker dies; a worker that was
//    only frozen reports the attempt's real end when it comes back, and that report is
//    checked as above) and is counted by unconfirmedEnds(). A speculative attempt (its
//    step_assigned says speculative, racing attempt N) may overlap attempt N: that is the
//    point of it; it must not overlap any other. See docs/audit.md;
//  - universe runs: every universe_started / universe_finished comes after group_completed,
//    from a session that joined the group and is still a member, and each at most once per
//    session. A finish without a start is fine (the worker does not wait for its start
//    report); a start never finished is counted by unfinishedUniverses().
std::vector<Violation> verify(const std::vector<td::v1::Event>& events);
std::vector<Violation> verify(const Replay& replay);
std::vector<Violation> verify(const Timeline& timeline);

// Attempts that ran, whose peer was declared lost, and whose end their worker never reported:
// verify()
// assumes they ended with their worker; nothing in the stream confirms it.
std::size_t unconfirmedEnds(const Timeline& timeline);

// Universe runs that started and were never reported finished: the worker died or lost the
// broker while it ran (or it still runs). Not a violation; nothing in the stream says more.
std::size_t unfinishedUniverses(const Timeline& timeline);

}  // namespace td::audit
