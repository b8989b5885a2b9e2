// One group: the peers that share a schema's results, and the queue manager that shards the
// schema's steps across them. Pure: every mutator takes `now` and appends effects to `out`.
//
// Step states and their transitions:
//
//   waiting --(all depends_on succeeded)--> queued --(assigned to an eligible member)--> running
//   running --succeeded--> succeeded                 (every step succeeded => group completed)
//   running --failed/timed out/rejected, retryable, failures < max_attempts--> queued + backoff
//   running --failed..., not retryable or failures == max_attempts--> failed => group failed
//   running --lost (peer missed its lease, left, was replaced, or aborted it while leaving)-->
//           queued at once, unless lost is not retryable, or lost attempts reach
//           max_lost_attempts, or (count_lost_attempts) failures reach max_attempts => failed
//   running --overran its expected duration, queue empty, a member idle--> running twice
//           (a speculative attempt on the idle member races the running one)
//   running twice --either succeeded--> succeeded, the other attempt aborted (AbortStep with
//           won_by_attempt; its late result is ignored)
//   running twice --either failed or was lost--> running (the other attempt goes on; the end
//           is counted as usual, but nothing is re-queued and the step does not fail while an
//           attempt of it runs)
//
// Group states: running --(every step succeeded)--> completed
//               running --(a step failed for good)--> failed (in-flight attempts are aborted)
//               running --(no member for abandoned_group_timeout; Core)--> abandoned
//
// Queued steps are handed out longest expected duration first (DurationTable; steps with no
// history before any with history, in schema order; ties in schema order; see
// docs/architecture.md, "Scheduling order"). Each goes to the least loaded member with a free
// slot that has not failed it (fewest steps assigned, then least expected work left, then join
// order: with one slot each, the first idle member); a member that failed it may take it only
// once its backoff has passed.
//
// Speculative attempts (docs/architecture.md, "Speculative attempts"): once no step is
// queued and a member runs nothing, a running attempt that has run longer than
// max(CoreConfig::speculation_factor x expected, expected + speculation_margin) gets a twin on
// that member (not the one running it, nor one that failed the step). `expected` is the step's
// DurationTable history, else the median of this group's successful steps; without either,
// nothing is raced. At most one speculative attempt per step in the group's life, at most
// max_speculative_per_group at once, none for a step with `speculative: false` (StepSpec
// no_speculation) or when CoreConfig::speculation is off. Most overdue first.
//
// Members are live while they heartbeat: the
// Core checks leases through the TimerQueue and calls loseMember() when one lapses.
// Thread safety: none; owned by the Core.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/result.h"
#include "coordinator/core_types.h"
#include "coordinator/step_stats.h"
#include "coordinator/step_table.h"

namespace td::coordinator {

class Group {
 public:
  // Creates the group with `founder`'s steps, whose specs (retry policies resolved) are
  // `steps` (StepTables::intern); emits group_created (the founder joins through addMember
  // afterwards). `config`, `timers` and `durations` must outlive the group.
  // `partition` is the input partition of its family; `epoch` its owner's epoch, stamped on
  // what it writes. `durations` orders the queue and learns from successful runs (emitting
  // PublishStepStats); null: schema order, nothing learned.
  Group(std::string id, std::string compatibility_key, std::uint64_t ordinal,
        std::int32_t partition, std::uint64_t epoch, const td::v1::PeerRegistered& founder,
        std::shared_ptr<const StepTable> steps, const CoreConfig& config, TimerQueue& timers, DurationTable* durations, Instant now,
        Effects& out);

  // Takes away the group's counts from the census it is attached to, if any.
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Adds the group's counts (status, steps by state) to `census` and keeps them up to date
  // there from now on, along with the totals of what happens to it (Census). The Core attaches
  // every group it holds once it is built; `census` must outlive the group. Not before: what a
  // constructor or restore() does is not counted as a transition.
  void attach(Census* census);

