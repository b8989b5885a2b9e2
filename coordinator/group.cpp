#include "coordinator/group.h"

#include <fmt/format.h>

#include "common/check.h"

namespace td::coordinator {

namespace {
const char* stateName(int state) {
  static constexpr const char* kNames[] = {"waiting", "queued", "running", "succeeded", "failed"};
  return kNames[state];
}

bool countsAsFailure(td::v1::StepOutcome outcome) {
  return outcome == td::v1::STEP_OUTCOME_FAILED || outcome == td::v1::STEP_OUTCOME_TIMED_OUT ||
         outcome == td::v1::STEP_OUTCOME_REJECTED;
}
}  // namespace

Group::Group(std::string id, std::string compatibility_key, std::uint64_t ordinal,
             const td::v1::PeerRegistered& founder, const CoreConfig& config, Instant now,
             Effects& out)
    : config_(config),
      id_(std::move(id)),
      compatibility_key_(std::move(compatibility_key)),
      ordinal_(ordinal),
      schema_name_(founder.schema_name()),
      created_at_wall_(now.wall) {
  steps_.reserve(founder.steps_size());
  for (const auto& spec : founder.steps()) {
    step_index_.emplace(spec.id(), steps_.size());
    steps_.push_back(StepRun{.spec = spec});
  }
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    for (const auto& dep : steps_[i].spec.depends_on()) {
      // Registrations are validated before they reach a group: every dependency exists.
      auto it = step_index_.find(dep);
      TD_CHECK(it != step_index_.end());
      steps_[it->second].dependents.push_back(i);
      ++steps_[i].unmet_deps;
    }
  }
  auto& created = *emit(now, out).mutable_group_created();
  created.set_compatibility_key(compatibility_key_);
  created.set_schema_name(founder.schema_name());
  created.set_schema_digest(founder.schema_digest());
  *created.mutable_steps() = founder.steps();
  created.set_founding_peer_id(founder.peer_id());
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].unmet_deps == 0) queue(i, "initial", now, out);
  }
}

std::vector<std::string> Group::memberPeerIds() const {
  std::vector<std::string> ids;
  for (const auto& m : members_) {
    if (m.present) ids.push_back(m.peer_id);
  }
  return ids;
}

td::v1::Event& Group::emit(Instant now, Effects& out) {
  PublishEvent effect;
  auto& e = effect.event;
  e.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  e.set_group_id(id_);
  e.set_sequence(next_sequence_++);
  e.set_timestamp_ms(now.wall.count());
  e.set_coordinator_id(config_.coordinator_id);
  e.set_coordinator_epoch(config_.epoch);
  out.emplace_back(std::move(effect));
  return std::get<PublishEvent>(out.back()).event;
}

td::v1::GroupJoined Group::joinedReply(const td::v1::PeerRegistered& peer) const {
  td::v1::GroupJoined joined;
  joined.set_peer_id(peer.peer_id());
  joined.set_session_id(peer.session_id());
  joined.set_group_id(id_);
  joined.set_assign_topic(config_.topics.assign(id_));
  joined.set_status(status_);
  for (auto& id : memberPeerIds()) joined.add_member_peer_ids(std::move(id));
  joined.set_coordinator_epoch(config_.epoch);
  return joined;
}

Group::Member* Group::findMember(const std::string& peer_id) {
  auto it = member_index_.find(peer_id);
  if (it == member_index_.end() || !members_[it->second].present) return nullptr;
  return &members_[it->second];
}

void Group::addMember(const td::v1::PeerRegistered& peer, const std::vector<std::string>& refs,
                      std::uint32_t shared_refs, Instant now, Effects& out) {
  auto [it, inserted] = member_index_.try_emplace(peer.peer_id(), members_.size());
  Member member{.peer_id = peer.peer_id(),
                .session_id = peer.session_id(),
                .slots = peer.slots() == 0 ? 1u : peer.slots()};
  if (inserted) {
    members_.push_back(std::move(member));
  } else {
    // A peer that left may come back with a new session; it keeps its place in join order.
    members_[it->second] = std::move(member);
  }
  refs_.insert(refs.begin(), refs.end());
  auto& joined = *emit(now, out).mutable_peer_joined();
  joined.set_peer_id(peer.peer_id());
  joined.set_session_id(peer.session_id());
  *joined.mutable_repos() = peer.repos();
  joined.set_complex(peer.complex());
  joined.set_shared_refs(shared_refs);
  if (status_ == td::v1::GROUP_STATUS_RUNNING) schedule(now, out);
}

void Group::removeMember(const std::string& peer_id, const std::string& reason, Instant now,
                         Effects& out) {
  Member* member = findMember(peer_id);
  if (member == nullptr) return;
  member->present = false;
  auto running = std::move(member->running);
  member->running.clear();
  for (std::size_t step : running) requeueLost(step, reason, now, out);
  if (status_ == td::v1::GROUP_STATUS_RUNNING) schedule(now, out);
}

