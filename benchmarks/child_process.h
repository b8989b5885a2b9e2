// Child processes of td-bench (td-coordinator, td-worker) and the scratch directory that holds
// their logs and schema files.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace td::bench {

// One spawned program. stdin is /dev/null; stdout and stderr go to one file. Waiting uses a
// pidfd, so it wakes when the child exits rather than on a polling interval.
// The destructor sends SIGTERM to a child still running, gives it kStopGrace to exit, then
// SIGKILLs it, and always reaps it: no process outlives the bench.
// Thread safety: none; use from one thread.
class ChildProcess {
 public:
  static constexpr std::chrono::milliseconds kStopGrace{5000};

  // args[0] is the executable's path. Errors: td::Errc::kIo (spawn or pidfd_open failed).
  static td::Result<std::unique_ptr<ChildProcess>> spawn(const std::vector<std::string>& args,
                                                         const std::filesystem::path& output);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The exit code (128 + signal number when killed by a signal), or nullopt if it is still
  // running after `timeout` (0 = just look).
  std::optional<int> waitFor(std::chrono::milliseconds timeout);
  // SIGTERM, then waitFor(kStopGrace), then SIGKILL. Returns the exit code.
  int stop();

  pid_t pid() const { return pid_; }
  // The last `bytes` bytes of what it wrote (for error messages).
  std::string outputTail(std::size_t bytes) const;

 private:
  ChildProcess(pid_t pid, int pidfd, std::filesystem::path output)
      : pid_(pid), pidfd_(pidfd), output_(std::move(output)) {}

  pid_t pid_;
  int pidfd_;
  std::filesystem::path output_;
  std::optional<int> exit_code_;
};

// Makes SIGTERM, SIGINT and SIGHUP of td-bench pass SIGTERM on to every ChildProcess not reaped
// yet before td-bench dies of the signal, so no td-coordinator or td-worker outlives a killed
// bench (SIGKILL cannot be caught: children of a SIGKILLed bench live on). Call once, early.
void stopChildrenOnTermination();

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor
// unless keep() was called.
class ScratchDir {
 public:
  // Errors: td::Errc::kIo.
  static td::Result<std::unique_ptr<ScratchDir>> create(const std::string& prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }
  // Writes `content` to path()/name. Errors: td::Errc::kIo.
  td::Result<std::filesystem::path> writeFile(const std::string& name,
                                              const std::string& content) const;

 private:
  explicit ScratchDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace td::bench
