#include "worker/step_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>

#include "common/log.h"
#include "common/utf8.h"
#include "worker/step_supervisor.h"

extern char** environ;

namespace td::worker {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxReadPerService = 1024 * 1024;
constexpr std::size_t kMaxEchoLine = 4096;
constexpr milliseconds kFallbackWaitTick{20};

std::string errnoText(int err) { return std::strerror(err); }

td::Unexpected<Error> stepError(Errc code, const std::string& step_id, const std::string& what) {
  return makeError(code, "step '" + step_id + "': " + what);
}

// Owns one fd during start(), so every early return closes it.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

class SpawnFileActions {
 public:
  SpawnFileActions() { ok_ = posix_spawn_file_actions_init(&fa_) == 0; }
  SpawnFileActions(const SpawnFileActions&) = delete;
  SpawnFileActions& operator=(const SpawnFileActions&) = delete;
  ~SpawnFileActions() {
    if (ok_) posix_spawn_file_actions_destroy(&fa_);
  }
  bool ok() const { return ok_; }
  posix_spawn_file_actions_t* get() { return &fa_; }

 private:
  posix_spawn_file_actions_t fa_;
  bool ok_ = false;
};

class SpawnAttr {
 public:
  SpawnAttr() { ok_ = posix_spawnattr_init(&attr_) == 0; }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
  ~SpawnAttr() {
    if (ok_) posix_spawnattr_destroy(&attr_);
  }
  bool ok() const { return ok_; }
  posix_spawnattr_t* get() { return &attr_; }

 private:
  posix_spawnattr_t attr_;
  bool ok_ = false;
};

// Writes all of `data` to fd 2, giving up on errors other than EINTR (echo is best effort).
void writeStderr(const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(STDERR_FILENO, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return;
    }
  }
}

// Our environment minus the names in `extra`, then `extra` itself.
std::vector<std::string> buildEnv(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool overridden =
        std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == name; });
    if (!overridden) env.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

// `t + d`, or time_point::max() where that would overflow (a huge timeout means "never").
Clock::time_point saturatingAdd(Clock::time_point t, milliseconds d) {
  const auto headroom = std::chrono::duration_cast<milliseconds>(Clock::time_point::max() - t);
  return d >= headroom ? Clock::time_point::max() : t + d;
}

bool isContinuation(unsigned char c) { return c >= 0x80 && c <= 0xBF; }

}  // namespace

td::Result<std::unique_ptr<StepProcess>> StepProcess::start(const StepSpecToRun& spec) {
  return startImpl(spec, /*use_pidfd=*/true);
}

td::Result<std::unique_ptr<StepProcess>> StepProcess::startWithoutPidfdForTest(
    const StepSpecToRun& spec) {
  return startImpl(spec, /*use_pidfd=*/false);
}