void Group::requeueLost(std::size_t index, const std::string& reason, Instant now,
                        Effects& out) {
  StepRun& step = steps_[index];
  if (step.state != StepState::kRunning) return;
  auto& lost = *emit(now, out).mutable_step_finished();
  lost.set_peer_id(step.peer_id);
  lost.set_session_id(step.session_id);
  lost.set_group_id(id_);
  lost.set_step_id(step.spec.id());
  lost.set_attempt(step.attempt);
  lost.set_outcome(td::v1::STEP_OUTCOME_LOST);
  lost.set_output_tail(reason);
  step.last_outcome = td::v1::STEP_OUTCOME_LOST;
  if (status_ == td::v1::GROUP_STATUS_RUNNING) {
    queue(index, "retry after lost: " + reason, now, out);
  } else {
    step.state = StepState::kFailed;
  }
}

void Group::queue(std::size_t index, const std::string& reason, Instant now, Effects& out) {
  StepRun& step = steps_[index];
  step.state = StepState::kQueued;
  step.abort_requested = false;
  queued_.insert(index);
  auto& queued = *emit(now, out).mutable_step_queued();
  queued.set_step_id(step.spec.id());
  queued.set_next_attempt(step.attempt + 1);
  queued.set_reason(reason);
}

void Group::schedule(Instant now, Effects& out) {
  if (status_ != td::v1::GROUP_STATUS_RUNNING) return;
  // Cost: O(queued steps x members) for this group only; nothing here scans other groups.
  std::vector<std::size_t> candidates(queued_.begin(), queued_.end());
  for (std::size_t index : candidates) {
    Member* preferred = nullptr;
    Member* fallback = nullptr;
    for (auto& member : members_) {
      if (!member.present || member.running.size() >= member.slots) continue;
      if (steps_[index].failed_on.contains(member.peer_id)) {
        if (fallback == nullptr) fallback = &member;
      } else {
        preferred = &member;
        break;
      }
    }
    Member* chosen = preferred != nullptr ? preferred : fallback;
    if (chosen == nullptr) {
      if (fallback == nullptr) break;  // nobody is idle: later steps cannot be placed either
      continue;
    }
    assign(index, *chosen, now, out);
  }
}

void Group::assign(std::size_t index, Member& member, Instant now, Effects& out) {
  StepRun& step = steps_[index];
  queued_.erase(index);
  step.state = StepState::kRunning;
  step.attempt += 1;
  step.peer_id = member.peer_id;
  step.session_id = member.session_id;
  member.running.insert(index);

  td::v1::StepAssigned assigned;
  assigned.set_group_id(id_);
  assigned.set_step_id(step.spec.id());
  assigned.set_attempt(step.attempt);
  assigned.set_peer_id(member.peer_id);
  assigned.set_session_id(member.session_id);
  assigned.set_coordinator_epoch(config_.epoch);
  *emit(now, out).mutable_step_assigned() = assigned;

  PublishAssignment publish{.group_id = id_};
  publish.record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *publish.record.mutable_assigned() = std::move(assigned);
  out.emplace_back(std::move(publish));
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
  auto it = step_index_.find(step_id);
  if (it == step_index_.end()) {
    ignore("unknown_step", "no such step in the group's schema", peer_id, step_id, attempt, now,
           out);
    return nullptr;
  }
  StepRun& step = steps_[it->second];
  *index = it->second;
  const bool same_attempt = attempt == step.attempt && peer_id == step.peer_id;
  if (same_attempt && session_id != step.session_id) {
    ignore("stale_session", "the attempt belongs to another session of this peer", peer_id,
           step_id, attempt, now, out);
    return nullptr;
  }
  if (step.state == StepState::kRunning && same_attempt) return &step;
  std::string reason = "stale_attempt";
  if (attempt > step.attempt) {
    reason = "unassigned_attempt";
  } else if (same_attempt && step.state == StepState::kSucceeded) {
    reason = "duplicate";
  } else if (status_ != td::v1::GROUP_STATUS_RUNNING) {
    reason = "group_finished";
  }
  ignore(reason, fmt::format("step is {} at attempt {} on {}", stateName(static_cast<int>(step.state)),
                             step.attempt, step.peer_id),
         peer_id, step_id, attempt, now, out);
  return nullptr;
}

void Group::onStarted(const td::v1::StepStarted& msg, Instant now, Effects& out) {
  std::size_t index = 0;
  StepRun* step = matchRunning(msg.peer_id(), msg.session_id(), msg.step_id(), msg.attempt(),
                               &index, now, out);
  if (step == nullptr) return;
  *emit(now, out).mutable_step_started() = msg;
}

