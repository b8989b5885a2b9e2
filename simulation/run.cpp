#include "simulation/run.h"

#include <fmt/format.h>

#include <deque>
#include <memory>
#include <optional>
#include <tuple>

#include "coordinator/shell/service.h"
#include "schema/schema.h"
#include "simulation/checks.h"
#include "simulation/memory_bus.h"
#include "simulation/memory_port.h"
#include "simulation/scheduler.h"
#include "simulation/sim_worker.h"
#include "td/v1/registrations.pb.h"

namespace td::sim {

namespace {

// How long a finished group is kept (then forgotten), and its sessions are then refused for
// six times as long (Core::refusalPeriod): 30 s, longer than the faults of a run hold input
// back. A registration replayed after that founds its group again, by design (a replay is
// bounded by the committed offsets, and the default retention makes the window an hour).
constexpr Millis kRetention{5000};
// How old a duplicated record may be: a worker publishes a record again when its first copy
// was written but never acknowledged (a long outage), well within the refusal period.
constexpr Millis kDuplicateAge{12000};

// How long coordinators run on after the last worker is done.
constexpr Millis kTail{10000};

// Wall time 2026-01-01 plus the simulated time.
class SimClock final : public Clock {
 public:
  explicit SimClock(const Scheduler& s) : s_(s) {}
  Instant now() const override { return {s_.now(), Millis(1767225600000) + s_.now()}; }

 private:
  const Scheduler& s_;
};

std::string schemaText(Rng& rng) {
  const int steps = 3 + static_cast<int>(rng.below(6));
  std::string text = "name: sim\ndefaults: {max_attempts: 3}\nsteps:\n";
  for (int i = 0; i < steps; ++i) {
    text += fmt::format("  - id: s{}\n    run: \"true\"\n", i);
    if (i == steps - 1 && rng.chance(50)) text += "    depends_on: [s0]\n";
  }
  return text;
}

// A coordinator slot: one instance at a time, restarted after a crash as a new incarnation.
struct Coordinator {
  int slot = 0;
  int incarnation = 0;
  std::string id;
  Scheduler::ActorId actor = -1;
  coordinator::Service* service = nullptr;   // while its actor runs
  bool stopping = false;                      // stop() asked (scale-in)
  std::optional<Millis> restart_at;
};

class Run {
 public:
  explicit Run(const RunOptions& options)
      : options_(options),
        s_(options.seed),
        clock_(s_),
        bus_(s_, BusOptions{.partitions = 1 + static_cast<int>(s_.rng().below(4)),
                            .bug_stale_generation_commit = options.bug_stale_generation_commit,
                            .trace = options.verbose}) {}

  RunResult go() {
    result_.seed = options_.seed;
    auto parsed = schema::parse(schemaText(s_.rng()), "sim.yaml");
    if (!parsed) {
      result_.violations.push_back("schema: " + parsed.error().message());
      return result_;
    }
    schema_ = std::move(*parsed);
    const int coordinators = 1 + static_cast<int>(s_.rng().below(3));
    for (int i = 0; i < coordinators; ++i) startCoordinator(i);
    const int families = 1 + static_cast<int>(s_.rng().below(3));
    for (int f = 0; f < families; ++f) {
      const int members = 2 + static_cast<int>(s_.rng().below(2));
      for (int w = 0; w < members; ++w) startWorker(f, w);
    }
    planFaults();
    // After the last worker is done the coordinators run on for a while, with faults still
    // due: finished groups are forgotten (finished_group_retention) and their partitions may
    // move again, which is when a restore must not bring one back.
    std::optional<Millis> workers_done_at;
    const bool finished = s_.run(
        Millis(20 * 60 * 1000),
        [&] {
          if (!allWorkersDone()) return false;
          if (!workers_done_at) workers_done_at = s_.now();
          return s_.now() >= *workers_done_at + kTail && quiet();
        },
        [this](Millis now) { return hook(now); });
    result_.sim_ms = s_.now().count();
    result_.rebalances = bus_.rebalances();
    if (!finished || !allWorkersDone()) {
      dump("stalled");
      for (std::size_t i = 0; i < outcomes_.size(); ++i) {
        if (!outcomes_[i].finished && outcomes_[i].error.empty()) {
          violation(fmt::format("liveness: worker {} (group {}) never finished (stopped at {} ms)",
                                specs_[i]->peer_id, outcomes_[i].group_id, s_.now().count()));
        }
      }
    }
    check();
    if (!result_.violations.empty()) dump("violations");
    s_.shutdown();
    return std::move(result_);
  }

