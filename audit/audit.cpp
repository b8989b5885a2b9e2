#include "audit/audit.h"

#include <fmt/format.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <set>

#include "protocol/protocol.h"

namespace td::audit {

const StepTimeline* Timeline::step(std::string_view id) const {
  for (const auto& s : steps) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

std::int64_t Timeline::relative(std::int64_t t) const {
  if (t < 0) return -1;
  const std::int64_t base = created_ms >= 0 ? created_ms : first_ms;
  return base >= 0 ? t - base : t;
}

void Replay::add(const td::v1::Event& event) { add(td::v1::Event(event)); }

void Replay::add(td::v1::Event&& event) {
  auto& list = by_group_[event.group_id()];
  if (!list.empty() && list.back().sequence() > event.sequence()) sorted_ = false;
  list.push_back(std::move(event));
  ++count_;
}

void Replay::sort() const {
  if (sorted_) return;
  for (auto& [id, list] : by_group_) {
    std::stable_sort(list.begin(), list.end(),
                     [](const auto& a, const auto& b) { return a.sequence() < b.sequence(); });
  }
  sorted_ = true;
}

std::vector<std::string> Replay::groupIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, list] : by_group_) ids.push_back(id);
  return ids;
}

const std::map<std::string, std::vector<td::v1::Event>>& Replay::eventsByGroup() const {
  sort();
  return by_group_;
}

std::optional<Timeline> Replay::timeline(std::string_view group_id) const {
  sort();
  auto it = by_group_.find(std::string(group_id));
  if (it == by_group_.end()) return std::nullopt;
  return buildTimeline(group_id, it->second);
}

std::vector<Timeline> Replay::timelines() const {
  sort();
  std::vector<Timeline> out;
  for (const auto& [id, list] : by_group_) out.push_back(buildTimeline(id, list));
  return out;
}

namespace {

StepTimeline& stepOf(Timeline& t, const std::string& id) {
  for (auto& s : t.steps) {
    if (s.id == id) return s;
  }
  t.steps.push_back(StepTimeline{.id = id});
  return t.steps.back();
}

Attempt& attemptOf(StepTimeline& s, std::uint32_t number) {
  auto it = std::lower_bound(s.attempts.begin(), s.attempts.end(), number,
                             [](const Attempt& a, std::uint32_t n) { return a.number < n; });
  if (it != s.attempts.end() && it->number == number) return *it;
  return *s.attempts.insert(it, Attempt{.number = number});
}

// The event's bytes in a canonical form: deterministic serialization keeps unknown fields, so
// two records compare equal only if they say exactly the same thing.
std::string canonicalBytes(const td::v1::Event& e) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    e.SerializeToCodedStream(&coded);
  }
  return out;
}

// `a`'s worker reported it ended (`m`, in event `e`).
void workerEnded(Attempt& a, const td::v1::StepFinished& m, const td::v1::Event& e) {
  a.ran = true;
  a.ended_seq = e.sequence();
  a.worker_ended_ms = a.worker_started_ms >= 0
                          ? a.worker_started_ms + static_cast<std::int64_t>(m.duration_ms())
                          : e.timestamp_ms();
}

// Whether the other attempt of `a`'s speculative race (the attempt it races, or the
// speculative attempt racing it) was handed out and has neither finished nor been aborted.
bool raceRunsOn(const StepTimeline& s, const Attempt& a) {
  for (const auto& other : s.attempts) {
    const bool partner = (a.speculative && other.number == a.races) ||
                         (other.speculative && other.races == a.number);
    if (partner && &other != &a && other.assigned_seq != 0 && !other.outcome && !other.aborted) {
      return true;
    }
  }
  return false;
}

PeerTimeline* currentPeer(Timeline& t, const std::string& peer_id) {
  for (auto it = t.peers.rbegin(); it != t.peers.rend(); ++it) {
    if (it->peer_id == peer_id) return &*it;
  }
  return nullptr;
}