  // Rebuilds a group from its td.state snapshot for a new owner with epoch `epoch`. Emits the
  // snapshot's outbox again (identical records), then, for a running group, group_restored and
  // an OwnerChanged record. Every present member gets a full lease from `now` to be heard
  // (grace), backoff timers are re-armed from the snapshot's wall-clock times, and the
  // scheduler runs at the next tick. Queued steps are ordered by `durations` as it is now.
  // The snapshot's step specs are interned in `tables`.
  // Errors: kInvalidArgument naming what is inconsistent.
  static td::Result<std::unique_ptr<Group>> restore(const td::v1::GroupSnapshot& snapshot,
                                                    std::uint64_t epoch, const CoreConfig& config,
                                                    TimerQueue& timers, DurationTable* durations,
                                                    StepTables& tables, Instant now, Effects& out);
  // The group's state for td.state (the caller adds the outbox). Wall-clock times are derived
  // from `now`, so a restore on another host re-arms timers at the same wall-clock instants.
  td::v1::GroupSnapshot snapshot(Instant now) const;
  // The group's td.state record, StateRecord{group = snapshot(now) plus `outbox`}, serialized.
  // It parses to exactly that record (the steps come last on the wire). A step is re-encoded
  // only when its state changed since the previous call, so a cycle costs what it changed plus
  // a copy of the other steps' bytes, not a rebuild of the whole group.
  // `outbox_wire`: the outbox already in wire form (appendOutboxEvent/appendOutboxAssignment
  // in core.h), so the shell serializes each output record once for td.state and its topic.
  std::string encodeState(Instant now, std::string_view outbox_wire) const;

  const std::string& id() const { return id_; }
  const std::string& compatibilityKey() const { return compatibility_key_; }
  std::uint64_t ordinal() const { return ordinal_; }  // creation order, for "oldest group wins"
  std::int32_t partition() const { return partition_; }
  std::uint64_t epoch() const { return epoch_; }
  td::v1::GroupStatus status() const { return status_; }
  // When the group completed, failed or was abandoned; nullopt while it runs.
  std::optional<Millis> finishedAt() const { return finished_at_; }
  // Since when the running group has had no present member (mono): its last member left or
  // was lost, and nobody joined since. nullopt while it has one, or once it is not running.
  std::optional<Millis> memberlessSince() const {
    return status_ == td::v1::GROUP_STATUS_RUNNING ? memberless_since_ : std::nullopt;
  }
  // True while some member is present (its lease is checked).
  bool hasPresentMember() const {
    return std::any_of(members_.begin(), members_.end(), [](const Member& m) { return m.present; });
  }
  // Ends the running, memberless group as abandoned: aborts any attempt still running (there
  // is nobody to answer), marks every step that did not succeed failed (not run), and emits
  // group_abandoned. The Core forgets it afterwards.
  void abandon(Instant now, Effects& out);
  // Every member's change refs (own and built on), qualified by repository.
  const std::unordered_set<std::string>& refs() const { return refs_; }
  struct MemberSession {
    std::string peer_id;
    std::string session_id;
    std::int64_t sent_at_ms = 0;   // of its registration
  };
  // Every member that ever joined, latest session per peer.
  std::vector<MemberSession> memberSessions() const;
  std::uint64_t lastSequence() const { return next_sequence_ - 1; }
  // Ids of the queued steps in the order the scheduler considers them.
  std::vector<std::string> queuedOrderForTest() const;

  // Adds a peer (already known not to be a present member with this session). `refs` are its
  // qualified change refs, `shared_refs` how many of them the group had. Arms its lease.
  void addMember(const td::v1::PeerRegistered& peer, const std::vector<std::string>& refs,
                 std::uint32_t shared_refs, Instant now, Effects& out);
  // The peer's session is gone: it left. Its running step is re-queued as lost (see the
  // policy above).
  void removeMember(const std::string& peer_id, const std::string& reason, Instant now,
                    Effects& out);
  // A newer session (`new_session_id`) of the peer replaced its present session, whose process
  // may still run: while the group runs, each step it runs gets an AbortStep addressed to the
  // old session (and a step_aborted event), then the old session gets SessionEnded{REPLACED};
  // then, as for removeMember, peer_left and the steps re-queued as lost. No-op if the peer has
  // no present session.
  void replaceMember(const std::string& peer_id, const std::string& new_session_id, Instant now,
                     Effects& out);
  // Checks the peer's lease (armed for `now`): declares it lost if it lapsed (peer_lost, its
  // steps re-queued, SessionEnded{LOST} to its session); otherwise, if it runs a step and has
  // been silent for silentAfter(), publishes PeerSilent once for this silent spell; re-arms
  // itself for the next check.
  void checkLease(const std::string& peer_id, Instant now, Effects& out);
  // How long a member may be silent before PeerSilent is published: half the lease, and at
  // least two heartbeat intervals; nullopt when that is not below the lease (no notice).
  static std::optional<Millis> silentAfter(const CoreConfig& config);
  // Runs the scheduler (a backoff may have passed).
  void wake(Instant now, Effects& out);

