// Real child processes for integration tests: spawn, signal, wait with a deadline. The
// destructor SIGKILLs and reaps a child that is still running, so no test leaks processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace td::testing {

class Process {
 public:
  struct Options {
    std::vector<std::string> args;                               // args[0] = executable path
    std::vector<std::pair<std::string, std::string>> env;        // added to ours
    std::filesystem::path cwd;                                   // empty = ours
    std::filesystem::path output;                                // stdout+stderr go here
  };
  explicit Process(Options options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // The exit code (128+signal when killed), or nullopt if still running at the deadline.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();
  std::string output() const;   // what it has written so far
  const std::filesystem::path& outputPath() const { return options_.output; }

 private:
  Options options_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Polls `predicate` every few milliseconds until it holds or `timeout` passes.
bool waitUntil(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);

// A fresh directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string readFile(const std::filesystem::path& path);

}  // namespace td::testing
