#include "coordinator/group.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"
#include "common/hash.h"

namespace td::coordinator {

namespace {

const char* stateName(int state) {
  static constexpr const char* kNames[] = {"waiting", "queued", "running", "succeeded", "failed"};
  return kNames[state];
}

// Whether a failed attempt may be retried under the step's retry_on.
bool retryable(const td::v1::RetryPolicy& retry, td::v1::StepOutcome outcome,
               std::int32_t exit_code) {
  switch (outcome) {
    case td::v1::STEP_OUTCOME_TIMED_OUT:
      return retry.retry_on_timeout();
    case td::v1::STEP_OUTCOME_REJECTED:
      return true;   // another peer's schema may know it; counted, so it cannot loop
    case td::v1::STEP_OUTCOME_FAILED: {
      if (retry.retry_on_any_exit()) return true;
      const auto& codes = retry.retry_on_exit_codes();
      return std::find(codes.begin(), codes.end(), exit_code) != codes.end();
    }
    default:
      return false;
  }
}

// The end of a failed attempt's output for GroupFailed.failure: its last kFailureLines lines,
// at most kFailureBytes (cut at a line start where one is in reach, else at a UTF-8 boundary).
constexpr std::size_t kFailureLines = 10;
constexpr std::size_t kFailureBytes = 2048;

std::string lastLines(std::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  std::size_t from = 0;   // where the kept lines begin
  std::size_t pos = text.size();
  for (std::size_t lines = 0; lines < kFailureLines && pos > 0; ++lines) {
    const std::size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string_view::npos) break;
    pos = nl;
    if (lines + 1 == kFailureLines) from = nl + 1;
  }
  std::string_view tail = text.substr(from);
  if (tail.size() > kFailureBytes) {
    tail.remove_prefix(tail.size() - kFailureBytes);
    while (!tail.empty() && (static_cast<unsigned char>(tail.front()) & 0xC0) == 0x80) {
      tail.remove_prefix(1);   // the rest of a character cut in two
    }
  }
  return std::string(tail);
}

td::v1::StepFailure failureOf(const td::v1::StepFinished& finished) {
  td::v1::StepFailure failure;
  failure.set_step_id(finished.step_id());
  failure.set_peer_id(finished.peer_id());
  failure.set_attempt(finished.attempt());
  failure.set_outcome(finished.outcome());
  failure.set_exit_code(finished.exit_code());
  failure.set_signal(finished.signal());
  failure.set_output_tail(lastLines(finished.output_tail()));
  return failure;
}

td::v1::StepFailure lostFailure(const std::string& step_id, const std::string& peer_id,
                                std::uint32_t attempt) {
  td::v1::StepFailure failure;
  failure.set_step_id(step_id);
  failure.set_peer_id(peer_id);
  failure.set_attempt(attempt);
  failure.set_outcome(td::v1::STEP_OUTCOME_LOST);
  failure.set_exit_code(-1);
  return failure;
}

}  // namespace

std::string_view retryReasonName(RetryReason reason) {
  switch (reason) {
    case RetryReason::kFailed:
      return "failed";
    case RetryReason::kTimedOut:
      return "timed_out";
    case RetryReason::kRejected:
      return "rejected";
    case RetryReason::kLost:
      return "lost";
  }
  return "unknown";
}

std::size_t universeOutcomeIndex(td::v1::StepOutcome outcome) {
  const auto* it = std::find(kUniverseOutcomes.begin(), kUniverseOutcomes.end(), outcome);
  return static_cast<std::size_t>(it - kUniverseOutcomes.begin());
}

Group::Group(std::string id, std::string compatibility_key, std::uint64_t ordinal,
             std::int32_t partition, std::uint64_t epoch, const td::v1::PeerRegistered& founder,
             std::shared_ptr<const StepTable> steps, const CoreConfig& config, TimerQueue& timers,
             DurationTable* durations, Instant now, Effects& out)
    : config_(config),
      timers_(timers),
      durations_(durations),
      id_(std::move(id)),
      compatibility_key_(std::move(compatibility_key)),
      ordinal_(ordinal),
      partition_(partition),
      epoch_(epoch),
      created_at_wall_(now.wall) {
  table_ = std::move(steps);
  steps_.reserve(table_->size());
  for (std::size_t i = 0; i < table_->size(); ++i)
    steps_.push_back(StepRun{.spec = &table_->spec(i)});
  step_counts_[static_cast<std::size_t>(StepState::kWaiting)] =
      static_cast<std::int64_t>(steps_.size());
  countUnmetDependencies();
  queue_keys_.resize(steps_.size());
  schema_name_ = founder.schema_name();
  schema_digest_ = founder.schema_digest();
  auto& created = *emit(now, out).mutable_group_created();
  created.set_compatibility_key(compatibility_key_);
  created.set_schema_name(founder.schema_name());
  created.set_schema_digest(founder.schema_digest());
  *created.mutable_steps() = founder.steps();
  created.set_founding_peer_id(founder.peer_id());
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].unmet_deps == 0) queue(i, "initial", Millis(0), now, out);
  }
}

Group::Group(const CoreConfig& config, TimerQueue& timers, DurationTable* durations)
    : config_(config), timers_(timers), durations_(durations), ordinal_(0), created_at_wall_(0) {}

Group::~Group() {
  if (census_ != nullptr) count(-1);
}

void Group::attach(Census* census) {
  if (census_ != nullptr) count(-1);
  census_ = census;
  if (census_ != nullptr) count(1);
}

void Group::count(int sign) {
  std::int64_t* groups = status_ == td::v1::GROUP_STATUS_COMPLETED ? &census_->groups_completed
                         : status_ == td::v1::GROUP_STATUS_FAILED  ? &census_->groups_failed
                         : status_ == td::v1::GROUP_STATUS_ABANDONED
                             ? &census_->groups_abandoned
                         : status_ == td::v1::GROUP_STATUS_CANCELLED
                             ? &census_->groups_cancelled
                             : &census_->groups_running;
  *groups += sign;
  std::int64_t* steps[] = {&census_->steps_waiting, &census_->steps_queued,
                           &census_->steps_running, &census_->steps_succeeded,
                           &census_->steps_failed};
  for (std::size_t i = 0; i < step_counts_.size(); ++i) *steps[i] += sign * step_counts_[i];
}