  void onHeartbeat(const td::v1::PeerHeartbeat& msg, Instant now, Effects& out);
  void onStarted(const td::v1::StepStarted& msg, Instant now, Effects& out);
  void onFinished(const td::v1::StepFinished& msg, Instant now, Effects& out);
  // A member's report of its universe run (docs/configuration.md, "The universe"): recorded as
  // universe_started / universe_finished when the group has completed and the report comes
  // from a present member's session; each once per session (a finish without a start is
  // recorded too: the worker does not wait for its start report's acknowledgement). Anything
  // else is input_ignored: not_a_member, stale_session, group_not_completed, duplicate.
  void onUniverseStarted(const td::v1::UniverseStarted& msg, Instant now, Effects& out);
  void onUniverseFinished(const td::v1::UniverseFinished& msg, Instant now, Effects& out);
  // An operator cancelled the running group: every running attempt gets an AbortStep, queued
  // and waiting steps will not run, group_cancelled is recorded and GroupCancelled published
  // for every member. The group is then finished (status CANCELLED) like a failed one.
  void cancel(const td::v1::CancelGroup& request, Instant now, Effects& out);
  // Records an input that was valid but changed nothing (duplicate, stale, ...).
  void ignore(std::string reason, std::string detail, const std::string& peer_id,
              const std::string& step_id, std::uint32_t attempt, Instant now, Effects& out);

  // The reply a (new or repeated) registration of `peer` gets.
  td::v1::GroupJoined joinedReply(const td::v1::PeerRegistered& peer) const;
  // True if `session_id` is the current, present session of `peer_id`.
  bool isPresentSession(const std::string& peer_id, const std::string& session_id) const;

 private:
  enum class StepState { kWaiting, kQueued, kRunning, kSucceeded, kFailed };
  // One step's state; its spec is in table_ (shared by the groups of the same steps).
  struct StepRun {
    const td::v1::StepSpec* spec = nullptr;   // table_->spec(index)
    StepState state = StepState::kWaiting;
    std::uint32_t attempt = 0;        // last attempt number handed out (1-based)
    std::uint32_t failures = 0;       // failures counted toward max_attempts
    std::uint32_t lost = 0;           // lost attempts (capped by max_lost_attempts)
    std::size_t unmet_deps = 0;
    std::set<std::string> failed_on;  // peers that failed it
    Millis retry_not_before{0};       // those peers may retry only from then on
    std::string peer_id;              // of the running or last attempt
    std::string session_id;
    bool abort_requested = false;
    td::v1::StepOutcome last_outcome = td::v1::STEP_OUTCOME_UNSPECIFIED;
    std::uint64_t last_duration_ms = 0;
    // Raised by every change of the fields above (setState raises it too): encodeState()
    // re-encodes a step only when it moved. A write without a raise would leave td.state
    // behind; coordinator_property_test compares every record written with snapshot().
    std::uint64_t version = 0;
    // When the running attempt was assigned (mono), for choosing the least loaded member and
    // for speculation; `assigned_wall` is the same instant by the wall clock as written to
    // td.state (0: unknown, a snapshot from before it was kept: counts as assigned long ago,
    // and is never raced).
    Millis assigned_at{0};
    Millis assigned_wall{0};
    // Speculative attempts. `attempt`, `peer_id`, ... above are the step's own attempt (the
    // running one, or the last); `racing` is a second attempt running at once. While both run,
    // the step's own is the original and `racing` the speculative one; when one of them ends
    // without winning, the other becomes the step's own (promoteRacing()).
    std::uint32_t handed_out = 0;     // highest attempt number handed out (>= attempt)
    bool speculative = false;         // the step's own attempt is a speculative one
    bool speculated = false;          // it had its speculative attempt (one per step)
    struct Racing {
      std::uint32_t attempt = 0;
      std::string peer_id;
      std::string session_id;
      bool abort_requested = false;
      bool speculative = true;
      Millis assigned_at{0};
      Millis assigned_wall{0};
    };
    std::optional<Racing> racing;
  };
  // Position in queued_: (has history, longest first, schema order). Fixed when the step is
  // queued, so a td.step-stats update never reorders a queue (and costs no group any work).
  struct QueueKey {
    bool known = false;           // steps without history sort first
    std::uint64_t inverse_ms = 0; // UINT64_MAX - expected ms: longer sorts first
    std::size_t index = 0;        // schema order breaks ties
    friend auto operator<=>(const QueueKey&, const QueueKey&) = default;
  };
  QueueKey queueKeyOf(std::size_t index) const;
  void enqueue(std::size_t index);
  struct Member {
    std::string peer_id;
    std::string session_id;
    std::uint32_t slots = 1;
    std::set<std::size_t> running;    // step indexes
    bool present = true;
    bool leaving = false;             // aborted its step to leave: gets no more work
    Millis last_seen{0};              // mono time of its last message
    bool silent_noticed = false;      // PeerSilent published for this silent spell
    std::string heartbeat_step;       // the step its last heartbeat said it runs (PeerSilent)
    std::int64_t sent_at_ms = 0;      // of its registration
    td::v1::UniverseProgress universe = td::v1::UNIVERSE_PROGRESS_NONE;   // of this session
  };
  Group(const CoreConfig& config, TimerQueue& timers, DurationTable* durations);  // restore()
  // Every step state change goes through here, so the counts stay right.
  void setState(StepRun& step, StepState to);
  void setStatus(td::v1::GroupStatus to);
  // Adds (sign 1) or removes (-1) this group's gauges in census_.
  void count(int sign);
  void countRetry(RetryReason reason) {
    if (census_ != nullptr) ++census_->retries_total[static_cast<std::size_t>(reason)];
  }
  // Snapshot pieces (group_state.cpp): everything but the steps, and one step.
  td::v1::GroupSnapshot snapshotHead(Instant now) const;
  static void fillStep(const StepRun& step, std::int64_t retry_not_before_ms,
                       td::v1::StepSnapshot* out);
  // A step's backoff deadline as written to td.state: wall clock, 0 once it has passed (the
  // same to the scheduler, and stable from cycle to cycle).
  static std::int64_t retryWallOf(const StepRun& step, Instant now);
  // encodeState()'s cache: which version of a step (and backoff deadline as written) was last
  // encoded, and its wire bytes (GroupSnapshot field `steps`: tag, length, StepSnapshot).
  struct EncodedStep {
    std::uint64_t version = 0;
    std::int64_t retry_not_before_ms = 0;
    std::string bytes;   // empty until first encoded
    bool matches(const StepRun& step, std::int64_t retry_ms) const {
      return !bytes.empty() && version == step.version && retry_not_before_ms == retry_ms;
    }
    void remember(const StepRun& step, std::int64_t retry_ms) {
      version = step.version;
      retry_not_before_ms = retry_ms;
    }
  };
  // Counts each step's dependencies that have not succeeded (unmet_deps).
  void countUnmetDependencies();