// A universe_started or universe_finished event (`e`) applied to its session's run.
void applyUniverse(Timeline& t, const td::v1::Event& e) {
  const bool finished = e.has_universe_finished();
  const auto& peer = finished ? e.universe_finished().peer_id() : e.universe_started().peer_id();
  const auto& session =
      finished ? e.universe_finished().session_id() : e.universe_started().session_id();
  auto it = std::find_if(t.universes.begin(), t.universes.end(), [&](const UniverseRun& u) {
    return u.peer_id == peer && u.session_id == session;
  });
  UniverseRun& u = it != t.universes.end()
                       ? *it
                       : t.universes.emplace_back(UniverseRun{.peer_id = peer, .session_id = session});
  const PeerTimeline* member = currentPeer(t, peer);
  if (member == nullptr || member->gone_ms >= 0 ||
      (!member->session_id.empty() && !session.empty() && member->session_id != session)) {
    u.from_non_member = true;
  }
  if (t.status != td::v1::GROUP_STATUS_COMPLETED) u.before_completion = true;
  if (!finished) {
    ++u.starts;
    if (u.started_ms < 0) u.started_ms = e.timestamp_ms();
    if (u.worker_started_ms < 0 && e.universe_started().started_at_ms() > 0) {
      u.worker_started_ms = e.universe_started().started_at_ms();
    }
    return;
  }
  const auto& f = e.universe_finished();
  if (++u.finishes > 1) return;   // the first one counts
  u.finished_ms = e.timestamp_ms();
  u.outcome = f.outcome();
  u.exit_code = f.exit_code();
  u.signal = f.signal();
  u.duration_ms = f.duration_ms();
  u.output_tail = f.output_tail();
  if (u.worker_started_ms < 0 && f.started_at_ms() > 0) u.worker_started_ms = f.started_at_ms();
}

}  // namespace