void Group::setState(StepRun& step, StepState to) {
  if (step.state == to) return;
  if (census_ != nullptr) count(-1);
  --step_counts_[static_cast<std::size_t>(step.state)];
  ++step_counts_[static_cast<std::size_t>(to)];
  step.state = to;
  ++step.version;
  if (census_ != nullptr) count(1);
}

void Group::setStatus(td::v1::GroupStatus to) {
  if (census_ != nullptr) {
    count(-1);
    if (to == td::v1::GROUP_STATUS_COMPLETED) ++census_->groups_completed_total;
    if (to == td::v1::GROUP_STATUS_FAILED) ++census_->groups_failed_total;
    if (to == td::v1::GROUP_STATUS_ABANDONED) ++census_->groups_abandoned_total;
    if (to == td::v1::GROUP_STATUS_CANCELLED) ++census_->groups_cancelled_total;
  }
  status_ = to;
  if (census_ != nullptr) count(1);
}

Group::QueueKey Group::queueKeyOf(std::size_t index) const {
  if (durations_ == nullptr) return QueueKey{.index = index};
  const auto expected = durations_->expectedMs(schema_name_, steps_[index].spec->id());
  if (!expected) return QueueKey{.index = index};
  return QueueKey{.known = true,
                  .inverse_ms = std::numeric_limits<std::uint64_t>::max() - *expected,
                  .index = index};
}

void Group::enqueue(std::size_t index) {
  queue_keys_[index] = queueKeyOf(index);
  queued_.insert(queue_keys_[index]);
}

std::vector<std::string> Group::queuedOrderForTest() const {
  std::vector<std::string> ids;
  for (const auto& key : queued_) ids.push_back(steps_[key.index].spec->id());
  return ids;
}

void Group::countUnmetDependencies() {
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    for (std::size_t dependent : table_->dependents(i)) {
      if (steps_[i].state != StepState::kSucceeded) ++steps_[dependent].unmet_deps;
    }
  }
}

std::vector<Group::MemberSession> Group::memberSessions() const {
  std::vector<MemberSession> sessions;
  sessions.reserve(members_.size());
  for (const auto& m : members_) sessions.push_back({m.peer_id, m.session_id, m.sent_at_ms});
  return sessions;
}

td::v1::Event& Group::emit(Instant now, Effects& out) {
  PublishEvent effect;
  auto& e = effect.event;
  e.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  e.set_group_id(id_);
  e.set_sequence(next_sequence_++);
  e.set_timestamp_ms(now.wall.count());
  e.set_coordinator_id(config_.coordinator_id);
  e.set_coordinator_epoch(epoch_);
  out.emplace_back(std::move(effect));
  return std::get<PublishEvent>(out.back()).event;
}

void Group::publish(td::v1::AssignmentRecord record, Effects& out) {
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  out.emplace_back(PublishAssignment{.group_id = id_, .record = std::move(record)});
}

td::v1::GroupJoined Group::joinedReply(const td::v1::PeerRegistered& peer) const {
  td::v1::GroupJoined joined;
  joined.set_peer_id(peer.peer_id());
  joined.set_session_id(peer.session_id());
  joined.set_group_id(id_);
  joined.set_assign_topic(config_.topics.assign(id_));
  joined.set_status(status_);
  for (const auto& m : members_) {
    if (m.present) joined.add_member_peer_ids(m.peer_id);
  }
  joined.set_coordinator_epoch(epoch_);
  joined.set_heartbeat_interval_ms(static_cast<std::uint64_t>(config_.heartbeat_interval.count()));
  joined.set_lease_ms(static_cast<std::uint64_t>(config_.lease.count()));
  return joined;
}

Group::Member* Group::findMember(const std::string& peer_id) {
  auto it = member_index_.find(peer_id);
  if (it == member_index_.end() || !members_[it->second].present) return nullptr;
  return &members_[it->second];
}

const Group::Member* Group::findMember(const std::string& peer_id) const {
  return const_cast<Group*>(this)->findMember(peer_id);
}

bool Group::isPresentSession(const std::string& peer_id, const std::string& session_id) const {
  const Member* member = findMember(peer_id);
  return member != nullptr && member->session_id == session_id;
}

void Group::addMember(const td::v1::PeerRegistered& peer, const std::vector<std::string>& refs,
                      std::uint32_t shared_refs, Instant now, Effects& out) {
  auto [it, inserted] = member_index_.try_emplace(peer.peer_id(), members_.size());
  Member member{.peer_id = peer.peer_id(),
                .session_id = peer.session_id(),
                .slots = peer.slots() == 0 ? 1u : peer.slots(),
                .last_seen = now.mono,
                .sent_at_ms = peer.sent_at_ms()};
  if (inserted) {
    members_.push_back(std::move(member));
  } else {
    // A peer that left may come back with a new session; it keeps its place in join order.
    members_[it->second] = std::move(member);
  }
  refs_.insert(refs.begin(), refs.end());
  memberless_since_.reset();   // a member again: the abandonment timer is off
  auto& joined = *emit(now, out).mutable_peer_joined();
  joined.set_peer_id(peer.peer_id());
  joined.set_session_id(peer.session_id());
  *joined.mutable_repos() = peer.repos();
  joined.set_complex(peer.complex());
  joined.set_shared_refs(shared_refs);
  if (status_ != td::v1::GROUP_STATUS_RUNNING) return;
  timers_.at(nextCheck(members_[it->second]), id_, peer.peer_id());
  schedule(now, out);
}

void Group::publishAbort(StepRun& step, const std::string& reason, Instant now, Effects& out,
                         std::uint32_t won_by) {
  step.abort_requested = true;
  ++step.version;
  td::v1::AssignmentRecord record;
  auto& abort = *record.mutable_abort();
  abort.set_group_id(id_);
  abort.set_step_id(step.spec->id());
  abort.set_attempt(step.attempt);
  abort.set_peer_id(step.peer_id);
  abort.set_session_id(step.session_id);
  abort.set_reason(reason);
  abort.set_coordinator_epoch(epoch_);
  abort.set_won_by_attempt(won_by);
  *emit(now, out).mutable_step_aborted() = abort;
  publish(std::move(record), out);
}