 private:
  void violation(std::string what) { result_.violations.push_back(std::move(what)); }
  void say(const std::string& what) {
    if (options_.verbose) fmt::print(stderr, "[{:>7} ms] {}\n", s_.now().count(), what);
  }

  // The run's state on stderr (--verbose): actors, runs, input offsets.
  void dump(const std::string& why) {
    if (!options_.verbose) return;
    say(why + "; actors:\n" + s_.describe());
    for (const auto& e : executions_) {
      say(fmt::format("  ran {} {} #{} by {} {}..{} ok={} aborted={}", e.group_id, e.step_id,
                      e.attempt, e.session_id, e.started.count(), e.ended.count(), e.succeeded,
                      e.aborted));
    }
    const auto& t = bus_.options().topics;
    for (int p = 0; p < bus_.options().partitions; ++p) {
      say(fmt::format("  partition {}: registrations {} (committed {}), completions {} "
                      "(committed {})",
                      p, bus_.high(t.registrations(), p), bus_.committed(t.registrations(), p),
                      bus_.high(t.completions(), p), bus_.committed(t.completions(), p)));
    }
  }

  void startCoordinator(int slot) {
    if (static_cast<std::size_t>(slot) >= coordinators_.size()) coordinators_.resize(slot + 1);
    Coordinator& c = coordinators_[slot];
    c.slot = slot;
    ++c.incarnation;
    c.id = fmt::format("c{}.{}", slot, c.incarnation);
    c.stopping = false;
    c.restart_at.reset();
    say("start coordinator " + c.id);
    coordinator::ServiceOptions o;
    o.core.coordinator_id = c.id;
    o.core.step_stats = false;
    o.core.finished_group_retention = kRetention;
    o.quiet_cycle_wait = Millis(5);
    c.actor = s_.spawn(c.id, [this, slot, o]() mutable {
      auto service = coordinator::Service::create(
          o, clock_, [this](const coordinator::ServiceOptions&, coordinator::ServiceProbe&)
                         -> td::Result<std::unique_ptr<coordinator::Port>> {
            return std::unique_ptr<coordinator::Port>(new MemoryPort(bus_));
          });
      if (!service) {
        violation("coordinator create: " + service.error().message());
        return;
      }
      coordinators_[slot].service = service->get();
      struct Clear {
        Coordinator& c;
        ~Clear() { c.service = nullptr; }
      } clear{coordinators_[slot]};
      auto status = (*service)->run();
      if (!status) {
        violation(fmt::format("coordinator {} stopped: {}", coordinators_[slot].id,
                              status.error().message()));
      }
    });
  }

  void startWorker(int family, int index) {
    auto spec = std::make_unique<WorkerSpec>();
    spec->peer_id = fmt::format("f{}-w{}", family, index);
    spec->repo.set_repository("repo");
    spec->repo.set_base_ref(fmt::format("main{}", family));
    spec->repo.set_change_ref(fmt::format("change{}", family));
    spec->schema = &schema_;
    spec->fail_percent = s_.rng().chance(30) ? 10 : 0;
    spec->min_step = Millis(50);
    spec->max_step = Millis(200 + static_cast<std::int64_t>(s_.rng().below(2000)));
    if (s_.rng().chance(15)) {   // a straggler: a noisy neighbour, a cold cache
      spec->min_step *= 10;
      spec->max_step *= 10;
    }
    specs_.push_back(std::move(spec));
    outcomes_.emplace_back();
    const std::size_t i = specs_.size() - 1;
    const Millis delay = s_.rng().between(Millis(0), Millis(3000));
    s_.spawn(specs_[i]->peer_id, [this, i, delay] {
      s_.sleep(delay);
      runWorker(bus_, *specs_[i], executions_, outcomes_[i]);
      if (!outcomes_[i].error.empty()) {
        violation(fmt::format("worker {}: {}", specs_[i]->peer_id, outcomes_[i].error));
        outcomes_[i].finished = true;
      }
    });
  }

