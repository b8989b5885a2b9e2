// The simulation's scheduler: actors (a coordinator's Service::run, a simulated worker) run on
// their own stacks (ucontext) in one OS thread, one at a time, in an order drawn from one
// seeded generator, on simulated time. An actor gives way only at an await point (every call
// into the in-memory bus is one), so a run is a pure function of its seed and replays exactly.
//
// Time advances only when no actor can run: to the earliest deadline of those waiting. A
// crashed actor's next await throws Scheduler::Crashed, which unwinds its stack (nothing of it
// runs again; what it queued and had not written is the bus's to decide). A frozen actor
// (SIGSTOP) is not scheduled until its thaw time.
#pragma once

#include <ucontext.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/splitmix.h"
#include "common/time.h"

namespace td::sim {

// The simulation's generator: one per run, drawn from the run's seed.
class Rng : public SplitMix64 {
 public:
  explicit Rng(std::uint64_t seed) : SplitMix64(seed, 0x5eed) {}
};

inline constexpr Millis kNever{std::numeric_limits<std::int64_t>::max() / 4};

class Scheduler {
 public:
  struct Crashed {};   // thrown at a crashed actor's await point; never caught by real code
  using ActorId = int;

  explicit Scheduler(std::uint64_t seed) : rng_(seed) {}
  ~Scheduler();   // unwinds every actor still alive (as a crash)
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  Millis now() const { return now_; }
  Rng& rng() { return rng_; }

  ActorId spawn(std::string name, std::function<void()> body);
  // From inside an actor: gives way until `deadline`, or until `ready()` holds (checked by the
  // scheduler between turns). Throws Crashed if the actor was crashed meanwhile.
  void await(Millis deadline, std::function<bool()> ready = {});
  void sleep(Millis duration) { await(now_ + duration); }
  // Gives way for a random 0..`max` ms: a network round trip.
  void hop(Millis max = Millis(2)) { await(now_ + rng_.between(Millis(0), max)); }

  void crash(ActorId id);
  void freeze(ActorId id, Millis until);
  bool alive(ActorId id) const;
  bool frozen(ActorId id) const;
  ActorId current() const { return current_; }
  const std::string& name(ActorId id) const;

  // Runs actors until `done()` holds, time reaches `end`, or nothing can run. `hook(now)` runs
  // before every turn (faults, membership timeouts) and returns when it next wants to run.
  // Returns false when it stopped because nothing could run before `end`.
  bool run(Millis end, const std::function<bool()>& done,
           const std::function<Millis(Millis)>& hook);

  // One line per actor still alive: its name, deadline and freeze (for a stalled run).
  std::string describe() const;

  // Crashes every actor still alive and unwinds it. Call before destroying what they use.
  void shutdown();

  // The first exception other than Crashed an actor's body threw (empty: none).
  const std::string& actorError() const { return actor_error_; }

 private:
  struct Actor {
    std::string name;
    std::function<void()> body;
    ucontext_t context{};
    std::unique_ptr<char[]> stack;
    bool done = false;
    bool crash = false;
    Millis deadline{0};
    Millis frozen_until{0};
    std::function<bool()> ready;
  };
  static void trampoline(unsigned int high, unsigned int low);
  void resume(Actor& actor);
  bool runnable(const Actor& actor) const;

  Rng rng_;
  Millis now_{0};
  std::vector<std::unique_ptr<Actor>> actors_;
  ActorId current_ = -1;
  ucontext_t main_{};
  std::string actor_error_;
};

}  // namespace td::sim
