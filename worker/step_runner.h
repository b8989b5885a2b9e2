// Runs one assigned step as a child process (`/bin/sh -c <command>`), without blocking,
// optionally under the per-step supervisor (worker/step_supervisor.h).
//
// Built for the worker's single-threaded poll(2) event loop: a StepProcess exposes the fds to
// poll on and the time by which it must be serviced, and service() never blocks. Linux only
// (pidfd_open, posix_spawn with glibc extensions).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace td::worker {

// What to run. Plain data, validated by StepProcess::start().
struct StepSpecToRun {
  std::string step_id;  // used only for the "[step_id] " echo prefix
  std::string command;  // run as: /bin/sh -c <command>
  // The executable that holds the step supervisor (worker/step_supervisor.h): td-worker uses
  // "/proc/self/exe", i.e. itself. When set, the child is the supervisor, run as
  // `td-step-supervisor --parent-pid <our pid> -- /bin/sh -c <command>`, and no process of the
  // step (not even one that left with setsid or a double fork) outlives the step or us, even
  // when we are SIGKILLed. Empty (the default) = spawn /bin/sh directly, as unit tests and
  // runToCompletion callers may: then processes that leave the shell's group, and the whole
  // group if we die, escape.
  std::filesystem::path supervisor;
  // Wall time allowed from start; must be > 0. On expiry the whole process group gets SIGTERM,
  // then SIGKILL after `kill_grace` (supervised: the supervisor forwards the SIGTERM to the
  // shell's group and every orphan it adopted, and the SIGKILL kills the whole tree).
  std::chrono::milliseconds timeout{0};
  // Time between the timeout's SIGTERM and the SIGKILL that follows (default 2 s; 0 = SIGKILL
  // right after SIGTERM).
  std::chrono::milliseconds kill_grace{2000};
  std::filesystem::path working_dir;  // empty = inherit ours
  // Added to (overriding same-named) variables of our environment, e.g. TD_GROUP_ID,
  // TD_STEP_ID, TD_ATTEMPT, TD_PEER_ID, TD_SCHEMA. Names must be non-empty without '='.
  std::vector<std::pair<std::string, std::string>> extra_env;
  std::size_t output_tail_bytes = 4096;  // how much of the combined output RunResult keeps
  // Also copy the child's output to our stderr, each line prefixed with "[step_id] ". Lines are
  // written whole with one write(2) (lines over 4 KiB are split); a blocked stderr blocks us.
  bool echo_output = false;
  // Called with every piece of the child's output as it is read (raw bytes, stdout and stderr
  // combined, in order), from inside service(). Must not block: td-worker ships it to td.logs.
  std::function<void(std::string_view)> on_output;
};

enum class RunOutcome {
  kSucceeded,  // exited with status 0
  kFailed,     // exited non-zero, or was killed by a signal we did not send
  kTimedOut,   // we killed it because `timeout` expired (whatever its exit status)
  kAborted,    // abort() was called before the result was produced (wins over the others)
};

struct RunResult {
  RunOutcome outcome = RunOutcome::kFailed;
  int exit_code = -1;                     // -1 if killed by a signal
  int signal = 0;                         // the terminating signal; 0 if none
  std::chrono::milliseconds duration{0};  // start to observed exit of the main child
  // The last `output_tail_bytes` of stdout+stderr combined, made valid UTF-8: a character cut by
  // the trim is dropped, and each maximal invalid sequence becomes U+FFFD (so the string may be
  // up to 2 bytes per invalid byte longer than `output_tail_bytes`).
  std::string output_tail;
};

// One running step. The child leads a new process group (stdin = /dev/null, stdout and stderr
// into one pipe, default signal dispositions, empty signal mask, no fds inherited but 0-2).
//
// Lifecycle: start() -> [poll on pollFds() until deadline()] -> service() ... until it returns
// a result. When the main child exits, the runner SIGKILLs the rest of its process group (while
// the zombie still pins the group id), drains what is already in the pipe and completes without
// waiting for EOF, so a grandchild holding the pipe cannot hang it. Unsupervised, processes
// that leave the group (setsid, setpgid) escape all of this, and so does everything if we die.
//
// Supervised (StepSpecToRun::supervisor set), the child is the supervisor and the shell its
// child, in a group of its own. The semantics above are kept, for the whole tree: the
// supervisor kills every remaining descendant when the shell exits and only then exits itself,
// with the shell's wait status (same exit code or signal), so "main child exited" means "the
// step's tree is gone". Signals go to the supervisor instead of a group: SIGTERM for the
// timeout, kStepSupervisorKillSignal for abort(), the SIGKILL escalation and destruction. The
// supervisor is spawned with those signals blocked (it waits for them with sigwaitinfo), so
// even an abort() right after start() ends in a killed shell and signal SIGKILL.
// If we die by any signal, the kernel sends the supervisor its parent-death signal and it
// kills the tree within milliseconds.
//
// Exit detection uses a pidfd (pidfd_open, Linux >= 5.3). If that fails, it falls back to
// waitid(WNOHANG) on every service(), and deadline() is then at most 20 ms away, so a loop that
// honours deadline() still notices the exit promptly.
//
// REQUIRES: SIGCHLD is not ignored (SIG_IGN auto-reaps children; the step would then report
// kFailed with exit_code -1), and nobody else reaps our child (waitpid(-1), other libraries).
// Supervised: start() is called on a thread that outlives the step (the parent-death signal
// fires when the spawning thread exits; td-worker runs steps from its main thread).
//
// Thread safety: none; owned and used by one thread (the worker's event loop). Move-only.
// Destruction while the step runs SIGKILLs its process group (supervised: the whole tree, through
// the supervisor) and reaps the child (blocking only for as long as the kernel takes to kill
// it); all fds it opened are closed.
class StepProcess {
 public:
  // Validates `spec`, then spawns the child with posix_spawn (safe in a multithreaded process).
  // Errors: Errc::kInvalidArgument (timeout <= 0, bad env name, working_dir not a directory),
  // Errc::kNotFound (working_dir does not exist), Errc::kIo (pipe, /dev/null, spawn or chdir
  // failure, also of the supervisor executable; the message carries strerror). A supervisor
  // that cannot spawn /bin/sh is a step that exits 127 with the reason in its output. Keeps
  // no reference to `spec`.
  static td::Result<std::unique_ptr<StepProcess>> start(const StepSpecToRun& spec);

