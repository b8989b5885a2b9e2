// Lets the simulated workers of a case register together.
#pragma once

#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace td::bench {

// A one-shot barrier for `parties` threads whose wait can be cancelled through a stop_token
// (std::latch's cannot). Every party must call exactly one of arriveAndWait() or arrive().
// Thread safety: all methods may be called from any thread.
class StartGate {
 public:
  explicit StartGate(int parties) : remaining_(parties) {}
  StartGate(const StartGate&) = delete;
  StartGate& operator=(const StartGate&) = delete;

  // Counts the caller in and waits until every party has arrived. False if `stop` was
  // requested first.
  bool arriveAndWait(std::stop_token stop) {
    std::unique_lock lock(mutex_);
    if (--remaining_ <= 0) opened_.notify_all();
    return opened_.wait(lock, stop, [this] { return remaining_ <= 0; });
  }
  // Counts in a party that will not wait (it failed before reaching the gate).
  void arrive() {
    std::lock_guard lock(mutex_);
    if (--remaining_ <= 0) opened_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable_any opened_;
  int remaining_;  // guarded by mutex_
};

}  // namespace td::bench
