#include "simulation/scheduler.h"

#include <exception>
#include <stdexcept>

namespace td::sim {

namespace {
constexpr std::size_t kStackBytes = 1024 * 1024;
}

Scheduler::~Scheduler() { shutdown(); }

void Scheduler::shutdown() {
  for (auto& actor : actors_) {
    if (actor->done) continue;
    actor->crash = true;
    resume(*actor);   // unwinds it (a body that never started is skipped)
  }
}

Scheduler::ActorId Scheduler::spawn(std::string name, std::function<void()> body) {
  auto actor = std::make_unique<Actor>();
  actor->name = std::move(name);
  actor->body = std::move(body);
  actor->stack.reset(new char[kStackBytes]);
  actor->deadline = now_;
  getcontext(&actor->context);
  actor->context.uc_stack.ss_sp = actor->stack.get();
  actor->context.uc_stack.ss_size = kStackBytes;
  actor->context.uc_link = &main_;
  const auto raw = reinterpret_cast<std::uintptr_t>(actor.get());
  makecontext(&actor->context, reinterpret_cast<void (*)()>(&Scheduler::trampoline), 2,
              static_cast<unsigned int>(raw >> 32), static_cast<unsigned int>(raw));
  actors_.push_back(std::move(actor));
  // The scheduler pointer travels through a member of the actor: see trampoline().
  return static_cast<ActorId>(actors_.size() - 1);
}

namespace {
thread_local Scheduler* g_running = nullptr;
}

void Scheduler::trampoline(unsigned int high, unsigned int low) {
  auto* actor = reinterpret_cast<Actor*>((static_cast<std::uintptr_t>(high) << 32) | low);
  Scheduler* self = g_running;
  try {
    if (!actor->crash) actor->body();
  } catch (const Crashed&) {
  } catch (const std::exception& e) {
    if (self->actor_error_.empty()) self->actor_error_ = actor->name + ": " + e.what();
  } catch (...) {
    if (self->actor_error_.empty()) self->actor_error_ = actor->name + ": unknown exception";
  }
  actor->done = true;
  actor->body = nullptr;   // what it captured goes now, on this stack's owner's watch
  // uc_link returns to main_.
}

void Scheduler::resume(Actor& actor) {
  Scheduler* previous = g_running;
  g_running = this;
  const ActorId before = current_;
  for (std::size_t i = 0; i < actors_.size(); ++i) {
    if (actors_[i].get() == &actor) current_ = static_cast<ActorId>(i);
  }
  swapcontext(&main_, &actor.context);
  current_ = before;
  g_running = previous;
}

void Scheduler::await(Millis deadline, std::function<bool()> ready) {
  if (current_ < 0) throw std::logic_error("Scheduler::await outside an actor");
  Actor& self = *actors_[current_];
  if (self.crash) throw Crashed{};
  self.deadline = deadline;
  self.ready = std::move(ready);
  swapcontext(&self.context, &main_);
  self.ready = nullptr;
  if (self.crash) throw Crashed{};
}

void Scheduler::crash(ActorId id) { actors_.at(id)->crash = true; }

void Scheduler::freeze(ActorId id, Millis until) { actors_.at(id)->frozen_until = until; }

bool Scheduler::alive(ActorId id) const {
  const auto& a = *actors_.at(id);
  return !a.done && !a.crash;
}

bool Scheduler::frozen(ActorId id) const { return actors_.at(id)->frozen_until > now_; }

std::string Scheduler::describe() const {
  std::string out;
  for (const auto& a : actors_) {
    if (a->done) continue;
    out += a->name + ": deadline " + std::to_string(a->deadline.count()) + " ms" +
           (a->ready ? " or ready (now " + std::string(a->ready() ? "true" : "false") + ")" : "") +
           (a->frozen_until > now_ ? ", frozen" : "") + (a->crash ? ", crashed" : "") + "\n";
  }
  return out;
}

const std::string& Scheduler::name(ActorId id) const { return actors_.at(id)->name; }

bool Scheduler::runnable(const Actor& a) const {
  if (a.done) return false;
  if (a.crash) return true;   // to unwind
  if (a.frozen_until > now_) return false;
  if (a.deadline <= now_) return true;
  return a.ready && a.ready();
}

bool Scheduler::run(Millis end, const std::function<bool()>& done,
                    const std::function<Millis(Millis)>& hook) {
  std::vector<Actor*> candidates;
  while (true) {
    const Millis hook_next = hook(now_);
    if (done()) return true;
    candidates.clear();
    for (auto& a : actors_) {
      if (runnable(*a)) candidates.push_back(a.get());
    }
    if (candidates.empty()) {
      Millis next = hook_next;
      for (auto& a : actors_) {
        if (a->done) continue;
        next = std::min(next, std::max(a->deadline, a->frozen_until));
      }
      if (next <= now_) next = now_ + Millis(1);   // a hook that wants now again: move on
      if (next > end) return false;
      now_ = next;
      continue;
    }
    if (now_ > end) return false;
    resume(*candidates[rng_.below(candidates.size())]);
  }
}

}  // namespace td::sim