Timeline buildTimeline(std::string_view group_id, std::vector<td::v1::Event> events) {
  std::stable_sort(events.begin(), events.end(),
                   [](const auto& a, const auto& b) { return a.sequence() < b.sequence(); });
  Timeline t;
  t.group_id = std::string(group_id);
  std::uint64_t last = 0;
  bool have_last = false;
  const td::v1::Event* first = nullptr;   // the applied record of sequence `last`
  std::optional<std::string> first_bytes;  // its canonical bytes, once a repeat needs them
  std::set<std::uint64_t> epochs;
  // The fence: where each coordinator epoch's own records begin (its group_restored, or the
  // group_created of a group it made). A zombie's cycle starts from state the next owner also
  // starts from, so its records have sequences from there on.
  std::map<std::uint64_t, std::uint64_t> fences;   // epoch -> its lowest sequence
  for (const auto& e : events) {
    if (e.coordinator_epoch() == 0) continue;
    auto [it, inserted] = fences.try_emplace(e.coordinator_epoch(), e.sequence());
    if (!inserted) it->second = std::min(it->second, e.sequence());
  }
  auto fenced = [&](const td::v1::Event& e) {
    if (e.coordinator_epoch() == 0) return false;
    for (auto it = fences.upper_bound(e.coordinator_epoch()); it != fences.end(); ++it) {
      if (it->second <= e.sequence()) return true;
    }
    return false;
  };
  for (const auto& e : events) {
    if (fenced(e)) {
      ++t.fenced;
      continue;
    }
    if (have_last && e.sequence() == last) {
      if (!first_bytes) first_bytes = canonicalBytes(*first);
      if (canonicalBytes(e) == *first_bytes) {
        ++t.redelivered;
      } else if (t.duplicates.empty() || t.duplicates.back() != last) {
        t.duplicates.push_back(last);
      }
      continue;
    }
    have_last = true;
    last = e.sequence();
    first = &e;
    first_bytes.reset();
    ++t.events;
    epochs.insert(e.coordinator_epoch());
    t.max_sequence = std::max(t.max_sequence, e.sequence());
    const std::int64_t at = e.timestamp_ms();
    if (t.first_ms < 0 || at < t.first_ms) t.first_ms = at;
    using E = td::v1::Event;
    switch (e.kind_case()) {
      case E::kGroupCreated: {
        const auto& c = e.group_created();
        t.created_ms = at;
        t.schema_name = c.schema_name();
        t.founding_peer = c.founding_peer_id();
        for (const auto& spec : c.steps()) {
          auto& s = stepOf(t, spec.id());
          s.spec = spec;
          s.spec_known = true;
        }
        break;
      }
      case E::kPeerJoined:
        t.peers.push_back(PeerTimeline{.peer_id = e.peer_joined().peer_id(),
                                       .session_id = e.peer_joined().session_id(),
                                       .joined_ms = at});
        break;
      case E::kPeerLeft:
      case E::kPeerLost: {
        const bool lost = e.kind_case() == E::kPeerLost;
        const auto& g = lost ? e.peer_lost() : e.peer_left();
        PeerTimeline* p = currentPeer(t, g.peer_id());
        if (p == nullptr || p->gone_ms >= 0) {
          t.peers.push_back(PeerTimeline{.peer_id = g.peer_id(), .session_id = g.session_id()});
          p = &t.peers.back();
        }
        p->gone_ms = at;
        p->lost = lost;
        p->gone_reason = g.reason();
        break;
      }
      case E::kStepQueued: {
        const auto& q = e.step_queued();
        auto& s = stepOf(t, q.step_id());
        const bool queued_before = std::any_of(s.attempts.begin(), s.attempts.end(),
                                               [](const Attempt& x) { return x.queued_ms >= 0; });
        if (queued_before) ++s.retries;
        auto& a = attemptOf(s, q.next_attempt());
        a.queued_ms = at;
        a.queued_reason = q.reason();
        a.backoff_ms = q.backoff_ms();
        break;
      }
      case E::kStepAssigned: {
        const auto& m = e.step_assigned();
        auto& a = attemptOf(stepOf(t, m.step_id()), m.attempt());
        a.peer_id = m.peer_id();
        a.session_id = m.session_id();
        a.assigned_ms = at;
        a.assigned_seq = e.sequence();
        if (m.speculative()) {
          a.speculative = true;
          a.races = m.races_attempt();
          ++stepOf(t, m.step_id()).speculative;
        }
        break;
      }
      case E::kStepStarted: {
        const auto& m = e.step_started();
        auto& a = attemptOf(stepOf(t, m.step_id()), m.attempt());
        if (a.peer_id.empty()) a.peer_id = m.peer_id();
        a.started_ms = at;
        a.ran = true;
        if (m.started_at_ms() > 0) a.worker_started_ms = m.started_at_ms();
        break;
      }
      case E::kStepFinished: {
        const auto& m = e.step_finished();
        auto& s = stepOf(t, m.step_id());
        auto& a = attemptOf(s, m.attempt());
        if (a.peer_id.empty()) a.peer_id = m.peer_id();
        a.finished_ms = at;
        a.finished_seq = e.sequence();
        a.outcome = m.outcome();
        a.exit_code = m.exit_code();
        a.signal = m.signal();
        a.duration_ms = m.duration_ms();
        a.finish_detail = m.output_tail();
        if (m.outcome() != td::v1::STEP_OUTCOME_LOST) workerEnded(a, m, e);
        const bool running = t.status == td::v1::GROUP_STATUS_RUNNING;
        const auto retry = protocol::retryPolicyOf(s.spec);
        const std::uint32_t failures_before = s.failures, lost_before = s.lost;
        switch (m.outcome()) {
          case td::v1::STEP_OUTCOME_SUCCEEDED:
            ++s.successes;
            break;
          case td::v1::STEP_OUTCOME_FAILED:
          case td::v1::STEP_OUTCOME_TIMED_OUT:
          case td::v1::STEP_OUTCOME_REJECTED:
            if (running) ++s.failures;
            break;
          case td::v1::STEP_OUTCOME_LOST:
            if (running) {
              ++s.lost;
              if (retry.count_lost_attempts()) ++s.failures;
            }
            break;
          case td::v1::STEP_OUTCOME_ABORTED:
            // Aborted by its worker while the group runs: the coordinator treats it as lost.
            if (running && !a.aborted) {
              ++s.lost;
              if (retry.count_lost_attempts()) ++s.failures;
            }
            break;
          default:
            break;
        }
        if (raceRunsOn(s, a)) {
          s.race_failures += s.failures - failures_before;
          s.race_lost += s.lost - lost_before;
        }
        break;
      }
      case E::kStepAborted: {
        const auto& m = e.step_aborted();
        auto& a = attemptOf(stepOf(t, m.step_id()), m.attempt());
        if (a.peer_id.empty()) a.peer_id = m.peer_id();
        a.aborted = true;
        a.abort_reason = m.reason();
        a.won_by = m.won_by_attempt();
        a.aborted_ms = at;
        a.aborted_seq = e.sequence();
        break;
      }
      case E::kInputIgnored: {
        const auto& m = e.input_ignored();
        t.ignored.push_back(IgnoredInput{.at_ms = at,
                                         .reason = m.reason(),
                                         .detail = m.detail(),
                                         .peer_id = m.peer_id(),
                                         .step_id = m.step_id(),
                                         .attempt = m.attempt()});
        // A report the coordinator refused: when the attempt its worker ran started or ended.
        if (m.has_started() || m.has_finished()) {
          const auto& step_id = m.has_finished() ? m.finished().step_id() : m.started().step_id();
          const auto attempt = m.has_finished() ? m.finished().attempt() : m.started().attempt();
          const auto& peer = m.has_finished() ? m.finished().peer_id() : m.started().peer_id();
          const auto& session =
              m.has_finished() ? m.finished().session_id() : m.started().session_id();
          StepTimeline* s = nullptr;
          for (auto& candidate : t.steps) {
            if (candidate.id == step_id) s = &candidate;
          }
          Attempt* a = nullptr;
          if (s != nullptr) {
            for (auto& candidate : s->attempts) {
              if (candidate.number == attempt) a = &candidate;
            }
          }
          // Only the attempt's own (peer, session): a report of an attempt it was never
          // handed says nothing about the attempt.
          if (a == nullptr || a->peer_id != peer ||
              (!a->session_id.empty() && a->session_id != session)) {
            break;
          }
          a->ran = true;
          if (m.has_started() && a->worker_started_ms < 0 && m.started().started_at_ms() > 0) {
            a->worker_started_ms = m.started().started_at_ms();
          }
          if (m.has_finished() && a->ended_seq == 0) {
            workerEnded(*a, m.finished(), e);
            a->late_report = true;
          }
        }
        break;
      }
      case E::kGroupCompleted:
        t.status = td::v1::GROUP_STATUS_COMPLETED;
        t.ended_ms = at;
        break;
      case E::kGroupFailed:
        t.status = td::v1::GROUP_STATUS_FAILED;
        t.ended_ms = at;
        t.failed_step = e.group_failed().failed_step_id();
        t.failure_reason = e.group_failed().reason();
        break;
      case E::kGroupAbandoned: {
        const auto& a = e.group_abandoned();
        t.status = td::v1::GROUP_STATUS_ABANDONED;
        t.ended_ms = at;
        t.abandoned_reason = fmt::format(
            "no member for {} ms{}; {} step(s) succeeded, {} not run", a.memberless_for_ms(),
            a.last_peer_id().empty() ? std::string() : " (last: " + a.last_peer_id() + ")",
            a.steps_succeeded(), a.steps_not_run());
        break;
      }
      case E::kGroupCancelled:
        // An operator's ending: steps not run never will (nothing to verify about them).
        t.status = td::v1::GROUP_STATUS_CANCELLED;
        t.ended_ms = at;
        t.cancelled_by = e.group_cancelled().requested_by();
        t.cancel_reason = e.group_cancelled().reason();
        break;
      case E::kGroupRestored: {
        const auto& r = e.group_restored();
        t.restores.push_back(Restore{.sequence = e.sequence(),
                                     .at_ms = at,
                                     .partition = r.partition(),
                                     .previous_epoch = r.previous_epoch(),
                                     .previous_coordinator = r.previous_coordinator_id(),
                                     .epoch = e.coordinator_epoch(),
                                     .coordinator = e.coordinator_id(),
                                     .republished = r.republished()});
        break;
      }
      case E::kUniverseStarted:
      case E::kUniverseFinished:
        applyUniverse(t, e);
        break;
      case E::KIND_NOT_SET:
        break;
    }
  }
  t.epochs.assign(epochs.begin(), epochs.end());
  // Gaps: every sequence in 1..max_sequence not seen.
  std::set<std::uint64_t> seen;
  for (const auto& e : events) seen.insert(e.sequence());
  for (std::uint64_t n = 1; n <= t.max_sequence; ++n) {
    if (!seen.contains(n)) t.missing.push_back(n);
  }
  return t;
}

