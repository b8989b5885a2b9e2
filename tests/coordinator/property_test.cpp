// Property-based test of the coordinator core: seeded random sequences of inputs (registrations
// in several families and change refs, new and duplicate sessions, heartbeats, completions of
// running, stale, future and duplicate attempts with every outcome, StepStarted, PeerLeft,
// garbage, and time passing) with the invariants of DESIGN.md checked after every input, from
// the effects and the core's read-only view:
//
//   G1  a group completes only when each of its steps has exactly one step_finished SUCCEEDED;
//       no step ever has two; a succeeded step is never assigned again
//   G2  counted failures (failed, timed_out, rejected, plus lost/aborted when
//       count_lost_attempts) never exceed max_attempts, lost attempts never exceed
//       max_lost_attempts, and a group fails only when a limit or retry_on says so
//   G6  per group, event sequence numbers are 1, 2, 3, ... with no gap or repeat
//   and: at most one running attempt per step, or two when the second is a speculative attempt
//   racing the first (on another, idle member; once per step); the first success of a race
//   aborts the other attempt (won_by_attempt), and a failure during a race may take the
//   counted failures one over max_attempts; attempt numbers strictly increase per step; a
//   step is assigned only to a present (joined, not left/lost/replaced), non-leaving member
//   holding no other step (slots 1), only once its dependencies succeeded; nothing is assigned
//   and no second verdict is given after group_completed/group_failed/group_abandoned (which
//   comes only when no member is present); a running group is never
//   forgotten; the core's own view (status, last sequence) agrees with the event stream; and
//   replaying the same inputs into a fresh Core gives byte-identical effects.
//
// Reproduce a failure: the message names the seed and the operation index;
//   TD_PROPERTY_SEED=<seed> ./coordinator_property_test    runs that seed alone,
//   TD_PROPERTY_SEEDS / TD_PROPERTY_OPS change the size (defaults 300 x 300).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/splitmix.h"
#include "protocol/protocol.h"
#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using td::v1::StepOutcome;

// The seeds' sequences of earlier runs (TD_PROPERTY_SEED) stay what they were.
class Rng : public SplitMix64 {
 public:
  explicit Rng(std::uint64_t seed) : SplitMix64(seed, 12345) {}
};