void Group::abortRunning(StepRun& step, const std::string& reason, Instant now, Effects& out) {
  if (!step.abort_requested) publishAbort(step, reason, now, out);
  if (step.racing && !step.racing->abort_requested) {
    swapRacing(step);
    publishAbort(step, reason, now, out);
    swapRacing(step);
  }
}

void Group::swapRacing(StepRun& step) {
  TD_CHECK(step.racing.has_value());
  auto& r = *step.racing;
  std::swap(step.attempt, r.attempt);
  std::swap(step.peer_id, r.peer_id);
  std::swap(step.session_id, r.session_id);
  std::swap(step.abort_requested, r.abort_requested);
  std::swap(step.speculative, r.speculative);
  std::swap(step.assigned_at, r.assigned_at);
  std::swap(step.assigned_wall, r.assigned_wall);
  ++step.version;
}

void Group::promoteRacing(StepRun& step) {
  swapRacing(step);
  step.racing.reset();
}

bool Group::focus(StepRun& step, const std::string& peer_id) {
  if (!step.racing) return false;
  if (step.racing->peer_id == peer_id) swapRacing(step);
  return true;
}

std::uint32_t Group::attemptOf(const StepRun& step, const std::string& peer_id) {
  return step.racing && step.racing->peer_id == peer_id ? step.racing->attempt : step.attempt;
}

void Group::dropMember(Member& member, Gone how, const std::string& reason,
                       const std::string& replaced_by, Instant now, Effects& out) {
  const bool lost = how == Gone::kLost;
  member.present = false;
  if (std::none_of(members_.begin(), members_.end(), [](const Member& m) { return m.present; })) {
    memberless_since_ = now.mono;   // the Core arms the abandonment timer (memberlessSince())
    last_gone_peer_ = member.peer_id;
  }
  if (lost && census_ != nullptr) ++census_->peers_lost_total;
  auto& gone = lost ? *emit(now, out).mutable_peer_lost() : *emit(now, out).mutable_peer_left();
  gone.set_peer_id(member.peer_id);
  gone.set_session_id(member.session_id);
  gone.set_reason(reason);
  auto running = std::move(member.running);
  member.running.clear();
  if (how != Gone::kLeft && status_ == td::v1::GROUP_STATUS_RUNNING) {
    // The session's process may still run its steps, which are handed to others below: tell
    // it (docs/protocol.md, "Sessions that end"). A replaced session is alive as far as we
    // know, so its steps are aborted first: old workers know AbortStep, and the auditor sees
    // the abort before the step's next attempt (docs/audit.md, overlapping_attempts).
    td::v1::AssignmentRecord record;
    auto& ended = *record.mutable_session_ended();
    ended.set_group_id(id_);
    ended.set_peer_id(member.peer_id);
    ended.set_session_id(member.session_id);
    if (how == Gone::kReplaced) {
      const std::string why = fmt::format("replaced by a new session of peer {} (session {})",
                                          member.peer_id, replaced_by);
      for (std::size_t index : running) {
        StepRun& step = steps_[index];
        if (step.state != StepState::kRunning) continue;
        focus(step, member.peer_id);   // its own attempt, not the one racing it
        if (!step.abort_requested) publishAbort(step, why, now, out);
      }
      ended.set_cause(td::v1::SessionEnded::CAUSE_REPLACED);
      ended.set_reason(why);
      ended.set_replaced_by_session_id(replaced_by);
    } else {
      ended.set_cause(td::v1::SessionEnded::CAUSE_LOST);
      ended.set_reason(reason);
    }
    for (std::size_t index : running) {
      auto& requeued = *ended.add_requeued();
      requeued.set_step_id(steps_[index].spec->id());
      requeued.set_attempt(attemptOf(steps_[index], member.peer_id));
    }
    ended.set_coordinator_epoch(epoch_);
    publish(std::move(record), out);
  }
  for (std::size_t step : running) {
    if (steps_[step].state == StepState::kRunning) focus(steps_[step], member.peer_id);
    lostAttempt(step, reason, /*record=*/true, now, out);
  }
  schedule(now, out);
}

void Group::removeMember(const std::string& peer_id, const std::string& reason, Instant now,
                         Effects& out) {
  if (Member* member = findMember(peer_id)) {
    dropMember(*member, Gone::kLeft, reason, "", now, out);
  }
}

void Group::replaceMember(const std::string& peer_id, const std::string& new_session_id,
                          Instant now, Effects& out) {
  if (Member* member = findMember(peer_id)) {
    dropMember(*member, Gone::kReplaced, "replaced by a new session", new_session_id, now, out);
  }
}

std::optional<Millis> Group::silentAfter(const CoreConfig& config) {
  const Millis after = std::max(config.lease / 2, config.heartbeat_interval * 2);
  if (after >= config.lease) return std::nullopt;
  return after;
}

Millis Group::nextCheck(const Member& member) const {
  const auto silent = silentAfter(config_);
  if (silent && !member.silent_noticed) return member.last_seen + *silent;
  return member.last_seen + config_.lease;
}