  // As start(), but never uses a pidfd: exercises the waitid fallback in tests.
  static td::Result<std::unique_ptr<StepProcess>> startWithoutPidfdForTest(
      const StepSpecToRun& spec);

  StepProcess(StepProcess&& other) noexcept;
  StepProcess& operator=(StepProcess&& other) noexcept;
  StepProcess(const StepProcess&) = delete;
  StepProcess& operator=(const StepProcess&) = delete;
  ~StepProcess();

  // The fds to wait on for readability (POLLIN; POLLHUP/POLLERR count too): the output pipe
  // while open and the pidfd until the child is reaped. Shrinks as they close; empty once done.
  // The fds stay owned by this object; don't read or close them.
  std::vector<int> pollFds() const;

  // The time by which service() must next be called even if no fd is ready: the step's timeout
  // until it fires, then the SIGKILL escalation after `kill_grace`; with the waitid fallback, no
  // more than 20 ms ahead. time_point::max() once the result is ready.
  std::chrono::steady_clock::time_point deadline() const;

  // Non-blocking. Drains available output (up to 1 MiB per call, so a chatty step can't starve
  // the loop), enforces the timeout, and, once the main child has exited, kills its group,
  // drains the pipe, reaps and returns the result. Returns nullopt while running; after that, the
  // same result on every call.
  std::optional<RunResult> service();

  // SIGKILLs the whole process group now (supervised: the whole tree, through the
  // supervisor). The result, once service() produces it, has outcome kAborted. No-op once the
  // result has been produced.
  void abort();

  // The child's pid (also its process group id; supervised, the supervisor's); -1 for a
  // moved-from object.
  pid_t pid() const { return pid_; }

 private:
  StepProcess() = default;
  static td::Result<std::unique_ptr<StepProcess>> startImpl(const StepSpecToRun& spec,
                                                            bool use_pidfd);
  // Reads what is available, at most `max_bytes`; closes the pipe on EOF.
  void drain(std::size_t max_bytes);
  void consume(const char* data, std::size_t size);
  void echoLines(const char* data, std::size_t size);
  void flushEchoLine();
  // Sends `sig` (SIGTERM or SIGKILL) to the step while the child is unreaped: unsupervised to
  // its process group; supervised to the supervisor (SIGKILL becomes
  // kStepSupervisorKillSignal, so the supervisor can kill the tree before it exits).
  void signalStep(int sig) const;
  // SIGKILLs the group and reaps the child if it has not been reaped; closes the fds.
  void killAndReap() noexcept;
  void closeFds() noexcept;

  pid_t pid_ = -1;
  bool supervised_ = false;
  bool reaped_ = false;
  int pipe_fd_ = -1;  // read end, O_NONBLOCK | O_CLOEXEC
  int pidfd_ = -1;    // -1 in the waitid fallback
  std::string step_id_;
  std::size_t tail_limit_ = 0;
  bool echo_ = false;
  std::function<void(std::string_view)> on_output_;
  std::chrono::milliseconds kill_grace_{0};
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point timeout_at_;
  std::chrono::steady_clock::time_point kill_at_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point next_wait_check_;  // fallback mode only
  bool timed_out_ = false;
  bool aborted_ = false;
  std::string tail_;       // trimmed lazily to tail_limit_ (bounded by 2x + one read)
  bool tail_cut_ = false;  // bytes were dropped from the front of tail_
  std::string echo_line_;  // partial line awaiting '\n' when echo_ is on
  std::optional<RunResult> result_;
};

// Starts `spec` and loops poll(2) + service() until it completes. Blocks the calling thread; for
// tests and simple callers. Errors: those of start(), or Errc::kIo if poll(2) fails (the step is
// then killed).
td::Result<RunResult> runToCompletion(const StepSpecToRun& spec);
// The same, also waking when `wake_fd` (if >= 0) is readable, and aborting the step (outcome
// kAborted) as soon as `interrupted` (if set) returns true: for a caller that must stay
// responsive to signals, e.g. through a self-pipe. The loop never reads `wake_fd`.
td::Result<RunResult> runToCompletion(const StepSpecToRun& spec, int wake_fd,
                                      const std::function<bool()>& interrupted);

}  // namespace td::worker