  td::v1::Event& emit(Instant now, Effects& out);
  void publish(td::v1::AssignmentRecord record, Effects& out);
  void queue(std::size_t step, const std::string& reason, Millis backoff, Instant now,
             Effects& out);
  void schedule(Instant now, Effects& out);
  // Expected milliseconds of work left on `member`'s assigned steps (DurationTable; a step
  // without history counts 0), for schedule().
  std::uint64_t expectedWorkLeft(const Member& member, Instant now) const;
  void assign(std::size_t step, Member& member, Instant now, Effects& out);
  // ---- Speculative attempts (see the class comment) ----
  // The expected duration of step `index`: its history, else the median of the group's
  // successful steps; nullopt without either.
  std::optional<std::uint64_t> expectedOf(std::size_t index) const;
  // Hands out speculative attempts that are due to idle members, and arms a wake-up for the
  // next one that will be. Called by schedule() once the queue is empty.
  void speculate(Instant now, Effects& out);
  // Hands step `index` (running on another member) to `member` as a speculative attempt.
  void assignSpeculative(std::size_t index, Member& member, std::uint64_t expected_ms,
                         Instant now, Effects& out);
  // Exchanges the step's own attempt with the racing one.
  static void swapRacing(StepRun& step);
  // The step's own attempt ended without winning while `racing` runs on: the racing attempt
  // becomes the step's own.
  void promoteRacing(StepRun& step);
  // If `peer_id` runs the racing attempt of `step`, makes it the step's own (swapRacing), so
  // the code that ends an attempt ends the step's own. Returns whether another attempt of the
  // step still runs (then in `racing`).
  static bool focus(StepRun& step, const std::string& peer_id);
  // The attempt of `step` that `peer_id` runs (its number), for its own session's records.
  static std::uint32_t attemptOf(const StepRun& step, const std::string& peer_id);
  void complete(Instant now, Effects& out);
  // Ends the group as failed by `step`; `failure` is its last attempt (GroupFailed.failure).
  void fail(std::size_t step, const std::string& reason, td::v1::StepFailure failure, Instant now,
            Effects& out);
  // A counted failure of `step` (reported by `finished`): retry with backoff or fail the group.
  void failedAttempt(std::size_t step, const td::v1::StepFinished& finished, Instant now,
                     Effects& out);
  // The running attempt of `step` is lost (emits step_finished outcome lost if `record`).
  void lostAttempt(std::size_t step, const std::string& reason, bool record, Instant now,
                   Effects& out);
  enum class Gone { kLeft, kReplaced, kLost };
  // `replaced_by`: the new session, for kReplaced.
  void dropMember(Member& member, Gone how, const std::string& reason,
                  const std::string& replaced_by, Instant now, Effects& out);
  // The member was heard from: renews its lease and ends a silent spell.
  void heard(Member& member, Instant now) {
    member.last_seen = now.mono;
    member.silent_noticed = false;
  }
  // When checkLease() must next look at `member`: its silent notice or its lease expiry.
  Millis nextCheck(const Member& member) const;
  // Ends every step that has not finished: waiting and queued ones fail unrun, running ones get
  // an AbortStep with `reason` (their workers answer with an aborted finish).
  void abortInFlight(const std::string& reason, Instant now, Effects& out);
  // Aborts the step's own attempt (and, with `racing_too`, the racing one) unless already
  // asked to. `won_by`: the attempt whose success made this one unnecessary (0: none).
  void publishAbort(StepRun& step, const std::string& reason, Instant now, Effects& out,
                    std::uint32_t won_by = 0);
  void abortRunning(StepRun& step, const std::string& reason, Instant now, Effects& out);
  Millis backoffFor(const StepRun& step) const;
  void fillSummary(google::protobuf::RepeatedPtrField<td::v1::StepSummary>* out) const;
  Member* findMember(const std::string& peer_id);
  const Member* findMember(const std::string& peer_id) const;
  // The member whose universe report (`what`: "universe_started", ...) may move its universe
  // run to `to`, or null after recording why the report is ignored.
  Member* universeReporter(const std::string& peer_id, const std::string& session_id,
                           td::v1::UniverseProgress to, std::string_view what, Instant now,
                           Effects& out);
  // Finds the step a worker message refers to, or records why it is ignored and returns null.
  // A report of the racing attempt is matched too (the caller focus()es on it).
  StepRun* matchRunning(const std::string& peer_id, const std::string& session_id,
                        const std::string& step_id, std::uint32_t attempt, std::size_t* index,
                        Instant now, Effects& out);

