// A function running on its own thread, with its result kept for the owner.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>

namespace td::bench {

// Runs fn(stop_token) on a std::jthread started by the constructor. The destructor requests
// stop and joins, so the thread never outlives its owner; `fn` must return soon after a stop
// request (td-bench's loops check it at least every 100 ms).
// Thread safety: waitFor(), finished() and requestStop() may be called from any thread;
// result() only from the owner, after waitFor() returned true.
template <typename T>
class BackgroundTask {
 public:
  explicit BackgroundTask(std::function<T(std::stop_token)> fn)
      : thread_([this, fn = std::move(fn)](std::stop_token stop) {
          T value = fn(stop);
          std::lock_guard lock(mutex_);
          result_.emplace(std::move(value));
          done_.notify_all();
        }) {}
  ~BackgroundTask() = default;  // std::jthread: request_stop() + join()
  BackgroundTask(const BackgroundTask&) = delete;
  BackgroundTask& operator=(const BackgroundTask&) = delete;

  // True once fn has returned; waits at most `timeout` for it.
  bool waitFor(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return done_.wait_for(lock, timeout, [this] { return result_.has_value(); });
  }
  void requestStop() { thread_.request_stop(); }

  // REQUIRES: waitFor() returned true.
  T& result() { return *result_; }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::optional<T> result_;  // guarded by mutex_ until set; read-only afterwards
  std::jthread thread_;      // last: started after, and joined before, the members above go
};

}  // namespace td::bench