void Group::onFinished(const td::v1::StepFinished& msg, Instant now, Effects& out) {
  std::size_t index = 0;
  StepRun* step = matchRunning(msg.peer_id(), msg.session_id(), msg.step_id(), msg.attempt(),
                               &index, now, out);
  if (step == nullptr) return;
  *emit(now, out).mutable_step_finished() = msg;
  if (Member* member = findMember(msg.peer_id())) member->running.erase(index);
  step->last_outcome = msg.outcome();
  step->last_duration_ms = msg.duration_ms();

  if (status_ != td::v1::GROUP_STATUS_RUNNING) {
    // An answer to the abort sent when the group failed; nothing more to do.
    step->state = StepState::kFailed;
    return;
  }
  if (msg.outcome() == td::v1::STEP_OUTCOME_SUCCEEDED) {
    step->state = StepState::kSucceeded;
    ++succeeded_;
    if (succeeded_ == steps_.size()) {
      complete(now, out);
      return;
    }
    for (std::size_t dependent : step->dependents) {
      if (--steps_[dependent].unmet_deps == 0) queue(dependent, "dependencies met", now, out);
    }
  } else if (countsAsFailure(msg.outcome())) {
    step->failures += 1;
    step->failed_on.insert(msg.peer_id());
    if (step->failures >= step->spec.max_attempts()) {
      fail(index,
           fmt::format("step {} {} {} of {} attempts (last: {} exit={} on {})", step->spec.id(),
                       "failed", step->failures, step->spec.max_attempts(),
                       protocol::outcomeName(msg.outcome()), msg.exit_code(), msg.peer_id()),
           now, out);
      return;
    }
    queue(index, fmt::format("retry after {}", protocol::outcomeName(msg.outcome())), now, out);
  } else {
    // Aborted by the worker while the group runs (it is leaving): not the step's fault.
    queue(index, "retry after aborted", now, out);
  }
  schedule(now, out);
}

void Group::fillSummary(google::protobuf::RepeatedPtrField<td::v1::StepSummary>* out) const {
  for (const auto& step : steps_) {
    auto& s = *out->Add();
    s.set_step_id(step.spec.id());
    s.set_outcome(step.last_outcome);
    s.set_peer_id(step.peer_id);
    s.set_attempts(step.attempt);
    s.set_duration_ms(step.last_duration_ms);
  }
}

void Group::complete(Instant now, Effects& out) {
  status_ = td::v1::GROUP_STATUS_COMPLETED;
  finished_at_ = now.mono;
  td::v1::GroupCompleted completed;
  completed.set_group_id(id_);
  fillSummary(completed.mutable_steps());
  completed.set_wall_time_ms(static_cast<std::uint64_t>((now.wall - created_at_wall_).count()));
  *emit(now, out).mutable_group_completed() = completed;
  PublishAssignment publish{.group_id = id_};
  publish.record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *publish.record.mutable_completed() = std::move(completed);
  out.emplace_back(std::move(publish));
}

void Group::fail(std::size_t failed_step, const std::string& reason, Instant now, Effects& out) {
  status_ = td::v1::GROUP_STATUS_FAILED;
  finished_at_ = now.mono;
  steps_[failed_step].state = StepState::kFailed;
  // Abort every attempt still in flight; their workers answer with an aborted finish.
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    StepRun& step = steps_[i];
    if (step.state == StepState::kQueued) step.state = StepState::kFailed;
    if (step.state != StepState::kRunning || step.abort_requested) continue;
    step.abort_requested = true;
    td::v1::AbortStep abort;
    abort.set_group_id(id_);
    abort.set_step_id(step.spec.id());
    abort.set_attempt(step.attempt);
    abort.set_peer_id(step.peer_id);
    abort.set_session_id(step.session_id);
    abort.set_reason("group failed");
    *emit(now, out).mutable_step_aborted() = abort;
    PublishAssignment publish{.group_id = id_};
    publish.record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    *publish.record.mutable_abort() = std::move(abort);
    out.emplace_back(std::move(publish));
  }
  queued_.clear();
  td::v1::GroupFailed failed;
  failed.set_group_id(id_);
  failed.set_failed_step_id(steps_[failed_step].spec.id());
  failed.set_reason(reason);
  fillSummary(failed.mutable_steps());
  failed.set_wall_time_ms(static_cast<std::uint64_t>((now.wall - created_at_wall_).count()));
  *emit(now, out).mutable_group_failed() = failed;
  PublishAssignment publish{.group_id = id_};
  publish.record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *publish.record.mutable_failed() = std::move(failed);
  out.emplace_back(std::move(publish));
}

}  // namespace td::coordinator