td::Result<std::unique_ptr<StepProcess>> StepProcess::startImpl(const StepSpecToRun& spec,
                                                                bool use_pidfd) {
  const std::string& id = spec.step_id;
  if (spec.timeout <= milliseconds::zero()) {
    return stepError(Errc::kInvalidArgument, id, "timeout must be > 0");
  }
  if (spec.kill_grace < milliseconds::zero()) {
    return stepError(Errc::kInvalidArgument, id, "kill_grace must be >= 0");
  }
  for (const auto& [name, value] : spec.extra_env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return stepError(Errc::kInvalidArgument, id, "invalid environment variable '" + name + "'");
    }
  }
  if (spec.command.find('\0') != std::string::npos) {
    return stepError(Errc::kInvalidArgument, id, "command contains a NUL byte");
  }
  if (!spec.working_dir.empty()) {
    // Checked here for a clear message; the spawn's chdir still reports races (kIo).
    struct stat st {};
    if (::stat(spec.working_dir.c_str(), &st) != 0) {
      const int err = errno;
      const std::string what = "working_dir '" + spec.working_dir.string() + "'";
      if (err == ENOENT || err == ENOTDIR) {
        return stepError(Errc::kNotFound, id, what + " does not exist");
      }
      return stepError(Errc::kIo, id, "cannot stat " + what + ": " + errnoText(err));
    }
    if (!S_ISDIR(st.st_mode)) {
      return stepError(Errc::kInvalidArgument, id,
                       "working_dir '" + spec.working_dir.string() + "' is not a directory");
    }
  }

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return stepError(Errc::kIo, id, "cannot create output pipe: " + errnoText(errno));
  }
  Fd read_end(pipe_fds[0]);
  Fd write_end(pipe_fds[1]);
  // Only our end is non-blocking: the child should block when the pipe is full.
  const int fl = ::fcntl(read_end.get(), F_GETFL);
  if (fl < 0 || ::fcntl(read_end.get(), F_SETFL, fl | O_NONBLOCK) != 0) {
    return stepError(Errc::kIo, id, "cannot make output pipe non-blocking: " + errnoText(errno));
  }

  SpawnFileActions actions;
  SpawnAttr attr;
  if (!actions.ok() || !attr.ok()) {
    return stepError(Errc::kIo, id, "cannot initialise posix_spawn attributes");
  }
  // adddup2 clears FD_CLOEXEC on fds 1 and 2 in the child; closefrom drops every other fd we
  // (or a library that forgot O_CLOEXEC) hold.
  int rc = posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDOUT_FILENO);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDERR_FILENO);
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(actions.get(), STDERR_FILENO + 1);
  if (rc == 0 && !spec.working_dir.empty()) {
    rc = posix_spawn_file_actions_addchdir_np(actions.get(), spec.working_dir.c_str());
  }
  // New process group (so signals reach grandchildren); defaults for every signal and an empty
  // mask, so dispositions we set (e.g. SIGPIPE ignored) don't leak into the step. The
  // supervisor starts with its control signals blocked instead, so one we send before it has
  // set itself up waits for it rather than ending it by the default action (it gives the shell
  // an empty mask).
  const bool supervised = !spec.supervisor.empty();
  sigset_t child_mask, all_signals;
  sigemptyset(&child_mask);
  sigfillset(&all_signals);
  if (supervised) child_mask = stepSupervisorControlSignals();
  if (rc == 0) {
    rc = posix_spawnattr_setflags(
        attr.get(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  if (rc == 0) rc = posix_spawnattr_setpgroup(attr.get(), 0);
  if (rc == 0) rc = posix_spawnattr_setsigmask(attr.get(), &child_mask);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(attr.get(), &all_signals);
  if (rc != 0) {
    return stepError(Errc::kIo, id, "cannot set up posix_spawn: " + errnoText(rc));
  }

  std::vector<std::string> env = buildEnv(spec.extra_env);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args;
  if (supervised) {
    args = {std::string(kStepSupervisorArgv0), "--parent-pid", std::to_string(::getpid()), "--"};
  }
  args.insert(args.end(), {"/bin/sh", "-c", spec.command});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string executable = supervised ? spec.supervisor.string() : "/bin/sh";

  auto proc = std::unique_ptr<StepProcess>(new StepProcess());
  proc->started_ = Clock::now();
  pid_t pid = -1;
  // glibc's posix_spawn uses CLONE_VFORK and reports exec and file-action (chdir) failures as its
  // return value, having reaped the failed child itself.
  rc = ::posix_spawn(&pid, executable.c_str(), actions.get(), attr.get(), argv.data(),
                     envp.data());
  if (rc != 0) {
    return stepError(Errc::kIo, id, "cannot spawn " + executable + ": " + errnoText(rc));
  }
  write_end.reset();

  proc->pid_ = pid;
  proc->supervised_ = supervised;
  proc->pipe_fd_ = read_end.release();
  if (use_pidfd) {
    // Cannot race with pid reuse: the child is ours and not yet reaped. pidfds are O_CLOEXEC.
    proc->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (proc->pidfd_ < 0) proc->pidfd_ = -1;  // e.g. kernel < 5.3: waitid fallback
  }
  proc->step_id_ = spec.step_id;
  proc->tail_limit_ = spec.output_tail_bytes;
  proc->echo_ = spec.echo_output;
  proc->on_output_ = spec.on_output;
  proc->kill_grace_ = spec.kill_grace;
  proc->timeout_at_ = saturatingAdd(proc->started_, spec.timeout);
  proc->next_wait_check_ = proc->started_ + kFallbackWaitTick;
  return proc;
}

StepProcess::StepProcess(StepProcess&& other) noexcept { *this = std::move(other); }

StepProcess& StepProcess::operator=(StepProcess&& other) noexcept {
  if (this == &other) return *this;
  killAndReap();
  pid_ = std::exchange(other.pid_, -1);
  supervised_ = other.supervised_;
  reaped_ = std::exchange(other.reaped_, false);
  pipe_fd_ = std::exchange(other.pipe_fd_, -1);
  pidfd_ = std::exchange(other.pidfd_, -1);
  step_id_ = std::move(other.step_id_);
  tail_limit_ = other.tail_limit_;
  echo_ = other.echo_;
  on_output_ = std::move(other.on_output_);
  kill_grace_ = other.kill_grace_;
  started_ = other.started_;
  timeout_at_ = other.timeout_at_;
  kill_at_ = other.kill_at_;
  next_wait_check_ = other.next_wait_check_;
  timed_out_ = other.timed_out_;
  aborted_ = other.aborted_;
  tail_ = std::move(other.tail_);
  tail_cut_ = other.tail_cut_;
  echo_line_ = std::move(other.echo_line_);
  result_ = std::move(other.result_);
  return *this;
}

StepProcess::~StepProcess() { killAndReap(); }

void StepProcess::killAndReap() noexcept {
  if (pid_ > 0 && !reaped_) {
    signalStep(SIGKILL);
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED) != 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  closeFds();
}

void StepProcess::closeFds() noexcept {
  if (pipe_fd_ >= 0) ::close(pipe_fd_);
  if (pidfd_ >= 0) ::close(pidfd_);
  pipe_fd_ = -1;
  pidfd_ = -1;
}

std::vector<int> StepProcess::pollFds() const {
  std::vector<int> fds;
  if (result_) return fds;
  if (pipe_fd_ >= 0) fds.push_back(pipe_fd_);
  if (pidfd_ >= 0) fds.push_back(pidfd_);
  return fds;
}

Clock::time_point StepProcess::deadline() const {
  if (result_ || pid_ < 0) return Clock::time_point::max();
  Clock::time_point next = Clock::time_point::max();
  if (timed_out_) {
    next = kill_at_;
  } else if (!aborted_) {
    next = timeout_at_;
  }
  if (pidfd_ < 0) next = std::min(next, next_wait_check_);
  return next;
}

void StepProcess::signalStep(int sig) const {
  // Safe while the child is unreaped: its zombie keeps the pid (= pgid) from being reused.
  if (pid_ <= 0 || reaped_) return;
  if (supervised_) {
    ::kill(pid_, sig == SIGKILL ? kStepSupervisorKillSignal : sig);
  } else {
    ::kill(-pid_, sig);
  }
}

void StepProcess::abort() {
  if (result_ || pid_ < 0) return;
  aborted_ = true;
  signalStep(SIGKILL);
}

void StepProcess::drain(std::size_t max_bytes) {
  std::array<char, kReadChunk> buf;
  std::size_t total = 0;
  while (pipe_fd_ >= 0 && total < max_bytes) {
    const ssize_t n = ::read(pipe_fd_, buf.data(), buf.size());
    if (n > 0) {
      consume(buf.data(), static_cast<std::size_t>(n));
      total += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      // EOF (or an error we cannot recover from): stop polling the pipe; the exit still counts.
      ::close(pipe_fd_);
      pipe_fd_ = -1;
    }
  }
}

void StepProcess::consume(const char* data, std::size_t size) {
  if (echo_) echoLines(data, size);
  if (on_output_ && size > 0) on_output_(std::string_view(data, size));
  if (size == 0) return;
  if (size >= tail_limit_) {
    if (size > tail_limit_ || !tail_.empty()) tail_cut_ = true;
    tail_.assign(data + (size - tail_limit_), tail_limit_);
    return;
  }
  tail_.append(data, size);
  // Trim lazily: amortised O(1) per byte, and bounded by 2 * limit + one chunk.
  if (tail_.size() > 2 * tail_limit_) {
    tail_.erase(0, tail_.size() - tail_limit_);
    tail_cut_ = true;
  }
}

void StepProcess::echoLines(const char* data, std::size_t size) {
  std::string_view rest(data, size);
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::size_t room = kMaxEchoLine - echo_line_.size();
    if (nl != std::string_view::npos && nl <= room) {
      echo_line_.append(rest.substr(0, nl));
      flushEchoLine();
      rest.remove_prefix(nl + 1);
    } else {
      const std::size_t take = std::min(room, rest.size());
      echo_line_.append(rest.substr(0, take));
      rest.remove_prefix(take);
      if (echo_line_.size() >= kMaxEchoLine) flushEchoLine();
    }
  }
}

void StepProcess::flushEchoLine() {
  // With --log-format json the echo is a log record too, so stderr stays one object per line.
  if (td::log::jsonFormat()) {
    writeStderr(td::log::jsonLine(std::chrono::system_clock::now(), "info", "step",
                                  "[" + step_id_ + "] " + echo_line_));
  } else {
    writeStderr("[" + step_id_ + "] " + echo_line_ + "\n");
  }
  echo_line_.clear();
}

std::optional<RunResult> StepProcess::service() {
  if (result_) return result_;
  if (pid_ < 0) return std::nullopt;

  drain(kMaxReadPerService);

  // WNOWAIT: learn about the exit but leave the zombie, so killing the group below cannot hit a
  // recycled pid.
  siginfo_t info{};
  bool exited = false;
  bool lost = false;  // already reaped by someone else (e.g. SIGCHLD ignored)
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0) {
    exited = info.si_pid == pid_;
  } else if (errno == ECHILD) {
    exited = true;
    lost = true;
  }

  const auto now = Clock::now();
  if (!exited) {
    if (!timed_out_ && !aborted_ && now >= timeout_at_) {
      timed_out_ = true;
      signalStep(SIGTERM);
      kill_at_ = saturatingAdd(now, kill_grace_);
    }
    if (timed_out_ && now >= kill_at_) {
      signalStep(SIGKILL);
      kill_at_ = Clock::time_point::max();
    }
    next_wait_check_ = now + kFallbackWaitTick;
    return std::nullopt;
  }

  // The main child is gone: anything left in its group is orphaned work (or holds our pipe).
  // Kill it, take what is already in the pipe, and don't wait for EOF. (A supervisor exits only
  // once its tree is gone, so there is nothing left to kill.)
  if (!lost && !supervised_) signalStep(SIGKILL);
  drain(kMaxReadPerService);
  if (!lost) {
    siginfo_t reaped{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &reaped, WEXITED) != 0 && errno == EINTR) {
    }
  }
  reaped_ = true;
  closeFds();
  if (echo_ && !echo_line_.empty()) flushEchoLine();

  RunResult r;
  r.duration = std::chrono::duration_cast<milliseconds>(now - started_);
  if (lost) {
    r.exit_code = -1;
    r.signal = 0;
  } else if (info.si_code == CLD_EXITED) {
    r.exit_code = info.si_status;
    r.signal = 0;
  } else {
    r.exit_code = -1;
    r.signal = info.si_status;
  }
  if (aborted_) {
    r.outcome = RunOutcome::kAborted;
  } else if (timed_out_) {
    r.outcome = RunOutcome::kTimedOut;
  } else if (!lost && r.signal == 0 && r.exit_code == 0) {
    r.outcome = RunOutcome::kSucceeded;
  } else {
    r.outcome = RunOutcome::kFailed;
  }

  if (tail_.size() > tail_limit_) {
    tail_.erase(0, tail_.size() - tail_limit_);
    tail_cut_ = true;
  }
  std::string_view tail(tail_);
  // Drop the rest of a character whose first bytes were trimmed away.
  for (int k = 0; k < 3 && tail_cut_ && !tail.empty() &&
                  isContinuation(static_cast<unsigned char>(tail.front()));
       ++k) {
    tail.remove_prefix(1);
  }
  r.output_tail = sanitizeUtf8(tail);
  tail_.clear();
  tail_.shrink_to_fit();
  result_ = std::move(r);
  return result_;
}

td::Result<RunResult> runToCompletion(const StepSpecToRun& spec) {
  return runToCompletion(spec, -1, {});
}

td::Result<RunResult> runToCompletion(const StepSpecToRun& spec, int wake_fd,
                                      const std::function<bool()>& interrupted) {
  auto started = StepProcess::start(spec);
  if (!started) return td::unexpected(started.error());
  StepProcess& proc = **started;
  std::vector<pollfd> pfds;
  while (true) {
    if (interrupted && interrupted()) proc.abort();
    if (auto result = proc.service()) return *result;
    pfds.clear();
    if (wake_fd >= 0) pfds.push_back(pollfd{wake_fd, POLLIN, 0});
    for (int fd : proc.pollFds()) pfds.push_back(pollfd{fd, POLLIN, 0});
    int timeout_ms = -1;
    const auto deadline = proc.deadline();
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
    }
    if (::poll(pfds.data(), pfds.size(), timeout_ms) < 0 && errno != EINTR) {
      return makeError(Errc::kIo, "step '" + spec.step_id + "': poll failed: " + errnoText(errno));
    }
  }
}

}  // namespace td::worker