  // Every fault is over long enough ago that what it moved has settled: a dead member was
  // dropped from the group and its partitions restored by the next owner (whose re-published
  // outbox completes what the dead one wrote in part).
  bool quiet() const {
    if (!faults_.empty()) return false;
    for (const auto& c : coordinators_) {
      if (c.restart_at) return false;
    }
    return s_.now() >= last_fault_at_ + bus_.options().session_timeout + Millis(3000);
  }

  bool allWorkersDone() const {
    for (const auto& o : outcomes_) {
      if (!o.finished) return false;
    }
    return true;
  }

  struct Fault {
    Millis at;
    enum Kind { kCrash, kFreeze, kOutage, kScaleOut, kScaleIn, kDuplicate, kGarbage } kind;
    Millis length;
  };

  void planFaults() {
    const int count = static_cast<int>(s_.rng().below(7));
    for (int i = 0; i < count; ++i) {
      Fault f;
      f.at = s_.rng().between(Millis(500), Millis(30000));
      const auto roll = s_.rng().below(100);
      f.kind = roll < 30   ? Fault::kCrash
               : roll < 50 ? Fault::kFreeze
               : roll < 60 ? Fault::kOutage
               : roll < 68 ? Fault::kScaleOut
               : roll < 74 ? Fault::kScaleIn
               : roll < 94 ? Fault::kDuplicate
                           : Fault::kGarbage;
      f.length = f.kind == Fault::kFreeze   ? s_.rng().between(Millis(500), Millis(25000))
                 : f.kind == Fault::kOutage ? s_.rng().between(Millis(100), Millis(4000))
                                            : s_.rng().between(Millis(100), Millis(3000));
      faults_.push_back(f);
    }
  }

  // A coordinator that runs now (none: -1).
  int pickRunning() {
    std::vector<int> live;
    for (const auto& c : coordinators_) {
      if (c.actor >= 0 && s_.alive(c.actor) && !c.restart_at && !c.stopping) live.push_back(c.slot);
    }
    if (live.empty()) return -1;
    return live[s_.rng().below(live.size())];
  }

  Millis hook(Millis now) {
    Millis next = bus_.expireMembers();
    for (auto& c : coordinators_) {
      if (c.restart_at && *c.restart_at <= now) {
        startCoordinator(c.slot);
      } else if (c.restart_at) {
        next = std::min(next, *c.restart_at);
      }
    }
    for (auto it = faults_.begin(); it != faults_.end();) {
      if (it->at > now) {
        next = std::min(next, it->at);
        ++it;
        continue;
      }
      apply(*it);
      last_fault_at_ = std::max(last_fault_at_, now + it->length);
      it = faults_.erase(it);
    }
    return next;
  }