void Group::checkLease(const std::string& peer_id, Instant now, Effects& out) {
  Member* member = findMember(peer_id);
  if (member == nullptr || status_ != td::v1::GROUP_STATUS_RUNNING) return;
  const Millis expires = member->last_seen + config_.lease;
  if (expires > now.mono) {
    const auto silent = silentAfter(config_);
    if (silent && !member->silent_noticed && now.mono >= member->last_seen + *silent) {
      // Once per spell (heard() ends it); only a member running a step keeps anyone waiting.
      member->silent_noticed = true;
      if (!member->running.empty()) {
        // The step its heartbeats name, if it still holds it (with slots > 1 it also holds
        // steps taken ahead); else the first it holds in schema order.
        std::size_t index = *member->running.begin();
        if (const auto named = table_->find(member->heartbeat_step);
            named && member->running.contains(*named)) {
          index = *named;
        }
        const StepRun& step = steps_[index];
        const Millis silent_for = now.mono - member->last_seen;
        td::v1::AssignmentRecord record;
        auto& notice = *record.mutable_peer_silent();
        notice.set_group_id(id_);
        notice.set_peer_id(member->peer_id);
        notice.set_session_id(member->session_id);
        notice.set_step_id(step.spec->id());
        notice.set_attempt(attemptOf(step, member->peer_id));
        notice.set_silent_for_ms(static_cast<std::uint64_t>(silent_for.count()));
        notice.set_lease_ms(static_cast<std::uint64_t>(config_.lease.count()));
        notice.set_heard_at_ms((now.wall - silent_for).count());
        notice.set_coordinator_epoch(epoch_);
        publish(std::move(record), out);
      }
    }
    // One entry per check, at the earliest thing still to look at (so entries never multiply).
    timers_.at(std::max(nextCheck(*member), now.mono + Millis(1)), id_, peer_id);
    return;
  }
  dropMember(*member, Gone::kLost,
             fmt::format("missed its lease: silent for {} ms", (now.mono - member->last_seen).count()),
             "", now, out);
}

void Group::wake(Instant now, Effects& out) { schedule(now, out); }

void Group::queue(std::size_t index, const std::string& reason, Millis backoff, Instant now,
                  Effects& out) {
  StepRun& step = steps_[index];
  setState(step, StepState::kQueued);
  ++step.version;
  step.abort_requested = false;
  step.retry_not_before = now.mono + backoff;
  enqueue(index);
  auto& queued = *emit(now, out).mutable_step_queued();
  queued.set_step_id(step.spec->id());
  queued.set_next_attempt(step.handed_out + 1);
  queued.set_reason(reason);
  queued.set_backoff_ms(static_cast<std::uint64_t>(backoff.count()));
  if (backoff > Millis(0)) timers_.at(step.retry_not_before, id_);
}

std::uint64_t Group::expectedWorkLeft(const Member& member, Instant now) const {
  if (durations_ == nullptr) return 0;
  std::uint64_t left = 0;
  for (std::size_t index : member.running) {
    const auto expected = durations_->expectedMs(schema_name_, steps_[index].spec->id());
    if (!expected) continue;
    const StepRun& step = steps_[index];
    const Millis assigned_at = step.racing && step.racing->peer_id == member.peer_id
                                   ? step.racing->assigned_at
                                   : step.assigned_at;
    const auto elapsed =
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, (now.mono - assigned_at).count()));
    left += *expected > elapsed ? *expected - elapsed : 0;
  }
  return left;
}

void Group::schedule(Instant now, Effects& out) {
  if (status_ != td::v1::GROUP_STATUS_RUNNING) return;
  // Cost: O(members) to count the free slots, then O(members) per step looked at, and the walk
  // stops once every free slot is taken: a completion that frees one slot costs O(members), not
  // O(queued steps). Nothing here scans other groups.
  std::size_t free_slots = 0;
  for (const auto& member : members_) {
    if (!member.present || member.leaving || member.running.size() >= member.slots) continue;
    free_slots += member.slots - member.running.size();
  }
  // Steps in queue order: longest expected first (QueueKey). assign() erases only the step it
  // places, so the iterator to the next one stays valid.
  for (auto it = queued_.begin(); free_slots > 0 && it != queued_.end();) {
    const std::size_t index = (it++)->index;
    const StepRun& step = steps_[index];
    const bool backoff_over = now.mono >= step.retry_not_before;
    // The least loaded member that has not failed it: fewest steps assigned, then the least
    // expected work left on them (with slots > 1 a peer takes steps ahead, and the next one
    // goes to whoever is expected to be free first), then join order. With one slot each, that
    // is the first idle member.
    Member* preferred = nullptr;
    std::pair<std::size_t, std::uint64_t> preferred_load{};
    Member* fallback = nullptr;
    for (auto& member : members_) {
      if (!member.present || member.leaving || member.running.size() >= member.slots) continue;
      if (!step.failed_on.contains(member.peer_id)) {
        const std::pair<std::size_t, std::uint64_t> load{member.running.size(),
                                                         expectedWorkLeft(member, now)};
        if (preferred == nullptr || load < preferred_load) {
          preferred = &member;
          preferred_load = load;
        }
        if (load.first == 0 && load.second == 0) break;   // nobody is less loaded
        continue;
      }
      if (backoff_over && fallback == nullptr) fallback = &member;
    }
    Member* chosen = preferred != nullptr ? preferred : fallback;
    if (chosen == nullptr) continue;
    assign(index, *chosen, now, out);
    --free_slots;
  }
  if (queued_.empty()) speculate(now, out);
}

std::optional<std::uint64_t> Group::expectedOf(std::size_t index) const {
  if (durations_ != nullptr) {
    if (auto expected = durations_->expectedMs(schema_name_, steps_[index].spec->id())) {
      return expected;
    }
  }
  if (succeeded_ms_.empty()) return std::nullopt;
  if (!succeeded_ms_sorted_) {
    std::sort(succeeded_ms_.begin(), succeeded_ms_.end());
    succeeded_ms_sorted_ = true;
  }
  return succeeded_ms_[succeeded_ms_.size() / 2];
}

