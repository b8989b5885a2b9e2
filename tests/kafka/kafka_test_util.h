// Helpers for td_kafka's tests: deadlines instead of sleeps, unique names, temp dirs.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace td::kafka::testing {

// Calls `pred` until it returns true or `timeout` passes; `pred` itself must wait (poll Kafka
// with a timeout), so this never sleeps.
inline bool waitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

// A name no other test (or earlier run) uses.
inline std::string uniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return prefix + "." + (info != nullptr ? info->name() : "t") + "." + std::to_string(::getpid()) +
         "." + std::to_string(counter.fetch_add(1));
}

// A fresh directory under /tmp, removed at destruction.
class TempDir {
 public:
  TempDir() : path_(std::filesystem::temp_directory_path() / uniqueName("td-kafka")) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace td::kafka::testing