std::uint64_t envOr(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// Effects as bytes, for the determinism check.
void appendField(std::string& out, const std::string& field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}
std::string serialize(const Effects& effects) {
  std::string out;
  for (const auto& effect : effects) {
    out += static_cast<char>('0' + effect.index());
    if (const auto* j = std::get_if<PublishJoin>(&effect)) {
      appendField(out, std::to_string(j->partition));
      appendField(out, j->key);
      appendField(out, j->record.SerializeAsString());
    } else if (const auto* a = std::get_if<PublishAssignment>(&effect)) {
      appendField(out, a->group_id);
      appendField(out, a->record.SerializeAsString());
    } else if (const auto* e = std::get_if<PublishEvent>(&effect)) {
      appendField(out, e->event.SerializeAsString());
    } else if (const auto* d = std::get_if<DeadLetter>(&effect)) {
      appendField(out, d->reason);
    }
  }
  return out;
}

// Mirrors the core's retry_on rule (coordinator/group.cpp) to judge whether a failure was final.
bool retryable(const td::v1::RetryPolicy& r, StepOutcome outcome, std::int32_t exit_code) {
  switch (outcome) {
    case td::v1::STEP_OUTCOME_TIMED_OUT: return r.retry_on_timeout();
    case td::v1::STEP_OUTCOME_REJECTED: return true;
    case td::v1::STEP_OUTCOME_FAILED:
      if (r.retry_on_any_exit()) return true;
      for (int code : r.retry_on_exit_codes()) {
        if (code == exit_code) return true;
      }
      return false;
    default: return false;
  }
}

// The core once reused the id of a forgotten group (see the Regression tests below); the
// property test catches that case too.
constexpr bool kToleratesGroupIdReuse = false;

// Everything the test knows about the core, learned only from its effects.
class Model {
 public:
  struct Running {
    std::string peer;
    std::string session;
    std::uint32_t attempt = 0;
  };
  struct StepModel {
    td::v1::StepSpec spec;
    std::optional<Running> running;
    std::optional<Running> racing;   // a speculative attempt racing `running`
    bool speculated = false;
    std::uint32_t race_failures = 0;   // counted while the other attempt of a race ran
    std::uint32_t race_lost = 0;
    std::uint32_t last_attempt = 0;
    Running last;                   // peer, session and attempt of the last assignment
    int successes = 0;
    std::uint32_t failures = 0;     // counted toward max_attempts
    std::uint32_t lost = 0;
    StepOutcome last_counted = td::v1::STEP_OUTCOME_UNSPECIFIED;
    std::int32_t last_exit = 0;
  };
  struct GroupModel {
    td::v1::GroupStatus status = td::v1::GROUP_STATUS_RUNNING;
    std::uint64_t last_sequence = 0;
    std::vector<StepModel> steps;
    std::map<std::string, std::size_t> index;
    std::map<std::string, std::string> present;  // peer -> session of present members
    std::set<std::string> leaving;               // "peer/session" that aborted to leave
    bool forgotten = false;
  };
  struct Joined {
    std::string session;
    std::string group;
  };

  std::map<std::string, GroupModel> groups;
  std::map<std::string, Joined> joined;  // last GroupJoined reply per peer
  int abandoned = 0;
  int speculative = 0, races_lost = 0;
  int completed = 0, failed = 0, lost_attempts = 0, assigned = 0, ignored = 0, dead = 0,
      forgotten = 0, reused_ids = 0, failovers = 0, restored = 0;

  // Checks the effects of one input; returns the first broken invariant, or "".
  std::string observe(const Effects& effects, const Core& core) {
    for (const auto& effect : effects) {
      if (std::holds_alternative<DeadLetter>(effect)) ++dead;
      if (const auto* j = std::get_if<PublishJoin>(&effect); j && j->record.has_joined()) {
        const auto& r = j->record.joined();
        joined[r.peer_id()] = Joined{r.session_id(), r.group_id()};
      }
      const auto* pe = std::get_if<PublishEvent>(&effect);
      if (pe == nullptr) continue;
      if (std::string problem = onEvent(pe->event); !problem.empty()) {
        return "group " + pe->event.group_id() + " seq " + std::to_string(pe->event.sequence()) +
               " (" + protocol::describe(pe->event) + "): " + problem;
      }
    }
    return checkView(core);
  }

 private:
  std::string onEvent(const td::v1::Event& ev) {
    const std::string& id = ev.group_id();
    if (ev.has_group_created()) {
      if (auto old = groups.find(id); old != groups.end()) {
        if (!old->second.forgotten) return "group created twice";
        // Fixed (GroupIdIsNotReusedAfterTheGroupIsForgotten); kept switchable for diagnosis.
        if (!kToleratesGroupIdReuse) return "group id reused after the group was forgotten";
        ++reused_ids;
        groups.erase(old);
      }
      GroupModel g;
      for (const auto& spec : ev.group_created().steps()) {
        StepModel s{.spec = spec};
        *s.spec.mutable_retry() = protocol::retryPolicyOf(spec);
        g.index[spec.id()] = g.steps.size();
        g.steps.push_back(std::move(s));
      }
      groups[id] = std::move(g);
    }
    auto git = groups.find(id);
    if (git == groups.end()) return "event for a group never created";
    GroupModel& g = git->second;
    if (g.forgotten) return "event for a forgotten group";
    if (ev.sequence() != g.last_sequence + 1) {
      return "sequence " + std::to_string(ev.sequence()) + " after " +
             std::to_string(g.last_sequence);
    }
    g.last_sequence = ev.sequence();
    const bool running = g.status == td::v1::GROUP_STATUS_RUNNING;

    if (ev.has_peer_joined()) {
      const auto& p = ev.peer_joined();
      g.present[p.peer_id()] = p.session_id();
      g.leaving.erase(p.peer_id() + "/" + p.session_id());
    } else if (ev.has_peer_left() || ev.has_peer_lost()) {
      const auto& p = ev.has_peer_left() ? ev.peer_left() : ev.peer_lost();
      auto it = g.present.find(p.peer_id());
      if (it == g.present.end() || it->second != p.session_id()) {
        return "a member that is not present left or was lost";
      }
      g.present.erase(it);
    } else if (ev.has_step_assigned()) {
      ++assigned;
      const auto& a = ev.step_assigned();
      if (!running) return "step assigned in a finished group";
      auto sit = g.index.find(a.step_id());
      if (sit == g.index.end()) return "unknown step assigned";
      StepModel& s = g.steps[sit->second];
      if (a.speculative()) {
        if (!s.running || s.racing) return "a speculative attempt without one attempt to race";
        if (s.speculated) return "a second speculative attempt of one step";
        if (a.races_attempt() != s.running->attempt) return "races the wrong attempt";
        if (a.peer_id() == s.running->peer) return "races on the peer running it";
      } else if (s.running) {
        return "a second running attempt of one step";
      }
      if (s.successes > 0) return "a succeeded step assigned again";
      if (a.attempt() <= s.last_attempt) {
        return "attempt " + std::to_string(a.attempt()) + " after " +
               std::to_string(s.last_attempt);
      }
      auto pit = g.present.find(a.peer_id());
      if (pit == g.present.end() || pit->second != a.session_id()) {
        return "assigned to " + a.peer_id() + "/" + a.session_id() +
               ", not a present member";
      }
      if (g.leaving.contains(a.peer_id() + "/" + a.session_id())) {
        return "assigned to a member that is leaving";
      }
      for (const auto& other : g.steps) {
        for (const auto* r : {&other.running, &other.racing}) {
          if (*r && (*r)->peer == a.peer_id() && (*r)->session == a.session_id()) {
            return "assigned to a member already running " + other.spec.id() + " (slots 1)";
          }
        }
      }
      for (const auto& dep : s.spec.depends_on()) {
        if (g.steps[g.index.at(dep)].successes != 1) return "assigned before dependency " + dep;
      }
      if (a.speculative()) {
        s.racing = Running{a.peer_id(), a.session_id(), a.attempt()};
        s.speculated = true;
        ++speculative;
      } else {
        s.running = Running{a.peer_id(), a.session_id(), a.attempt()};
      }
      s.last = Running{a.peer_id(), a.session_id(), a.attempt()};
      s.last_attempt = a.attempt();
    } else if (ev.has_step_finished()) {
      const auto& f = ev.step_finished();
      auto sit = g.index.find(f.step_id());
      if (sit == g.index.end()) return "step_finished for an unknown step";
      StepModel& s = g.steps[sit->second];
      auto is = [&](const std::optional<Running>& r) {
        return r && r->attempt == f.attempt() && r->peer == f.peer_id() &&
               r->session == f.session_id();
      };
      if (!is(s.running) && !is(s.racing)) {
        return "step_finished for an attempt that is not running";
      }
      // The other attempt of a race runs on (until a success aborts it).
      const bool raced = s.running && s.racing;
      if (is(s.running)) s.running = s.racing;
      s.racing.reset();
      if (!running) s.running.reset();   // the other's answer to the abort is ignored
      if (f.outcome() == td::v1::STEP_OUTCOME_SUCCEEDED) {
        if (++s.successes > 1) return "step succeeded twice";
      }
      if (running) {
        const auto& retry = s.spec.retry();
        const std::uint32_t failures_before = s.failures, lost_before = s.lost;
        switch (f.outcome()) {
          case td::v1::STEP_OUTCOME_FAILED:
          case td::v1::STEP_OUTCOME_TIMED_OUT:
          case td::v1::STEP_OUTCOME_REJECTED:
            ++s.failures;
            break;
          case td::v1::STEP_OUTCOME_ABORTED:
            g.leaving.insert(f.peer_id() + "/" + f.session_id());
            [[fallthrough]];
          case td::v1::STEP_OUTCOME_LOST:
            ++lost_attempts;
            ++s.lost;
            if (retry.count_lost_attempts()) ++s.failures;
            break;
          default:
            break;
        }
        s.last_counted = f.outcome();
        s.last_exit = f.exit_code();
        if (raced && f.outcome() != td::v1::STEP_OUTCOME_SUCCEEDED) {
          s.race_failures += s.failures - failures_before;
          s.race_lost += s.lost - lost_before;
        }
        if (s.failures > s.spec.max_attempts() + s.race_failures) {
          return "counted failures " + std::to_string(s.failures) + " > max_attempts " +
                 std::to_string(s.spec.max_attempts());
        }
        if (s.lost > retry.max_lost_attempts() + s.race_lost) {
          return "lost attempts " + std::to_string(s.lost) + " > max_lost_attempts " +
                 std::to_string(retry.max_lost_attempts());
        }
      }
    } else if (ev.has_group_completed()) {
      if (!running) return "a second verdict";
      for (const auto& s : g.steps) {
        if (s.successes != 1) return "completed while step " + s.spec.id() + " has " +
                                     std::to_string(s.successes) + " successes";
      }
      g.status = td::v1::GROUP_STATUS_COMPLETED;
      ++completed;
    } else if (ev.has_group_failed()) {
      if (!running) return "a second verdict";
      auto sit = g.index.find(ev.group_failed().failed_step_id());
      if (sit == g.index.end()) return "failed for an unknown step";
      const StepModel& s = g.steps[sit->second];
      const auto& r = s.spec.retry();
      const bool lost = s.last_counted == td::v1::STEP_OUTCOME_LOST ||
                        s.last_counted == td::v1::STEP_OUTCOME_ABORTED;
      const bool justified =
          s.failures >= s.spec.max_attempts() || s.lost >= r.max_lost_attempts() ||
          (lost && !r.retry_on_lost()) ||
          (!lost && s.last_counted != td::v1::STEP_OUTCOME_UNSPECIFIED &&
           !retryable(r, s.last_counted, s.last_exit));
      if (!justified) return "group failed before any limit of step " + s.spec.id();
      g.status = td::v1::GROUP_STATUS_FAILED;
      ++failed;
    } else if (ev.has_group_abandoned()) {
      if (!running) return "a second verdict";
      if (!g.present.empty()) return "abandoned while a member is present";
      g.status = td::v1::GROUP_STATUS_ABANDONED;
      ++abandoned;
    } else if (ev.has_step_aborted() && ev.step_aborted().won_by_attempt() != 0) {
      // The loser of a race: it no longer runs as far as the core is concerned.
      const auto& a = ev.step_aborted();
      auto sit = g.index.find(a.step_id());
      if (sit == g.index.end()) return "step_aborted for an unknown step";
      StepModel& s = g.steps[sit->second];
      if (s.successes != 1) return "a race lost before the step succeeded";
      auto is = [&](const std::optional<Running>& r) {
        return r && r->attempt == a.attempt() && r->peer == a.peer_id();
      };
      if (!is(s.running) && !is(s.racing)) return "aborted a race's loser that is not running";
      if (is(s.running)) s.running = s.racing;
      s.racing.reset();
      ++races_lost;
    } else if (ev.has_input_ignored()) {
      ++ignored;
    } else if (ev.has_group_restored()) {
      if (!running) return "group_restored for a finished group";
      ++restored;
    }
    return {};
  }

  // The core's own view must agree with what its events said.
  std::string checkView(const Core& core) {
    for (auto& [id, g] : groups) {
      if (g.forgotten) continue;
      const Group* group = core.findGroupForTest(id);
      if (group == nullptr) {
        if (g.status == td::v1::GROUP_STATUS_RUNNING) return "running group " + id + " forgotten";
        g.forgotten = true;
        ++forgotten;
        continue;
      }
      if (group->status() != g.status) return "group " + id + ": core status disagrees";
      if (group->lastSequence() != g.last_sequence) {
        return "group " + id + ": core last sequence " + std::to_string(group->lastSequence()) +
               " but events say " + std::to_string(g.last_sequence);
      }
    }
    return {};
  }
};

// What td.state would hold, kept as the Kafka shell keeps it: after every input, a snapshot of
// each group the effects touched (with no outbox: here all output is delivered), forgotten-group
// records for forgotten groups, and deletions when their refusals end.
class StateStore {
 public:
  void absorb(Core& core, const Effects& effects, Instant now) {
    std::set<std::string> touched;
    for (const auto& effect : effects) {
      if (const auto* e = std::get_if<PublishEvent>(&effect)) touched.insert(e->event.group_id());
      if (const auto* a = std::get_if<PublishAssignment>(&effect)) touched.insert(a->group_id);
    }
    for (const auto& id : touched) {
      // What the shell writes (encodeState, with its per-step cache) must parse to exactly the
      // group's fresh snapshot; the store keeps the parsed record, as td.state would.
      auto encoded = core.encodeState(id, now, std::string_view());
      auto snapshot = core.snapshot(id, now);
      if (!encoded || !snapshot) continue;
      td::v1::StateRecord record;
      td::v1::StateRecord expected;
      expected.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
      *expected.mutable_group() = std::move(*snapshot);
      if (!record.ParseFromString(*encoded) ||
          record.SerializeAsString() != expected.SerializeAsString()) {
        if (mismatch.empty()) mismatch = "encodeState of group " + id + " differs from snapshot";
      }
      snapshots_[id] = std::move(*record.mutable_group());
    }
    for (auto& f : core.takeForgotten()) {
      snapshots_.erase(f.group_id());
      forgotten_[f.group_id()] = std::move(f);
    }
    for (const auto& [id, partition] : core.takeExpired()) forgotten_.erase(id);
  }
  std::string mismatch;   // the first encodeState that differed from snapshot(), if any
  // A new coordinator restoring every partition with `epoch`; its effects go to `out`.
  std::unique_ptr<Core> restore(const CoreConfig& config, std::uint64_t epoch, Instant now,
                                Effects* out) const {
    std::map<std::int32_t, std::vector<td::v1::GroupSnapshot>> snapshots;
    std::map<std::int32_t, std::vector<td::v1::ForgottenGroup>> forgotten;
    for (const auto& [id, s] : snapshots_) snapshots[s.partition()].push_back(s);
    for (const auto& [id, f] : forgotten_) forgotten[f.partition()].push_back(f);
    std::set<std::int32_t> partitions;
    for (const auto& [p, list] : snapshots) partitions.insert(p);
    for (const auto& [p, list] : forgotten) partitions.insert(p);
    auto core = std::make_unique<Core>(config);
    for (std::int32_t p : partitions) {
      Effects e = core->restore(p, epoch, snapshots[p], forgotten[p], now);
      out->insert(out->end(), e.begin(), e.end());
    }
    return core;
  }

 private:
  std::map<std::string, td::v1::GroupSnapshot> snapshots_;
  std::map<std::string, td::v1::ForgottenGroup> forgotten_;
};

struct Family {
  std::string schema;
  std::string cache;
  std::vector<td::v1::StepSpec> steps;
};

// One seed's run: generates inputs from what the model knows, applies them, checks.
class Simulation {
 public:
  Simulation(std::uint64_t seed, int ops) : seed_(seed), ops_(ops), rng_(seed) {
    config_.coordinator_id = "prop";
    // A third of the seeds forget finished groups quickly, so forgetting is exercised too.
    if (rng_.chance(33)) config_.finished_group_retention = std::chrono::seconds(20);
    // A third abandon memberless groups quickly (by the seed: the random stream stays as it was).
    if (seed % 3 == 1) config_.abandoned_group_timeout = std::chrono::seconds(15);
    for (int f = 0; f < 2; ++f) families_.push_back(makeFamily(f));
  }

  // Runs every operation; returns "" or a reproducible description of the first violation.
  std::string run() {
    core_ = std::make_unique<Core>(config_);
    for (op_ = 0; op_ < ops_; ++op_) {
      description_.clear();
      std::string problem = step(*core_);
      if (problem.empty()) problem = store_.mismatch;
      if (!problem.empty()) return where() + problem;
    }
    // Determinism: the same inputs at the same times, and the same fail-overs, into a fresh
    // Core, byte for byte.
    auto replay = std::make_unique<Core>(config_);
    StateStore store;
    std::string again;
    std::size_t next_failover = 0;
    for (std::size_t i = 0; i <= inputs_.size(); ++i) {
      while (next_failover < failovers_.size() && failovers_[next_failover].at_input == i) {
        const auto& f = failovers_[next_failover++];
        Effects out;
        replay = store.restore(config_, f.epoch, f.now, &out);
        store.absorb(*replay, out, f.now);
        again += serialize(out);
      }
      if (i == inputs_.size()) break;
      const auto& [input, at] = inputs_[i];
      Effects effects = replay->handle(input, at);
      store.absorb(*replay, effects, at);
      again += serialize(effects);
    }
    if (again != effects_) {
      return "seed " + std::to_string(seed_) + ": replay of " + std::to_string(inputs_.size()) +
             " inputs gave different effects";
    }
    return {};
  }

  const Model& model() const { return model_; }

 private:
  std::string where() const {
    return "seed " + std::to_string(seed_) + " op " + std::to_string(op_) + " [" + description_ +
           "]: ";
  }

  Family makeFamily(int f) {
    Family fam{.schema = "s" + std::to_string(f), .cache = "cache" + std::to_string(f)};
    const int n = 1 + static_cast<int>(rng_.below(5));
    for (int i = 0; i < n; ++i) {
      td::v1::StepSpec s;
      s.set_id(std::string(1, static_cast<char>('a' + i)));
      s.set_max_attempts(1 + static_cast<std::uint32_t>(rng_.below(3)));
      s.set_timeout_ms(60'000);
      for (int d = 0; d < i; ++d) {
        if (rng_.chance(30)) s.add_depends_on(std::string(1, static_cast<char>('a' + d)));
      }
      if (rng_.chance(60)) {
        auto& r = *s.mutable_retry() = protocol::defaultRetryPolicy();
        r.set_backoff_initial_ms(rng_.pick(std::vector<std::uint64_t>{0, 200, 1000, 3000}));
        r.set_backoff_max_ms(std::max<std::uint64_t>(r.backoff_initial_ms(), 5000));
        r.set_backoff_jitter(static_cast<double>(rng_.below(50)) / 100.0);
        r.set_retry_on_any_exit(rng_.chance(60));
        if (!r.retry_on_any_exit()) {
          for (int code : {1, 2, 137}) {
            if (rng_.chance(50)) r.add_retry_on_exit_codes(code);
          }
        }
        r.set_retry_on_timeout(rng_.chance(70));
        r.set_retry_on_lost(rng_.chance(80));
        r.set_count_lost_attempts(rng_.chance(50));
        r.set_max_lost_attempts(1 + static_cast<std::uint32_t>(rng_.below(3)));
      }
      fam.steps.push_back(std::move(s));
    }
    return fam;
  }

  Effects apply(Core& core, Input input) {
    Effects effects = core.handle(input, clock_.now());
    store_.absorb(core, effects, clock_.now());
    effects_ += serialize(effects);
    inputs_.emplace_back(std::move(input), clock_.now());
    return effects;
  }
  std::string applyAndCheck(Core& core, Input input) {
    return model_.observe(apply(core, std::move(input)), core);
  }

  struct RunningRef {
    std::string group;
    std::string step;
    Model::Running running;
  };
  std::vector<RunningRef> runningAttempts() const {
    std::vector<RunningRef> out;
    for (const auto& [id, g] : model_.groups) {
      if (g.forgotten) continue;
      for (const auto& s : g.steps) {
        if (s.running) out.push_back({id, s.spec.id(), *s.running});
        if (s.racing) out.push_back({id, s.spec.id(), *s.racing});
      }
    }
    return out;
  }
  std::vector<std::string> liveGroups() const {
    std::vector<std::string> out;
    for (const auto& [id, g] : model_.groups) {
      if (!g.forgotten) out.push_back(id);
    }
    return out;
  }
  std::vector<std::string> joinedPeers() const {
    std::vector<std::string> out;
    for (const auto& [peer, j] : model_.joined) out.push_back(peer);
    return out;
  }

  td::v1::StepFinished finished(const std::string& group, const std::string& peer,
                                const std::string& session, const std::string& step,
                                std::uint32_t attempt) {
    td::v1::StepFinished f;
    f.set_group_id(group);
    f.set_peer_id(peer);
    f.set_session_id(session);
    f.set_step_id(step);
    f.set_attempt(attempt);
    switch (rng_.below(10)) {
      case 0: case 1: case 2: case 3: case 4:
        f.set_outcome(td::v1::STEP_OUTCOME_SUCCEEDED);
        break;
      case 5: case 6:
        f.set_outcome(td::v1::STEP_OUTCOME_FAILED);
        f.set_exit_code(rng_.pick(std::vector<std::int32_t>{1, 2, 3, 137}));
        break;
      case 7:
        f.set_outcome(td::v1::STEP_OUTCOME_TIMED_OUT);
        f.set_exit_code(-1);
        f.set_signal(9);
        break;
      case 8:
        f.set_outcome(td::v1::STEP_OUTCOME_ABORTED);
        f.set_exit_code(-1);
        f.set_signal(15);
        break;
      default:
        f.set_outcome(td::v1::STEP_OUTCOME_REJECTED);
        f.set_exit_code(0);
        break;
    }
    f.set_duration_ms(rng_.below(100000));
    description_ += "finish " + group + " " + step + "#" + std::to_string(attempt) + " by " +
                    peer + "/" + session + " " +
                    std::string(protocol::outcomeName(f.outcome())) + " exit " +
                    std::to_string(f.exit_code()) + "; ";
    return f;
  }

  std::string registerPeer(Core& core) {
    const std::string peer = "w" + std::to_string(rng_.below(8));
    const Family& fam = families_[rng_.below(families_.size())];
    int& sessions = sessions_[peer];
    if (sessions == 0 || !rng_.chance(20)) ++sessions;   // else: a duplicate registration
    std::vector<std::string> builds_on;
    if (rng_.chance(30)) builds_on.push_back("c" + std::to_string(rng_.below(5)));
    if (rng_.chance(10)) builds_on.push_back("c" + std::to_string(rng_.below(5)));
    PeerBuilder builder(peer);
    builder.schema(fam.schema, "digest-" + fam.schema)
        .cache(fam.cache)
        .change("c" + std::to_string(rng_.below(5)))
        .on(builds_on)
        .session(peer + "-s" + std::to_string(sessions));
    if (rng_.chance(8)) builder.complex();
    td::v1::PeerRegistered p = builder.build();
    p.clear_steps();
    for (const auto& s : fam.steps) *p.add_steps() = s;
    p.set_compatibility_key(protocol::compatibilityKey(p));
    description_ += "register " + peer + "/" + p.session_id() + " " + fam.schema +
                    " change " + p.repos(0).change_ref() + (p.complex() ? " complex" : "") +
                    "; ";
    return applyAndCheck(core, Registration{.partition = static_cast<std::int32_t>(rng_.below(4)),
                                            .peer = std::move(p)});
  }

  std::string heartbeat(Core& core, const std::string& group, const std::string& peer,
                        const std::string& session) {
    td::v1::PeerHeartbeat hb;
    hb.set_group_id(group);
    hb.set_peer_id(peer);
    hb.set_session_id(session);
    description_ += "heartbeat " + peer + "/" + session + " in " + group + "; ";
    return applyAndCheck(core, hb);
  }

  std::string tick(Core& core) {
    const std::int64_t lease = config_.lease.count();
    std::int64_t ms = 0;
    switch (rng_.below(5)) {
      case 0: case 1: ms = static_cast<std::int64_t>(rng_.below(1000)); break;
      case 2: case 3: ms = static_cast<std::int64_t>(rng_.below(lease)); break;
      default: ms = static_cast<std::int64_t>(rng_.below(2 * lease + 1)); break;
    }
    clock_.advance(Millis(ms));
    description_ += "advance " + std::to_string(ms) + " ms, tick; ";
    return applyAndCheck(core, Tick{});
  }

  std::string step(Core& core) {
    const std::uint64_t roll = rng_.below(100);
    if (roll < 12) return registerPeer(core);
    if (roll < 26) {  // one peer heartbeats (sometimes with a stale session or group)
      auto peers = joinedPeers();
      if (peers.empty()) return tick(core);
      const std::string& peer = rng_.pick(peers);
      auto j = model_.joined.at(peer);
      if (rng_.chance(10)) j.session += "-old";
      if (rng_.chance(5)) {
        auto groups = liveGroups();
        if (!groups.empty()) j.group = rng_.pick(groups);
      }
      return heartbeat(core, j.group, peer, j.session);
    }
    if (roll < 34) {  // every present member of every running group heartbeats
      std::vector<std::tuple<std::string, std::string, std::string>> all;
      for (const auto& [id, g] : model_.groups) {
        if (g.forgotten || g.status != td::v1::GROUP_STATUS_RUNNING) continue;
        for (const auto& [peer, session] : g.present) all.emplace_back(id, peer, session);
      }
      for (const auto& [id, peer, session] : all) {
        if (std::string p = heartbeat(core, id, peer, session); !p.empty()) return p;
      }
      return {};
    }
    if (roll < 54) {  // a running attempt finishes, with any outcome
      auto running = runningAttempts();
      if (running.empty()) return tick(core);
      const RunningRef& r = rng_.pick(running);
      return applyAndCheck(core, finished(r.group, r.running.peer, r.running.session, r.step,
                                          r.running.attempt));
    }
    if (roll < 60) {  // a stale, future or duplicate completion of a known step
      auto groups = liveGroups();
      if (groups.empty()) return tick(core);
      const std::string& id = rng_.pick(groups);
      const auto& g = model_.groups.at(id);
      const Model::StepModel& s = g.steps[rng_.below(g.steps.size())];
      std::uint32_t attempt = s.last_attempt;
      switch (rng_.below(3)) {
        case 0: attempt = attempt > 1 ? attempt - 1 : 1; break;  // stale
        case 1: attempt += 1; break;                              // future
        default: attempt = attempt == 0 ? 1 : attempt; break;     // duplicate of the last
      }
      std::string peer = s.last.peer.empty() ? "w0" : s.last.peer;
      std::string session = s.last.session.empty() ? "w0-s1" : s.last.session;
      if (rng_.chance(20)) peer = "w" + std::to_string(rng_.below(8));
      return applyAndCheck(core, finished(id, peer, session, s.spec.id(), attempt));
    }
    if (roll < 66) {  // StepStarted for a running (or stale) attempt
      auto running = runningAttempts();
      if (running.empty()) return tick(core);
      const RunningRef& r = rng_.pick(running);
      td::v1::StepStarted s;
      s.set_group_id(r.group);
      s.set_peer_id(r.running.peer);
      s.set_session_id(r.running.session);
      s.set_step_id(r.step);
      s.set_attempt(rng_.chance(80) ? r.running.attempt : r.running.attempt + 1);
      description_ += "started " + r.group + " " + r.step + "#" + std::to_string(s.attempt()) +
                      "; ";
      return applyAndCheck(core, s);
    }
    if (roll < 70) {  // a peer leaves (sometimes a stale session)
      auto peers = joinedPeers();
      if (peers.empty()) return tick(core);
      const std::string& peer = rng_.pick(peers);
      const auto& j = model_.joined.at(peer);
      td::v1::PeerLeft left;
      left.set_group_id(j.group);
      left.set_peer_id(peer);
      left.set_session_id(rng_.chance(85) ? j.session : j.session + "-old");
      left.set_reason("signal");
      description_ += "left " + peer + "/" + left.session_id() + "; ";
      return applyAndCheck(core, left);
    }
    if (roll < 75) {  // garbage that is valid protobuf: unknown group, unknown step, bad fields
      auto groups = liveGroups();
      const std::string known = groups.empty() ? "nope" : rng_.pick(groups);
      switch (rng_.below(5)) {
        case 0:
          return applyAndCheck(core, finished("no-such-group", "w1", "w1-s1", "a", 1));
        case 1:
          return applyAndCheck(core, finished(known, "w1", "w1-s1", "zz", 1));
        case 2: {
          td::v1::StepFinished f = finished(known, "w1", "w1-s1", "a", 1);
          f.set_outcome(td::v1::STEP_OUTCOME_LOST);   // only the coordinator records lost
          return applyAndCheck(core, f);
        }
        case 3: {
          td::v1::StepStarted s;
          s.set_group_id(known);
          s.set_peer_id("w1");
          s.set_session_id("w1-s1");
          s.set_step_id("a");
          s.set_attempt(0);
          description_ += "started attempt 0; ";
          return applyAndCheck(core, s);
        }
        default: {
          td::v1::PeerRegistered p = PeerBuilder("w9").build();
          p.clear_steps();
          description_ += "register without steps; ";
          return applyAndCheck(core, Registration{.partition = 0, .peer = std::move(p)});
        }
      }
    }
    if (roll < 77) return failOver();
    return tick(core);
  }

  // The coordinator dies and another restores every group from td.state (the outbox is empty:
  // here all output was delivered). The old core is gone; the model carries on.
  std::string failOver() {
    const std::uint64_t epoch = ++epoch_;
    Effects out;
    core_ = store_.restore(config_, epoch, clock_.now(), &out);
    store_.absorb(*core_, out, clock_.now());
    failovers_.push_back({inputs_.size(), epoch, clock_.now()});
    effects_ += serialize(out);
    description_ += "fail-over to epoch " + std::to_string(epoch) + "; ";
    ++model_.failovers;
    return model_.observe(out, *core_);
  }

  std::uint64_t seed_;
  int ops_;
  int op_ = 0;
  Rng rng_;
  CoreConfig config_;
  std::vector<Family> families_;
  td::testing::ManualClock clock_;
  Model model_;
  std::map<std::string, int> sessions_;
  std::vector<std::pair<Input, Instant>> inputs_;
  std::string effects_;
  std::string description_;
  std::unique_ptr<Core> core_;
  StateStore store_;
  std::uint64_t epoch_ = 1;
  struct Failover {
    std::size_t at_input;   // before inputs_[at_input]
    std::uint64_t epoch;
    Instant now;
  };
  std::vector<Failover> failovers_;
};

TEST(CoreProperties, InvariantsHoldOnRandomInputSequences) {
  const std::uint64_t only = envOr("TD_PROPERTY_SEED", 0);
  const std::uint64_t seeds = only != 0 ? 1 : envOr("TD_PROPERTY_SEEDS", 300);
  const int ops = static_cast<int>(envOr("TD_PROPERTY_OPS", 300));
  Model totals;
  int failures = 0;
  for (std::uint64_t i = 0; i < seeds; ++i) {
    const std::uint64_t seed = only != 0 ? only : i + 1;
    Simulation sim(seed, ops);
    if (std::string problem = sim.run(); !problem.empty()) {
      ADD_FAILURE() << problem << "\n  reproduce: TD_PROPERTY_SEED=" << seed
                    << " TD_PROPERTY_OPS=" << ops << " ./coordinator_property_test";
      if (++failures >= 5) break;
    }
    const Model& m = sim.model();
    totals.completed += m.completed;
    totals.failed += m.failed;
    totals.lost_attempts += m.lost_attempts;
    totals.assigned += m.assigned;
    totals.ignored += m.ignored;
    totals.dead += m.dead;
    totals.forgotten += m.forgotten;
    totals.reused_ids += m.reused_ids;
    totals.failovers += m.failovers;
    totals.restored += m.restored;
    totals.abandoned += m.abandoned;
    totals.speculative += m.speculative;
    totals.races_lost += m.races_lost;
  }
  std::printf("%llu seeds x %d ops: %d assigned, %d completed, %d failed, %d lost attempts, "
              "%d ignored, %d dead letters, %d forgotten groups, %d forgotten ids founded again, "
              "%d fail-overs restoring %d running groups, %d abandoned, %d speculative attempts "
              "(%d races won by success while the other ran)\n",
              static_cast<unsigned long long>(seeds), ops, totals.assigned, totals.completed,
              totals.failed, totals.lost_attempts, totals.ignored, totals.dead,
              totals.forgotten, totals.reused_ids, totals.failovers, totals.restored,
              totals.abandoned, totals.speculative, totals.races_lost);
  if (only == 0 && seeds >= 100) {
    // The generator must reach the interesting states, or the properties prove little.
    EXPECT_GT(totals.completed, 100);
    EXPECT_GT(totals.failed, 100);
    EXPECT_GT(totals.lost_attempts, 100);
    EXPECT_GT(totals.forgotten, 10);
    EXPECT_GT(totals.failovers, 100);
    EXPECT_GT(totals.restored, 100);
    EXPECT_GT(totals.abandoned, 10);
    EXPECT_GT(totals.speculative, 10);
    EXPECT_GT(totals.races_lost, 5);
  }
}

// Regression: a group id is a hash of (compatibility key, founding peer id, founding session
// id). After a finished group was forgotten, the same registration (retried or replayed) used to
// found a new group under the same id: its events restarted at sequence 1 under a key td.events
// had already numbered, and its assignments went to the old td.assign.<id> topic. Now forgotten
// sessions and ids are tombstoned and such a registration is refused.
using Regression = CoreTest;
TEST_F(Regression, GroupIdIsNotReusedAfterTheGroupIsForgotten) {
  const auto g = join(PeerBuilder("1").change("c1").steps(1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  ASSERT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_COMPLETED);
  clock_.advance(core_.config().finished_group_retention + std::chrono::seconds(1));
  run(Tick{});
  ASSERT_EQ(core_.findGroupForTest(g), nullptr) << "forgotten after the retention";
  Effects replay = run(Registration{.peer = PeerBuilder("1").change("c1").steps(1).build()});
  ASSERT_FALSE(replay.empty());
  ASSERT_TRUE(std::holds_alternative<PublishJoin>(replay.back()));
  EXPECT_TRUE(std::get<PublishJoin>(replay.back()).record.has_rejected());
  EXPECT_EQ(deadLetters(replay), 1);
  EXPECT_EQ(core_.groupCount(), 0u) << "no group was founded under the forgotten id";
  // A new session of the same peer is welcome, under a new id.
  const auto fresh = join(PeerBuilder("1").change("c1").steps(1).session("1-s2"));
  EXPECT_FALSE(fresh.empty());
  EXPECT_NE(fresh, g);
}

// Regression: a peer declared lost stayed in the core's peer table, so a repeat of its
// registration (same session: retried or replayed) was answered GroupJoined/RUNNING although the
// peer was no longer a member. Re-admitting a session that is gone would hand it work it never
// does, so the repeat is now refused: a live worker comes back with a new session.
TEST_F(Regression, RepeatedRegistrationOfALostPeerIsRefused) {
  const auto g = join(PeerBuilder("1").change("c1").steps(2));
  join(PeerBuilder("2").change("c1").steps(2));
  td::v1::PeerHeartbeat hb;
  hb.set_group_id(g);
  hb.set_peer_id("2");
  hb.set_session_id(sessionOf("2"));
  for (int i = 0; i < 14; ++i) {  // 7 s: "2" heartbeats, "1" is silent and lost
    clock_.advance(Millis(500));
    run(hb);
    run(Tick{});
  }
  ASSERT_FALSE(core_.findGroupForTest(g)->isPresentSession("1", sessionOf("1")));
  Effects repeat = run(Registration{.peer = PeerBuilder("1").change("c1").steps(2).build()});
  ASSERT_TRUE(std::holds_alternative<PublishJoin>(repeat.back()));
  EXPECT_TRUE(std::get<PublishJoin>(repeat.back()).record.has_rejected())
      << "no GroupJoined may claim membership for a session that is gone";
  EXPECT_FALSE(core_.findGroupForTest(g)->isPresentSession("1", sessionOf("1")));
}

}  // namespace
}  // namespace td::coordinator::testing