void Group::speculate(Instant now, Effects& out) {
  if (!config_.speculation || status_ != td::v1::GROUP_STATUS_RUNNING) return;
  // Cost: O(members x slots) plus the candidates' sort; only while the queue is empty and a
  // member idles (the end of a group), and nothing here scans other groups.
  const auto idle = [](const Member& m) { return m.present && !m.leaving && m.running.empty(); };
  if (std::none_of(members_.begin(), members_.end(), idle)) return;   // a finish calls again
  struct Candidate {
    Millis overdue;
    std::size_t index;
    std::uint64_t expected_ms;
  };
  std::vector<Candidate> due;
  std::optional<Millis> next_due;
  std::size_t racing = 0;
  for (const auto& member : members_) {
    for (std::size_t index : member.running) {
      const StepRun& step = steps_[index];
      if (step.state != StepState::kRunning || step.peer_id != member.peer_id) continue;
      if (step.racing) {
        ++racing;
        continue;
      }
      if (step.speculated || step.abort_requested || step.spec->no_speculation() ||
          step.assigned_wall == Millis(0)) {
        continue;
      }
      const auto expected = expectedOf(index);
      if (!expected) continue;
      const auto scaled = static_cast<std::int64_t>(
          std::llround(static_cast<double>(*expected) * config_.speculation_factor));
      const Millis threshold =
          std::max(Millis(scaled), Millis(static_cast<std::int64_t>(*expected)) +
                                       config_.speculation_margin);
      const Millis due_at = step.assigned_at + threshold;
      if (due_at < now.mono) {
        due.push_back({now.mono - due_at, index, *expected});
      } else if (!next_due || due_at < *next_due) {
        next_due = due_at;
      }
    }
  }
  // Most overdue first; schema order breaks ties (a replay decides the same).
  std::sort(due.begin(), due.end(), [](const Candidate& a, const Candidate& b) {
    return a.overdue != b.overdue ? a.overdue > b.overdue : a.index < b.index;
  });
  for (const auto& candidate : due) {
    if (racing >= config_.max_speculative_per_group) break;
    const StepRun& step = steps_[candidate.index];
    auto chosen = std::find_if(members_.begin(), members_.end(), [&](const Member& m) {
      return idle(m) && m.peer_id != step.peer_id && !step.failed_on.contains(m.peer_id);
    });
    if (chosen == members_.end()) continue;
    assignSpeculative(candidate.index, *chosen, candidate.expected_ms, now, out);
    ++racing;
  }
  // Nothing else happens when an attempt crosses its threshold: wake up then (once per
  // instant; a stale wake-up only runs the scheduler).
  if (next_due && racing < config_.max_speculative_per_group &&
      std::any_of(members_.begin(), members_.end(), idle) &&
      (speculation_wake_ <= now.mono || *next_due < speculation_wake_)) {
    // Strictly after the threshold: an attempt is raced once it has run longer than it.
    speculation_wake_ = *next_due + Millis(1);
    timers_.at(speculation_wake_, id_);
  }
}

void Group::assignSpeculative(std::size_t index, Member& member, std::uint64_t expected_ms,
                              Instant now, Effects& out) {
  StepRun& step = steps_[index];
  ++step.version;
  step.speculated = true;
  step.handed_out = std::max(step.handed_out, step.attempt) + 1;
  step.racing = StepRun::Racing{.attempt = step.handed_out,
                                .peer_id = member.peer_id,
                                .session_id = member.session_id,
                                .speculative = true,
                                .assigned_at = now.mono,
                                .assigned_wall = now.wall};
  member.running.insert(index);
  if (census_ != nullptr) {
    ++census_->steps_assigned_total;
    ++census_->speculative_started_total;
  }
  td::v1::AssignmentRecord record;
  auto& assigned = *record.mutable_assigned();
  assigned.set_group_id(id_);
  assigned.set_step_id(step.spec->id());
  assigned.set_attempt(step.racing->attempt);
  assigned.set_peer_id(member.peer_id);
  assigned.set_session_id(member.session_id);
  assigned.set_coordinator_epoch(epoch_);
  assigned.set_speculative(true);
  assigned.set_races_attempt(step.attempt);
  assigned.set_expected_ms(expected_ms);
  *emit(now, out).mutable_step_assigned() = assigned;
  publish(std::move(record), out);
}

void Group::assign(std::size_t index, Member& member, Instant now, Effects& out) {
  StepRun& step = steps_[index];
  queued_.erase(queue_keys_[index]);
  setState(step, StepState::kRunning);
  ++step.version;
  step.assigned_at = now.mono;
  step.assigned_wall = now.wall;
  step.speculative = false;
  step.handed_out = std::max(step.handed_out, step.attempt) + 1;
  step.attempt = step.handed_out;
  if (census_ != nullptr) ++census_->steps_assigned_total;
  step.peer_id = member.peer_id;
  step.session_id = member.session_id;
  member.running.insert(index);

  td::v1::AssignmentRecord record;
  auto& assigned = *record.mutable_assigned();
  assigned.set_group_id(id_);
  assigned.set_step_id(step.spec->id());
  assigned.set_attempt(step.attempt);
  assigned.set_peer_id(member.peer_id);
  assigned.set_session_id(member.session_id);
  assigned.set_coordinator_epoch(epoch_);
  *emit(now, out).mutable_step_assigned() = assigned;
  publish(std::move(record), out);
}

void Group::ignore(std::string reason, std::string detail, const std::string& peer_id,
                   const std::string& step_id, std::uint32_t attempt, Instant now,
                   Effects& out) {
  auto& ignored = *emit(now, out).mutable_input_ignored();
  ignored.set_reason(std::move(reason));
  ignored.set_detail(std::move(detail));
  ignored.set_peer_id(peer_id);
  ignored.set_step_id(step_id);
  ignored.set_attempt(attempt);
}

Group::StepRun* Group::matchRunning(const std::string& peer_id, const std::string& session_id,
                                    const std::string& step_id, std::uint32_t attempt,
                                    std::size_t* index, Instant now, Effects& out) {
  const auto found = table_->find(step_id);
  if (!found) {
    ignore("unknown_step", "no such step in the group's schema", peer_id, step_id, attempt, now,
           out);
    return nullptr;
  }
  StepRun& step = steps_[*found];
  *index = *found;
  if (step.racing && attempt == step.racing->attempt && peer_id == step.racing->peer_id) {
    if (session_id != step.racing->session_id) {
      ignore("stale_session", "the attempt belongs to another session of this peer", peer_id,
             step_id, attempt, now, out);
      return nullptr;
    }
    if (step.state == StepState::kRunning) return &step;
  }
  const bool same_attempt = attempt == step.attempt && peer_id == step.peer_id;
  if (same_attempt && session_id != step.session_id) {
    ignore("stale_session", "the attempt belongs to another session of this peer", peer_id,
           step_id, attempt, now, out);
    return nullptr;
  }
  if (step.state == StepState::kRunning && same_attempt) return &step;
  std::string reason = "stale_attempt";
  if (attempt > std::max(step.attempt, step.handed_out) ||
      (attempt == step.attempt && peer_id != step.peer_id)) {
    reason = "unassigned_attempt";
  } else if (same_attempt && step.state == StepState::kSucceeded) {
    reason = "duplicate";
  } else if (status_ != td::v1::GROUP_STATUS_RUNNING) {
    reason = "group_finished";
  }
  ignore(reason,
         fmt::format("step is {} at attempt {} on {}", stateName(static_cast<int>(step.state)),
                     step.attempt, step.peer_id),
         peer_id, step_id, attempt, now, out);
  return nullptr;
}