  const CoreConfig& config_;
  TimerQueue& timers_;
  DurationTable* durations_;           // not owned; null: schema order
  std::string id_;
  std::string compatibility_key_;
  std::uint64_t ordinal_;
  std::int32_t partition_ = 0;
  std::uint64_t epoch_ = 1;
  td::v1::GroupStatus status_ = td::v1::GROUP_STATUS_RUNNING;
  Millis created_at_wall_;
  std::string schema_name_;
  std::string schema_digest_;
  std::optional<Millis> finished_at_;
  std::optional<Millis> memberless_since_;   // see memberlessSince()
  std::string last_gone_peer_;               // the member whose going left the group empty
  std::uint64_t next_sequence_ = 1;
  std::shared_ptr<const StepTable> table_;   // the specs, by step index
  std::vector<StepRun> steps_;
  std::set<QueueKey> queued_;          // in scheduling order (QueueKey)
  std::vector<QueueKey> queue_keys_;   // per step: its key while it is queued
  std::size_t succeeded_ = 0;
  std::vector<Member> members_;        // in join order
  std::unordered_map<std::string, std::size_t> member_index_;
  std::unordered_set<std::string> refs_;
  mutable std::vector<EncodedStep> encoded_;   // by step index; see encodeState()
  std::array<std::int64_t, 5> step_counts_{};  // by StepState
  // Durations of the group's successful steps, for expectedOf() (sorted lazily).
  mutable std::vector<std::uint64_t> succeeded_ms_;
  mutable bool succeeded_ms_sorted_ = true;
  Millis speculation_wake_{-1};                // the wake-up speculate() armed last (mono)
  Census* census_ = nullptr;                   // not owned; see attach()
};

}  // namespace td::coordinator