std::string_view kindName(ViolationKind kind) {
  switch (kind) {
    case ViolationKind::kSequenceGap: return "sequence_gap";
    case ViolationKind::kDuplicateSequence: return "duplicate_sequence";
    case ViolationKind::kMultipleSuccesses: return "multiple_successes";
    case ViolationKind::kTooManyFailures: return "too_many_failures";
    case ViolationKind::kTooManyLost: return "too_many_lost";
    case ViolationKind::kCompletedWithoutSuccess: return "completed_without_success";
    case ViolationKind::kUnansweredAssignment: return "unanswered_assignment";
    case ViolationKind::kOverlappingAttempts: return "overlapping_attempts";
    case ViolationKind::kUniverseBeforeCompletion: return "universe_before_completion";
    case ViolationKind::kUniverseFromNonMember: return "universe_from_non_member";
    case ViolationKind::kDuplicateUniverse: return "duplicate_universe";
  }
  return "unknown";
}

namespace {

// "3, 5-7, 9" for a sorted list.
std::string ranges(const std::vector<std::uint64_t>& ns) {
  std::string out;
  for (std::size_t i = 0; i < ns.size();) {
    std::size_t j = i;
    while (j + 1 < ns.size() && ns[j + 1] == ns[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j == i ? fmt::format("{}", ns[i]) : fmt::format("{}-{}", ns[i], ns[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

namespace {

// Lost because its worker went silent past its lease (peer_lost, not a replaced or leaving
// session, whose process is alive and must answer), and never reported ended by that worker:
// td-worker's step supervisor ends a step with its worker, and a worker that was only frozen
// reports the real end when it comes back, so it is taken to have ended with its worker
// (docs/audit.md, "overlapping_attempts").
bool neverReportedLost(const Timeline& t, const Attempt& a) {
  if (!a.ran || a.ended_seq != 0 || a.outcome != td::v1::STEP_OUTCOME_LOST) return false;
  return std::any_of(t.peers.begin(), t.peers.end(), [&](const PeerTimeline& p) {
    return p.lost && p.peer_id == a.peer_id &&
           (p.session_id.empty() || a.session_id.empty() || p.session_id == a.session_id);
  });
}

// When attempt `b` started: by its worker's clock when known, else the coordinator's.
std::int64_t startOf(const Attempt& b) {
  if (b.worker_started_ms >= 0) return b.worker_started_ms;
  return b.started_ms >= 0 ? b.started_ms : b.assigned_ms;
}

// Why `a` (earlier) and `b` (later) may have run at the same time, or empty (see verify()).
std::string overlap(const Timeline& t, const Attempt& a, const Attempt& b) {
  if (b.assigned_seq == 0 || !b.ran || !a.ran) return {};
  if (b.speculative && b.races == a.number) return {};   // a race, on purpose
  if (a.ended_seq != 0 && a.ended_seq < b.assigned_seq) return {};   // ended, then handed out
  if (a.ended_seq != 0 && a.aborted_seq != 0 && a.aborted_seq < b.assigned_seq) return {};
  if (neverReportedLost(t, a)) return {};   // ended with its worker
  if (a.ended_seq == 0) {
    return fmt::format(
        "attempt {} on {} (session {}) was never reported ended (outcome {}), yet attempt {} "
        "on {} started at +{} ms: it may still have been running",
        a.number, a.peer_id, a.session_id.substr(0, 8),
        a.outcome ? std::string(protocol::outcomeName(*a.outcome)) : std::string("none"), b.number,
        b.peer_id, t.relative(startOf(b)));
  }
  if (a.worker_ended_ms <= startOf(b)) return {};
  return fmt::format(
      "attempt {} on {} (session {}) ended at +{} ms by its worker's account{}, after attempt "
      "{} on {} started at +{} ms",
      a.number, a.peer_id, a.session_id.substr(0, 8), t.relative(a.worker_ended_ms),
      a.late_report ? " (reported late: its session had been lost or replaced)" : "", b.number,
      b.peer_id, t.relative(startOf(b)));
}

}  // namespace

std::size_t unconfirmedEnds(const Timeline& t) {
  std::size_t n = 0;
  for (const auto& s : t.steps) {
    n += static_cast<std::size_t>(std::count_if(
        s.attempts.begin(), s.attempts.end(),
        [&](const Attempt& a) { return neverReportedLost(t, a); }));
  }
  return n;
}

std::size_t unfinishedUniverses(const Timeline& t) {
  return static_cast<std::size_t>(
      std::count_if(t.universes.begin(), t.universes.end(),
                    [](const UniverseRun& u) { return u.starts > 0 && u.finishes == 0; }));
}

namespace {

// The universe rules of verify().
void verifyUniverses(const Timeline& t, std::vector<Violation>& out) {
  for (const auto& u : t.universes) {
    const std::string who = fmt::format("group {}: the universe run of {} (session {})",
                                        t.group_id, u.peer_id, u.session_id.substr(0, 8));
    auto add = [&](ViolationKind kind, const std::string& what) {
      out.push_back(Violation{kind, t.group_id, "", fmt::format("{} {}", who, what)});
    };
    if (u.before_completion) {
      add(ViolationKind::kUniverseBeforeCompletion,
          "was recorded before group_completed (a universe runs only after its group completed)");
    }
    if (u.from_non_member) {
      add(ViolationKind::kUniverseFromNonMember,
          "was recorded while that session was not a present member (never joined, left, lost "
          "or replaced)");
    }
    if (u.starts > 1 || u.finishes > 1) {
      add(ViolationKind::kDuplicateUniverse,
          fmt::format("has {} universe_started and {} universe_finished events, at most one each",
                      u.starts, u.finishes));
    }
  }
}

}  // namespace

std::vector<Violation> verify(const Timeline& t) {
  std::vector<Violation> out;
  auto add = [&](ViolationKind kind, const std::string& step, std::string message) {
    out.push_back(Violation{kind, t.group_id, step, std::move(message)});
  };
  if (!t.missing.empty()) {
    add(ViolationKind::kSequenceGap, "",
        fmt::format("group {}: sequence numbers missing: {} (highest seen {})", t.group_id,
                    ranges(t.missing), t.max_sequence));
  }
  if (!t.duplicates.empty()) {
    add(ViolationKind::kDuplicateSequence, "",
        fmt::format("group {}: duplicate sequence numbers with different content: {}",
                    t.group_id, ranges(t.duplicates)));
  }
  for (const auto& s : t.steps) {
    if (s.successes > 1) {
      add(ViolationKind::kMultipleSuccesses, s.id,
          fmt::format("group {} step {}: succeeded {} times", t.group_id, s.id, s.successes));
    }
    if (s.spec_known) {
      const auto retry = protocol::retryPolicyOf(s.spec);
      if (s.failures > s.spec.max_attempts() + s.race_failures) {
        add(ViolationKind::kTooManyFailures, s.id,
            fmt::format("group {} step {}: {} counted failures, max_attempts is {}{}", t.group_id,
                        s.id, s.failures, s.spec.max_attempts(),
                        s.race_failures > 0
                            ? fmt::format(" (+{} ended while its race ran on)", s.race_failures)
                            : std::string()));
      }
      if (retry.max_lost_attempts() > 0 && s.lost > retry.max_lost_attempts() + s.race_lost) {
        add(ViolationKind::kTooManyLost, s.id,
            fmt::format("group {} step {}: lost {} times, max_lost_attempts is {}", t.group_id,
                        s.id, s.lost, retry.max_lost_attempts()));
      }
    }
    if (t.status == td::v1::GROUP_STATUS_COMPLETED && s.successes == 0) {
      add(ViolationKind::kCompletedWithoutSuccess, s.id,
          fmt::format("group {}: group_completed but step {} never succeeded", t.group_id, s.id));
    }
    for (std::size_t i = 0; i < s.attempts.size(); ++i) {
      for (std::size_t j = i + 1; j < s.attempts.size(); ++j) {
        std::string why = overlap(t, s.attempts[i], s.attempts[j]);
        if (why.empty()) continue;
        add(ViolationKind::kOverlappingAttempts, s.id,
            fmt::format("group {} step {}: attempts {} and {} overlap: {}", t.group_id, s.id,
                        s.attempts[i].number, s.attempts[j].number, why));
      }
    }
    if (t.status != td::v1::GROUP_STATUS_RUNNING) {
      for (const auto& a : s.attempts) {
        if (a.assigned_ms >= 0 && !a.outcome && !a.aborted) {
          add(ViolationKind::kUnansweredAssignment, s.id,
              fmt::format("group {} step {} attempt {} assigned to {} never finished or aborted "
                          "(group {})",
                          t.group_id, s.id, a.number, a.peer_id, protocol::statusName(t.status)));
        }
      }
    }
  }
  verifyUniverses(t, out);
  return out;
}

std::vector<Violation> verify(const Replay& replay) {
  std::vector<Violation> out;
  for (const auto& t : replay.timelines()) {
    auto v = verify(t);
    out.insert(out.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  }
  return out;
}

std::vector<Violation> verify(const std::vector<td::v1::Event>& events) {
  Replay replay;
  for (const auto& e : events) replay.add(e);
  return verify(replay);
}

}  // namespace td::audit