namespace {
// matchRunning() refused a worker's report and recorded input_ignored as the last effect: the
// report goes into it, so an auditor learns when that attempt really ran (docs/events.md).
void attachLateReport(Effects& out, const td::v1::StepStarted* started,
                      const td::v1::StepFinished* finished) {
  TD_CHECK(!out.empty() && std::holds_alternative<PublishEvent>(out.back()));
  auto& event = std::get<PublishEvent>(out.back()).event;
  TD_CHECK(event.has_input_ignored());
  auto& ignored = *event.mutable_input_ignored();
  if (started != nullptr) *ignored.mutable_started() = *started;
  if (finished != nullptr) {
    *ignored.mutable_finished() = *finished;
    ignored.mutable_finished()->clear_output_tail();
  }
}
}  // namespace

void Group::onHeartbeat(const td::v1::PeerHeartbeat& msg, Instant now, Effects& out) {
  Member* member = findMember(msg.peer_id());
  if (member == nullptr || member->session_id != msg.session_id()) {
    ignore(member == nullptr ? "not_a_member" : "stale_session",
           "heartbeat from a session that is not a present member (left, lost or replaced)",
           msg.peer_id(), msg.running_step_id(), msg.running_attempt(), now, out);
    return;
  }
  heard(*member, now);
  member->heartbeat_step = msg.running_step_id();
}

void Group::onStarted(const td::v1::StepStarted& msg, Instant now, Effects& out) {
  std::size_t index = 0;
  StepRun* step = matchRunning(msg.peer_id(), msg.session_id(), msg.step_id(), msg.attempt(),
                               &index, now, out);
  if (step == nullptr) {
    attachLateReport(out, &msg, nullptr);
    return;
  }
  if (Member* member = findMember(msg.peer_id())) heard(*member, now);
  *emit(now, out).mutable_step_started() = msg;
}

void Group::onFinished(const td::v1::StepFinished& msg, Instant now, Effects& out) {
  std::size_t index = 0;
  StepRun* step = matchRunning(msg.peer_id(), msg.session_id(), msg.step_id(), msg.attempt(),
                               &index, now, out);
  if (step == nullptr) {
    attachLateReport(out, nullptr, &msg);
    return;
  }
  // The reporting attempt becomes the step's own; `raced`: the other still runs (racing).
  const bool raced = focus(*step, msg.peer_id());
  *emit(now, out).mutable_step_finished() = msg;
  if (Member* member = findMember(msg.peer_id())) {
    member->running.erase(index);
    heard(*member, now);
  }
  ++step->version;
  step->last_outcome = msg.outcome();
  step->last_duration_ms = msg.duration_ms();

  const bool running = status_ == td::v1::GROUP_STATUS_RUNNING;
  if (census_ != nullptr && step->speculative &&
      (!running || msg.outcome() != td::v1::STEP_OUTCOME_ABORTED)) {   // else lostAttempt's
    ++(running && msg.outcome() == td::v1::STEP_OUTCOME_SUCCEEDED
           ? census_->speculative_won_total
           : census_->speculative_lost_total);
  }
  if (status_ != td::v1::GROUP_STATUS_RUNNING) {
    // An answer to the abort sent when the group failed; nothing more to do. The other
    // attempt of a race was aborted too: its answer is ignored.
    if (raced) {
      swapRacing(*step);
      if (census_ != nullptr && step->speculative) ++census_->speculative_lost_total;
      if (Member* other = findMember(step->peer_id)) other->running.erase(index);
      promoteRacing(*step);
    }
    setState(*step, StepState::kFailed);
    return;
  }
  if (raced && msg.outcome() != td::v1::STEP_OUTCOME_SUCCEEDED &&
      msg.outcome() != td::v1::STEP_OUTCOME_ABORTED) {
    // One attempt of a race failed while the other runs on: counted like any failure, but
    // the step neither fails nor is queued again while an attempt of it runs.
    step->failures += 1;
    step->failed_on.insert(msg.peer_id());
    promoteRacing(*step);
    schedule(now, out);
    return;
  }
  switch (msg.outcome()) {
    case td::v1::STEP_OUTCOME_SUCCEEDED:
      if (raced) {
        // The first success wins: the other attempt is aborted at once, its member freed, and
        // its result (whenever it comes) ignored as stale.
        const std::uint32_t winner = step->attempt;
        const std::string why = fmt::format("attempt {} on {} succeeded first", winner,
                                            msg.peer_id());
        swapRacing(*step);
        if (census_ != nullptr && step->speculative) ++census_->speculative_lost_total;
        publishAbort(*step, why, now, out, winner);
        if (Member* loser = findMember(step->peer_id)) loser->running.erase(index);
        swapRacing(*step);
        step->racing.reset();
      }
      setState(*step, StepState::kSucceeded);
      ++succeeded_;
      succeeded_ms_.push_back(msg.duration_ms());
      succeeded_ms_sorted_ = false;
      if (durations_ != nullptr) {
        PublishStepStats stats{.key = stepStatsKey(schema_name_, step->spec->id())};
        stats.stats = durations_->record(schema_name_, step->spec->id(), msg.duration_ms(),
                                         now.wall.count());
        stats.stats.set_coordinator_id(config_.coordinator_id);
        out.emplace_back(std::move(stats));
      }
      if (succeeded_ == steps_.size()) {
        complete(now, out);
        return;
      }
      for (std::size_t dependent : table_->dependents(index)) {
        if (--steps_[dependent].unmet_deps == 0) {
          queue(dependent, "dependencies met", Millis(0), now, out);
        }
      }
      break;
    case td::v1::STEP_OUTCOME_ABORTED:
      // The worker killed it because it is leaving: the step is not at fault, and the worker
      // takes no more work (its PeerLeft follows).
      if (Member* member = findMember(msg.peer_id())) member->leaving = true;
      lostAttempt(index, "aborted by its worker (leaving)", /*record=*/false, now, out);
      break;
    default:
      failedAttempt(index, msg, now, out);
      break;
  }
  schedule(now, out);
}

