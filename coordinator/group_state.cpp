// Group <-> td.state snapshot (GroupSnapshot in messages/td/v1/state.proto).
#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "coordinator/group.h"

namespace td::coordinator {

namespace {

td::Status invalid(const td::v1::GroupSnapshot& s, const std::string& what) {
  return makeError(td::Errc::kInvalidArgument,
                   fmt::format("snapshot of group '{}': {}", s.group_id(), what));
}

// Everything restore() relies on; a snapshot is input like any other.
td::Status validate(const td::v1::GroupSnapshot& s, std::uint64_t epoch) {
  if (s.group_id().empty() || s.group_id().size() > protocol::kMaxIdBytes) {
    return invalid(s, "group id is empty or too long");
  }
  if (s.steps_size() == 0 || static_cast<std::size_t>(s.steps_size()) > protocol::kMaxSteps) {
    return invalid(s, fmt::format("{} steps (1..{} allowed)", s.steps_size(), protocol::kMaxSteps));
  }
  if (s.status() < td::v1::GROUP_STATUS_RUNNING || s.status() > td::v1::GROUP_STATUS_CANCELLED) {
    return invalid(s, fmt::format("status {} is not running, completed, failed, abandoned or cancelled",
                                  +s.status()));
  }
  if (s.next_sequence() == 0) return invalid(s, "next_sequence is 0");
  if (s.coordinator_epoch() > epoch) {
    return invalid(s, fmt::format("written with epoch {}, newer than the owner's {}",
                                  s.coordinator_epoch(), epoch));
  }
  std::unordered_set<std::string> ids;
  for (const auto& step : s.steps()) {
    if (step.spec().id().empty() || !ids.insert(step.spec().id()).second) {
      return invalid(s, fmt::format("step id '{}' is empty or repeated", step.spec().id()));
    }
    if (step.state() < td::v1::STEP_STATE_WAITING || step.state() > td::v1::STEP_STATE_FAILED) {
      return invalid(s, fmt::format("step '{}' has state {}", step.spec().id(), +step.state()));
    }
    if (step.has_racing()) {
      const auto& r = step.racing();
      if (step.state() != td::v1::STEP_STATE_RUNNING || r.peer_id().empty() ||
          r.peer_id() == step.peer_id() || r.attempt() == 0 || r.attempt() == step.attempt() ||
          std::max(r.attempt(), step.attempt()) > std::max(step.attempt(), step.attempts_handed_out()) ||
          std::none_of(s.members().begin(), s.members().end(),
                       [&](const td::v1::MemberSnapshot& m) { return m.peer_id() == r.peer_id(); })) {
        return invalid(s, fmt::format("step '{}' has an inconsistent racing attempt",
                                      step.spec().id()));
      }
    }
  }
  for (const auto& step : s.steps()) {
    for (const auto& dep : step.spec().depends_on()) {
      if (!ids.contains(dep) || dep == step.spec().id()) {
        return invalid(s, fmt::format("step '{}' depends on unknown step '{}'", step.spec().id(), dep));
      }
    }
  }
  std::unordered_set<std::string> peers;
  for (const auto& m : s.members()) {
    if (m.peer_id().empty() || !peers.insert(m.peer_id()).second) {
      return invalid(s, fmt::format("member '{}' is empty or repeated", m.peer_id()));
    }
    if (!td::v1::UniverseProgress_IsValid(m.universe())) {
      return invalid(s, fmt::format("member '{}' has universe progress {}", m.peer_id(),
                                    +m.universe()));
    }
    for (std::uint32_t index : m.running()) {
      if (index >= static_cast<std::uint32_t>(s.steps_size())) {
        return invalid(s, fmt::format("member '{}' runs step #{} of {}", m.peer_id(), index,
                                      s.steps_size()));
      }
      const auto& step = s.steps(static_cast<int>(index));
      if (step.state() != td::v1::STEP_STATE_RUNNING || step.peer_id() != m.peer_id()) {
        return invalid(s, fmt::format("member '{}' runs step '{}', which is not running on it",
                                      m.peer_id(), step.spec().id()));
      }
    }
  }
  for (const auto& record : s.outbox()) {
    if (record.has_event() && (record.event().group_id() != s.group_id() ||
                               record.event().sequence() >= s.next_sequence())) {
      return invalid(s, "an outbox event belongs to another group or a later sequence");
    }
  }
  return {};
}

}  // namespace

td::v1::GroupSnapshot Group::snapshotHead(Instant now) const {
  td::v1::GroupSnapshot s;
  s.set_group_id(id_);
  s.set_compatibility_key(compatibility_key_);
  s.set_partition(partition_);
  s.set_ordinal(ordinal_);
  s.set_coordinator_epoch(epoch_);
  s.set_coordinator_id(config_.coordinator_id);
  s.set_status(status_);
  s.set_created_at_ms(created_at_wall_.count());
  s.set_finished_at_ms(finished_at_ ? wallOf(*finished_at_, now).count() : 0);
  s.set_next_sequence(next_sequence_);
  s.set_schema_name(schema_name_);
  s.set_schema_digest(schema_digest_);
  for (const auto& m : members_) {
    auto& out = *s.add_members();
    out.set_peer_id(m.peer_id);
    out.set_session_id(m.session_id);
    out.set_slots(m.slots);
    out.set_present(m.present);
    out.set_leaving(m.leaving);
    out.set_sent_at_ms(m.sent_at_ms);
    for (std::size_t index : m.running) {
      // Not the racing attempt of a speculative race: StepSnapshot.racing names its member,
      // and a coordinator from before speculation then reads a valid snapshot (that member
      // idle, its reports ignored) instead of refusing the group.
      const StepRun& step = steps_[index];
      if (step.racing && step.racing->peer_id == m.peer_id) continue;
      out.add_running(static_cast<std::uint32_t>(index));
    }
    out.set_universe(m.universe);
  }
  std::vector<std::string> refs(refs_.begin(), refs_.end());
  std::sort(refs.begin(), refs.end());
  for (auto& ref : refs) s.add_refs(std::move(ref));
  s.set_written_at_ms(now.wall.count());
  if (const auto since = memberlessSince()) s.set_memberless_since_ms(wallOf(*since, now).count());
  return s;
}

std::int64_t Group::retryWallOf(const StepRun& step, Instant now) {
  return step.retry_not_before > now.mono ? wallOf(step.retry_not_before, now).count() : 0;
}

void Group::fillStep(const StepRun& step, std::int64_t retry_not_before_ms,
                     td::v1::StepSnapshot* out) {
  *out->mutable_spec() = *step.spec;
  out->set_state(static_cast<td::v1::StepState>(static_cast<int>(step.state) + 1));
  out->set_attempt(step.attempt);
  out->set_failures(step.failures);
  out->set_lost(step.lost);
  for (const auto& peer : step.failed_on) out->add_failed_on(peer);
  out->set_retry_not_before_ms(retry_not_before_ms);
  out->set_peer_id(step.peer_id);
  out->set_session_id(step.session_id);
  out->set_abort_requested(step.abort_requested);
  out->set_last_outcome(step.last_outcome);
  out->set_last_duration_ms(step.last_duration_ms);
  if (step.handed_out != step.attempt) out->set_attempts_handed_out(step.handed_out);
  out->set_speculative(step.speculative);
  out->set_speculated(step.speculated);
  out->set_assigned_at_ms(step.assigned_wall.count());
  if (step.racing) {
    auto& r = *out->mutable_racing();
    r.set_attempt(step.racing->attempt);
    r.set_peer_id(step.racing->peer_id);
    r.set_session_id(step.racing->session_id);
    r.set_abort_requested(step.racing->abort_requested);
    r.set_assigned_at_ms(step.racing->assigned_wall.count());
  }
}

td::v1::GroupSnapshot Group::snapshot(Instant now) const {
  td::v1::GroupSnapshot s = snapshotHead(now);
  for (const auto& step : steps_) fillStep(step, retryWallOf(step, now), s.add_steps());
  return s;
}

namespace {

// Protocol Buffers wire format: a length-delimited field is its tag, its length and its bytes.
void appendVarint(std::uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void appendLengthDelimited(int field, std::string_view bytes, std::string* out) {
  appendVarint((static_cast<std::uint64_t>(field) << 3) | 2, out);
  appendVarint(bytes.size(), out);
  out->append(bytes);
}

// GroupSnapshot field `outbox` holding OutboxRecord{`body_field`: `bytes`}.
void appendOutboxRecord(int body_field, std::string_view bytes, std::string* wire) {
  std::string record;
  record.reserve(bytes.size() + 6);
  appendLengthDelimited(body_field, bytes, &record);
  appendLengthDelimited(td::v1::GroupSnapshot::kOutboxFieldNumber, record, wire);
}

}  // namespace

void appendOutboxEvent(std::string_view event_bytes, std::string* wire) {
  appendOutboxRecord(td::v1::OutboxRecord::kEventFieldNumber, event_bytes, wire);
}

void appendOutboxAssignment(std::string_view record_bytes, std::string* wire) {
  appendOutboxRecord(td::v1::OutboxRecord::kAssignmentFieldNumber, record_bytes, wire);
}

std::string Group::encodeState(Instant now, std::string_view outbox_wire) const {
  encoded_.resize(steps_.size());
  std::size_t steps_bytes = 0;
  td::v1::StepSnapshot scratch;
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const std::int64_t retry_ms = retryWallOf(steps_[i], now);
    auto& cached = encoded_[i];
    if (!cached.matches(steps_[i], retry_ms)) {
      scratch.Clear();
      fillStep(steps_[i], retry_ms, &scratch);
      cached.bytes.clear();
      appendLengthDelimited(td::v1::GroupSnapshot::kStepsFieldNumber,
                            scratch.SerializeAsString(), &cached.bytes);
      cached.remember(steps_[i], retry_ms);
    }
    steps_bytes += cached.bytes.size();
  }
  std::string group = snapshotHead(now).SerializeAsString();
  group.reserve(group.size() + steps_bytes + outbox_wire.size());
  for (const auto& cached : encoded_) group += cached.bytes;   // repeated fields may come last
  group += outbox_wire;
  td::v1::StateRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  std::string out = record.SerializeAsString();
  out.reserve(out.size() + group.size() + 16);
  appendLengthDelimited(td::v1::StateRecord::kGroupFieldNumber, group, &out);
  return out;
}

td::Result<std::unique_ptr<Group>> Group::restore(const td::v1::GroupSnapshot& s,
                                                  std::uint64_t epoch, const CoreConfig& config,
                                                  TimerQueue& timers, DurationTable* durations,
                                                  StepTables& tables, Instant now, Effects& out) {
  TD_RETURN_IF_ERROR(validate(s, epoch));
  std::unique_ptr<Group> g(new Group(config, timers, durations));
  g->id_ = s.group_id();
  g->compatibility_key_ = s.compatibility_key();
  g->ordinal_ = s.ordinal();
  g->partition_ = s.partition();
  g->epoch_ = epoch;
  g->status_ = s.status();
  g->created_at_wall_ = Millis(s.created_at_ms());
  if (s.status() != td::v1::GROUP_STATUS_RUNNING) g->finished_at_ = monoOf(Millis(s.finished_at_ms()), now);
  g->next_sequence_ = s.next_sequence();
  g->schema_name_ = s.schema_name();
  g->schema_digest_ = s.schema_digest();
  std::vector<td::v1::StepSpec> specs;   // as written: retry policies were resolved then
  specs.reserve(s.steps_size());
  for (const auto& step : s.steps()) specs.push_back(step.spec());
  g->table_ = tables.intern(std::move(specs));
  g->steps_.reserve(s.steps_size());
  for (const auto& step : s.steps()) {
    StepRun run{.spec = &g->table_->spec(g->steps_.size()),
                .state = static_cast<StepState>(static_cast<int>(step.state()) - 1),
                .attempt = step.attempt(),
                .failures = step.failures(),
                .lost = step.lost(),
                .failed_on = {step.failed_on().begin(), step.failed_on().end()},
                .retry_not_before = monoOf(Millis(step.retry_not_before_ms()), now),
                .peer_id = step.peer_id(),
                .session_id = step.session_id(),
                .abort_requested = step.abort_requested(),
                .last_outcome = step.last_outcome(),
                .last_duration_ms = step.last_duration_ms(),
                .handed_out = std::max(step.attempt(), step.attempts_handed_out()),
                .speculative = step.speculative(),
                .speculated = step.speculated()};
    // A snapshot from before assignment times were kept: assigned long ago, never raced.
    if (step.assigned_at_ms() != 0) {
      run.assigned_wall = Millis(step.assigned_at_ms());
      run.assigned_at = monoOf(run.assigned_wall, now);
    }
    if (step.has_racing()) {
      const auto& r = step.racing();
      run.racing = StepRun::Racing{.attempt = r.attempt(),
                                   .peer_id = r.peer_id(),
                                   .session_id = r.session_id(),
                                   .abort_requested = r.abort_requested(),
                                   .speculative = true};
      if (r.assigned_at_ms() != 0) {
        run.racing->assigned_wall = Millis(r.assigned_at_ms());
        run.racing->assigned_at = monoOf(run.racing->assigned_wall, now);
      }
    }
    if (run.state == StepState::kSucceeded) {
      ++g->succeeded_;
      g->succeeded_ms_.push_back(step.last_duration_ms());
      g->succeeded_ms_sorted_ = false;
    }
    ++g->step_counts_[static_cast<std::size_t>(run.state)];
    g->steps_.push_back(std::move(run));
  }
  g->countUnmetDependencies();
  // The same order a group created now would have (queueKeyOf reads the duration table).
  g->queue_keys_.resize(g->steps_.size());
  for (std::size_t i = 0; i < g->steps_.size(); ++i) {
    if (g->steps_[i].state == StepState::kQueued) g->enqueue(i);
  }
  for (const auto& m : s.members()) {
    g->member_index_.emplace(m.peer_id(), g->members_.size());
    g->members_.push_back(Member{.peer_id = m.peer_id(),
                                 .session_id = m.session_id(),
                                 .slots = m.slots() == 0 ? 1u : m.slots(),
                                 .running = {m.running().begin(), m.running().end()},
                                 .present = m.present(),
                                 .leaving = m.leaving(),
                                 .last_seen = now.mono,   // grace: a full lease to be heard
                                 .sent_at_ms = m.sent_at_ms(),
                                 .universe = m.universe()});
  }
  // A racing attempt's member runs it too (not listed in MemberSnapshot.running).
  for (std::size_t i = 0; i < g->steps_.size(); ++i) {
    if (const auto& racing = g->steps_[i].racing) {
      g->members_[g->member_index_.at(racing->peer_id)].running.insert(i);
    }
  }
  g->refs_.insert(s.refs().begin(), s.refs().end());
  if (g->status_ == td::v1::GROUP_STATUS_RUNNING &&
      std::none_of(g->members_.begin(), g->members_.end(), [](const Member& m) { return m.present; })) {
    // Memberless when written: the abandonment timer runs on from then (a snapshot of an older
    // coordinator has no such time: from now).
    g->memberless_since_ = s.memberless_since_ms() != 0
                               ? monoOf(Millis(s.memberless_since_ms()), now)
                               : now.mono;
  }

  // What the last owner wrote (or was about to write) for its last change, again.
  for (const auto& record : s.outbox()) {
    if (record.has_event()) out.emplace_back(PublishEvent{.event = record.event()});
    if (record.has_assignment()) {
      out.emplace_back(PublishAssignment{.group_id = g->id_, .record = record.assignment()});
    }
  }
  if (g->status_ != td::v1::GROUP_STATUS_RUNNING) return g;
  auto& restored = *g->emit(now, out).mutable_group_restored();
  restored.set_partition(s.partition());
  restored.set_previous_epoch(s.coordinator_epoch());
  restored.set_previous_coordinator_id(s.coordinator_id());
  restored.set_republished(static_cast<std::uint32_t>(s.outbox_size()));
  td::v1::AssignmentRecord owner;
  owner.mutable_owner()->set_group_id(g->id_);
  owner.mutable_owner()->set_coordinator_epoch(epoch);
  owner.mutable_owner()->set_coordinator_id(config.coordinator_id);
  g->publish(std::move(owner), out);
  for (const auto& m : g->members_) {
    if (m.present) timers.at(now.mono + config.lease, g->id_, m.peer_id);
  }
  for (const auto& key : g->queued_) {
    if (g->steps_[key.index].retry_not_before > now.mono) {
      timers.at(g->steps_[key.index].retry_not_before, g->id_);
    }
  }
  timers.at(now.mono, g->id_);   // queued steps and idle members: schedule at the next tick
  return g;
}

}  // namespace td::coordinator