  void apply(const Fault& f) {
    const Millis now = s_.now();
    switch (f.kind) {
      case Fault::kCrash: {
        const int slot = pickRunning();
        if (slot < 0) return;
        auto& c = coordinators_[slot];
        say(fmt::format("kill -9 {} (restart in {} ms)", c.id, f.length.count()));
        s_.crash(c.actor);
        c.restart_at = now + f.length;
        ++result_.crashes;
        return;
      }
      case Fault::kFreeze: {
        const int slot = pickRunning();
        if (slot < 0) return;
        auto& c = coordinators_[slot];
        if (s_.rng().chance(50)) {
          say(fmt::format("freeze {} for {} ms inside its next flush", c.id, f.length.count()));
          bus_.freezeInFlush(c.actor, f.length);
        } else {
          say(fmt::format("freeze {} for {} ms", c.id, f.length.count()));
          s_.freeze(c.actor, now + f.length);
        }
        ++result_.freezes;
        return;
      }
      case Fault::kOutage:
        say(fmt::format("broker outage for {} ms", f.length.count()));
        bus_.outage(now + f.length);
        ++result_.outages;
        return;
      case Fault::kDuplicate: {
        // A recent record of the input written again (a producer's retry): one of a group
        // since forgotten must be refused, a repeated completion ignored.
        const auto& t = bus_.options().topics;
        const std::string topic = s_.rng().chance(50) ? t.registrations() : t.completions();
        const auto p = static_cast<std::int32_t>(s_.rng().below(bus_.options().partitions));
        // Of the records young enough, registrations (not heartbeats) half of the time: a
        // registration counted twice is what a forgotten-group record must refuse.
        const auto& log = bus_.log(topic, p);
        std::vector<std::size_t> young, registrations;
        for (std::size_t i = log.size(); i-- > 0;) {
          if (log[i].timestamp_ms < (now - kDuplicateAge).count()) break;
          young.push_back(i);
          td::v1::RegistrationRecord r;
          if (r.ParseFromString(log[i].value) && r.has_registered()) registrations.push_back(i);
        }
        if (young.empty()) return;
        if (!registrations.empty() && s_.rng().chance(50)) {
          // Every young registration at once (workers that all retried after one outage).
          for (auto i = registrations.rbegin(); i != registrations.rend(); ++i) {
            const kafka::Message copy = log[*i];
            say(fmt::format("duplicate {}[{}]@{}", topic, p, copy.offset));
            bus_.append(topic, p, copy.key, copy.value);
          }
          return;
        }
        const kafka::Message copy = log[young[s_.rng().below(young.size())]];
        say(fmt::format("duplicate {}[{}]@{}", topic, p, copy.offset));
        bus_.append(topic, p, copy.key, copy.value);
        return;
      }
      case Fault::kGarbage: {
        const auto& t = bus_.options().topics;
        const std::string topic = s_.rng().chance(50) ? t.registrations() : t.completions();
        std::string bytes(s_.rng().below(64), '\0');
        for (auto& c : bytes) c = static_cast<char>(s_.rng().below(256));
        say(fmt::format("garbage on {} ({} bytes)", topic, bytes.size()));
        const auto partition = bus_.partitionOf(topic, -1, "garbage");
        garbage_.push_back({topic, partition, bus_.append(topic, partition, "garbage", bytes)});
        return;
      }
      case Fault::kScaleOut:
        say("scale out");
        startCoordinator(static_cast<int>(coordinators_.size()));
        return;
      case Fault::kScaleIn: {
        int live = 0;
        for (const auto& c : coordinators_) {
          live += (c.actor >= 0 && s_.alive(c.actor) && !c.stopping) ? 1 : 0;
        }
        if (live < 2) return;
        const int slot = pickRunning();
        if (slot < 0 || coordinators_[slot].service == nullptr) return;
        say("stop " + coordinators_[slot].id);
        coordinators_[slot].stopping = true;
        coordinators_[slot].service->stop();
        return;
      }
    }
  }

  // ---- The checks, after the run (simulation/checks.h).
  void check() {
    if (!s_.actorError().empty()) violation("exception: " + s_.actorError());
    auto checked = checkRun(RunRecord{bus_, executions_, outcomes_, specs_, garbage_});
    for (auto& v : checked.violations) violation(std::move(v));
    result_.speculative = checked.speculative;
  }

  RunOptions options_;
  Scheduler s_;
  SimClock clock_;
  MemoryBus bus_;
  schema::Schema schema_;
  std::deque<Coordinator> coordinators_;   // stable references: actors hold theirs
  std::vector<std::unique_ptr<WorkerSpec>> specs_;
  std::vector<WorkerOutcome> outcomes_;
  std::vector<Execution> executions_;
  std::vector<Fault> faults_;
  RunResult result_;
  Millis last_fault_at_{0};   // when the last fault applied ends (a freeze, an outage)
  // Garbage records written: (topic, partition, offset).
  std::vector<std::tuple<std::string, std::int32_t, std::int64_t>> garbage_;
};

}  // namespace

RunResult runOnce(const RunOptions& options) {
  Run run(options);
  return run.go();
}

}  // namespace td::sim