Group::Member* Group::universeReporter(const std::string& peer_id, const std::string& session_id,
                                       td::v1::UniverseProgress to, std::string_view what,
                                       Instant now, Effects& out) {
  Member* member = findMember(peer_id);
  std::string reason, detail;
  if (member == nullptr || member->session_id != session_id) {
    reason = member == nullptr ? "not_a_member" : "stale_session";
    detail = fmt::format("{} from a session that is not a present member", what);
  } else if (status_ != td::v1::GROUP_STATUS_COMPLETED) {
    reason = "group_not_completed";
    detail = fmt::format("{} while the group is {}", what, protocol::statusName(status_));
  } else if (member->universe >= to) {
    reason = "duplicate";
    detail = fmt::format("{} after this session's universe run was already {}", what,
                         member->universe == td::v1::UNIVERSE_PROGRESS_FINISHED ? "finished"
                                                                                : "started");
  } else {
    return member;
  }
  ignore(std::move(reason), std::move(detail), peer_id, "", 0, now, out);
  return nullptr;
}

void Group::onUniverseStarted(const td::v1::UniverseStarted& msg, Instant now, Effects& out) {
  Member* member = universeReporter(msg.peer_id(), msg.session_id(),
                                    td::v1::UNIVERSE_PROGRESS_STARTED, "universe_started", now, out);
  if (member == nullptr) return;
  member->universe = td::v1::UNIVERSE_PROGRESS_STARTED;
  *emit(now, out).mutable_universe_started() = msg;
}

void Group::onUniverseFinished(const td::v1::UniverseFinished& msg, Instant now, Effects& out) {
  Member* member = universeReporter(msg.peer_id(), msg.session_id(),
                                    td::v1::UNIVERSE_PROGRESS_FINISHED, "universe_finished", now,
                                    out);
  if (member == nullptr) return;
  member->universe = td::v1::UNIVERSE_PROGRESS_FINISHED;
  if (census_ != nullptr) ++census_->universe_runs_total[universeOutcomeIndex(msg.outcome())];
  *emit(now, out).mutable_universe_finished() = msg;
}

Millis Group::backoffFor(const StepRun& step) const {
  const auto& r = step.spec->retry();
  if (r.backoff_initial_ms() == 0) return Millis(0);
  const double multiplier = std::max(1.0, r.backoff_multiplier());
  double wait = static_cast<double>(r.backoff_initial_ms()) *
                std::pow(multiplier, static_cast<double>(step.failures - 1));
  wait = std::min(wait, static_cast<double>(std::max(r.backoff_max_ms(), r.backoff_initial_ms())));
  // Jitter from a hash of the attempt, not a random source: a replay decides the same.
  const double jitter = std::clamp(r.backoff_jitter(), 0.0, 1.0);
  const std::uint64_t h = fnv1a64(id_ + "\n" + step.spec->id() + "\n" + std::to_string(step.attempt));
  const double unit = static_cast<double>(h >> 11) / static_cast<double>(1ULL << 53);  // [0,1)
  wait *= 1.0 + jitter * (2.0 * unit - 1.0);
  return Millis(static_cast<std::int64_t>(wait));
}

void Group::failedAttempt(std::size_t index, const td::v1::StepFinished& finished, Instant now,
                          Effects& out) {
  StepRun& step = steps_[index];
  ++step.version;
  step.failures += 1;
  step.failed_on.insert(finished.peer_id());
  const auto outcome_name = protocol::outcomeName(finished.outcome());
  const std::string how = protocol::describeExit(finished.exit_code(), finished.signal());
  if (!retryable(step.spec->retry(), finished.outcome(), finished.exit_code())) {
    fail(index,
         fmt::format("step {} {} ({}) on {}; retry_on does not cover it", step.spec->id(),
                     outcome_name, how, finished.peer_id()),
         failureOf(finished), now, out);
    return;
  }
  if (step.failures >= step.spec->max_attempts()) {
    fail(index,
         fmt::format("step {} failed {} of {} attempts (last: {}, {}, on {})", step.spec->id(),
                     step.failures, step.spec->max_attempts(), outcome_name, how,
                     finished.peer_id()),
         failureOf(finished), now, out);
    return;
  }
  countRetry(finished.outcome() == td::v1::STEP_OUTCOME_TIMED_OUT ? RetryReason::kTimedOut
             : finished.outcome() == td::v1::STEP_OUTCOME_REJECTED ? RetryReason::kRejected
                                                                   : RetryReason::kFailed);
  queue(index, fmt::format("retry after {} ({})", outcome_name, how), backoffFor(step), now,
        out);
}

void Group::lostAttempt(std::size_t index, const std::string& reason, bool record, Instant now,
                        Effects& out) {
  StepRun& step = steps_[index];
  if (step.state != StepState::kRunning) return;
  if (record) {
    auto& lost = *emit(now, out).mutable_step_finished();
    lost.set_peer_id(step.peer_id);
    lost.set_session_id(step.session_id);
    lost.set_group_id(id_);
    lost.set_step_id(step.spec->id());
    lost.set_attempt(step.attempt);
    lost.set_outcome(td::v1::STEP_OUTCOME_LOST);
    lost.set_output_tail(reason);
    step.last_outcome = td::v1::STEP_OUTCOME_LOST;
    ++step.version;
  }
  if (census_ != nullptr && step.speculative) ++census_->speculative_lost_total;
  if (status_ != td::v1::GROUP_STATUS_RUNNING) {
    if (step.racing) {
      if (Member* other = findMember(step.racing->peer_id)) other->running.erase(index);
      promoteRacing(step);
      if (census_ != nullptr && step.speculative) ++census_->speculative_lost_total;
    }
    setState(step, StepState::kFailed);
    return;
  }
  const auto& retry = step.spec->retry();
  ++step.version;
  step.lost += 1;
  if (retry.count_lost_attempts()) step.failures += 1;
  if (step.racing) {
    // The other attempt of a race runs on: counted, nothing re-queued, the step goes on.
    promoteRacing(step);
    return;
  }
  if (!retry.retry_on_lost()) {
    fail(index, fmt::format("step {} lost ({}); retry_on does not cover lost", step.spec->id(), reason),
         lostFailure(step.spec->id(), step.peer_id, step.attempt), now, out);
  } else if (retry.max_lost_attempts() > 0 && step.lost >= retry.max_lost_attempts()) {
    fail(index,
         fmt::format("step {} lost {} times (max_lost_attempts {}); last: {}", step.spec->id(),
                     step.lost, retry.max_lost_attempts(), reason),
         lostFailure(step.spec->id(), step.peer_id, step.attempt), now, out);
  } else if (retry.count_lost_attempts() && step.failures >= step.spec->max_attempts()) {
    fail(index,
         fmt::format("step {} failed {} of {} attempts (last: lost, {})", step.spec->id(),
                     step.failures, step.spec->max_attempts(), reason),
         lostFailure(step.spec->id(), step.peer_id, step.attempt), now, out);
  } else {
    countRetry(RetryReason::kLost);
    queue(index, "retry after lost: " + reason, Millis(0), now, out);
  }
}

void Group::fillSummary(google::protobuf::RepeatedPtrField<td::v1::StepSummary>* out) const {
  for (const auto& step : steps_) {
    auto& s = *out->Add();
    s.set_step_id(step.spec->id());
    s.set_outcome(step.last_outcome);
    s.set_peer_id(step.peer_id);
    s.set_attempts(std::max(step.attempt, step.handed_out));
    s.set_duration_ms(step.last_duration_ms);
  }
}

void Group::complete(Instant now, Effects& out) {
  setStatus(td::v1::GROUP_STATUS_COMPLETED);
  finished_at_ = now.mono;
  td::v1::AssignmentRecord record;
  auto& completed = *record.mutable_completed();
  completed.set_group_id(id_);
  fillSummary(completed.mutable_steps());
  completed.set_wall_time_ms(static_cast<std::uint64_t>((now.wall - created_at_wall_).count()));
  completed.set_coordinator_epoch(epoch_);
  *emit(now, out).mutable_group_completed() = completed;
  publish(std::move(record), out);
}

void Group::cancel(const td::v1::CancelGroup& request, Instant now, Effects& out) {
  TD_CHECK(status_ == td::v1::GROUP_STATUS_RUNNING);
  setStatus(td::v1::GROUP_STATUS_CANCELLED);
  finished_at_ = now.mono;
  abortInFlight("group cancelled", now, out);
  td::v1::AssignmentRecord record;
  auto& cancelled = *record.mutable_cancelled();
  cancelled.set_group_id(id_);
  cancelled.set_reason(request.reason());
  cancelled.set_requested_by(request.requested_by());
  cancelled.set_request_id(request.request_id());
  fillSummary(cancelled.mutable_steps());
  cancelled.set_wall_time_ms(static_cast<std::uint64_t>((now.wall - created_at_wall_).count()));
  cancelled.set_coordinator_epoch(epoch_);
  *emit(now, out).mutable_group_cancelled() = cancelled;
  publish(std::move(record), out);
}

void Group::abortInFlight(const std::string& reason, Instant now, Effects& out) {
  // Steps not started never will; every attempt still in flight is aborted, and its worker
  // answers with an aborted finish.
  for (auto& step : steps_) {
    if (step.state == StepState::kQueued || step.state == StepState::kWaiting) {
      setState(step, StepState::kFailed);
    }
    if (step.state != StepState::kRunning) continue;
    abortRunning(step, reason, now, out);
  }
  queued_.clear();
}

void Group::fail(std::size_t failed_step, const std::string& reason, td::v1::StepFailure failure,
                 Instant now, Effects& out) {
  setStatus(td::v1::GROUP_STATUS_FAILED);
  finished_at_ = now.mono;
  setState(steps_[failed_step], StepState::kFailed);
  abortInFlight("group failed", now, out);
  td::v1::AssignmentRecord record;
  auto& failed = *record.mutable_failed();
  failed.set_group_id(id_);
  failed.set_failed_step_id(steps_[failed_step].spec->id());
  failed.set_reason(reason);
  *failed.mutable_failure() = std::move(failure);
  fillSummary(failed.mutable_steps());
  failed.set_wall_time_ms(static_cast<std::uint64_t>((now.wall - created_at_wall_).count()));
  failed.set_coordinator_epoch(epoch_);
  *emit(now, out).mutable_group_failed() = failed;
  publish(std::move(record), out);
}

void Group::abandon(Instant now, Effects& out) {
  TD_CHECK(memberlessSince().has_value());
  const Millis memberless_for = now.mono - *memberless_since_;
  setStatus(td::v1::GROUP_STATUS_ABANDONED);
  finished_at_ = now.mono;
  // A member's running steps were re-queued when it went, so normally nothing runs; an attempt
  // that still does (a restored snapshot's) is aborted, so the events show how it ended.
  for (auto& step : steps_) {
    if (step.state == StepState::kRunning) abortRunning(step, "group abandoned", now, out);
    if (step.state != StepState::kSucceeded) setState(step, StepState::kFailed);
  }
  queued_.clear();
  auto& abandoned = *emit(now, out).mutable_group_abandoned();
  abandoned.set_group_id(id_);
  abandoned.set_memberless_for_ms(static_cast<std::uint64_t>(memberless_for.count()));
  abandoned.set_last_peer_id(last_gone_peer_);
  abandoned.set_steps_succeeded(static_cast<std::uint32_t>(succeeded_));
  abandoned.set_steps_not_run(static_cast<std::uint32_t>(steps_.size() - succeeded_));
  fillSummary(abandoned.mutable_steps());
  abandoned.set_wall_time_ms(static_cast<std::uint64_t>((now.wall - created_at_wall_).count()));
  abandoned.set_coordinator_epoch(epoch_);
}

}  // namespace td::coordinator
