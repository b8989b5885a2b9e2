#include "worker/step_supervisor.h"

#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace td::worker {

namespace {

// Re-scan for children at least this often while killing, in case /proc missed one.
constexpr long kRescanNanos = 50L * 1000 * 1000;

void say(const std::string& what) {
  const std::string line = std::string(kStepSupervisorArgv0) + ": " + what + "\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

// Our children (alive or zombie). /proc/self/task/<tid>/children where the kernel has it
// (CONFIG_PROC_CHILDREN) unless `scan_proc`; otherwise every /proc/<pid>/stat whose ppid is us.
// Either may miss a child created or reparented while we read; callers loop until waitpid
// says ECHILD. (We are single-threaded, so our main thread's list is all of them.)
std::vector<pid_t> children(bool scan_proc = false) {
  const pid_t self = ::getpid();
  std::vector<pid_t> out;
  std::ifstream list;
  if (!scan_proc) list.open("/proc/self/task/" + std::to_string(self) + "/children");
  if (list.is_open()) {
    for (long pid = 0; list >> pid;) out.push_back(static_cast<pid_t>(pid));
    return out;
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "pid (comm) state ppid ..."; comm may contain spaces and ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    long ppid = 0;
    if (rest >> state >> ppid && ppid == self) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

class Supervisor {
 public:
  // Spawns `program`; false (after saying why) if it could not.
  bool spawn(char** program);
  // The wait loop (steps 3-6 of the header); returns main()'s exit code or raises the signal.
  int run();

 private:
  // Sends `sig` to the program's group (while it is unreaped, so the id cannot be reused), to
  // every child and to the process group each child leads (children are ours until we reap
  // them, so their ids cannot be reused either).
  void signalTree(int sig) const;
  // Reaps exited children other than the program; true once the program has exited (it is
  // left unreaped, pinning its group id).
  bool reapUntilProgramExits();
  // SIGKILLs and reaps until no child is left; records the program's status.
  void killTree();
  int exitLikeProgram() const;

  pid_t program_ = -1;
  bool program_reaped_ = false;
  int program_status_ = 0;
};

bool Supervisor::spawn(char** program) {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  if (posix_spawnattr_init(&attr) != 0) return false;
  if (posix_spawn_file_actions_init(&actions) != 0) {
    posix_spawnattr_destroy(&attr);
    return false;
  }
  sigset_t empty_mask, all_signals;
  sigemptyset(&empty_mask);
  sigfillset(&all_signals);
  // A new process group, defaults for every signal and an empty mask (we block and ignore
  // some ourselves), and no fd beyond 0-2.
  int rc = posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (rc == 0) rc = posix_spawnattr_setpgroup(&attr, 0);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &empty_mask);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all_signals);
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  if (rc == 0) rc = ::posix_spawn(&program_, program[0], &actions, &attr, program, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    say(std::string("cannot run ") + program[0] + ": " + std::strerror(rc));
    return false;
  }
  return true;
}

void Supervisor::signalTree(int sig) const {
  if (!program_reaped_) ::kill(-program_, sig);
  for (pid_t child : children()) {
    // The program already had it through its group; don't send a trapped SIGTERM twice.
    if (child == program_ && !program_reaped_ && sig != SIGKILL) continue;
    // A child that leads a group (setsid'd, a job of a nested interactive shell): the signal
    // reaches it through its group, together with the group's other members.
    if (child != program_ && ::getpgid(child) == child) {
      ::kill(-child, sig);
    } else {
      ::kill(child, sig);
    }
  }
}

bool Supervisor::reapUntilProgramExits() {
  while (true) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (info.si_pid == 0) return false;
    if (info.si_pid == program_) return true;
    int status = 0;
    while (::waitpid(info.si_pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void Supervisor::killTree() {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  while (true) {
    signalTree(SIGKILL);
    while (true) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid > 0) {
        if (pid == program_) {
          program_status_ = status;
          program_reaped_ = true;
        }
        continue;
      }
      if (pid < 0 && errno == EINTR) continue;
      if (pid < 0) return;  // ECHILD: nothing of the tree is left
      break;                // children remain: killed ones are dying, orphans may come
    }
    const timespec rescan{0, kRescanNanos};
    ::sigtimedwait(&chld, nullptr, &rescan);
  }
}

int Supervisor::exitLikeProgram() const {
  if (WIFEXITED(program_status_)) return WEXITSTATUS(program_status_);
  const int sig = WTERMSIG(program_status_);
  // The same signal for whoever waits for us, without a core file of the supervisor.
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  return 128 + sig;  // only if the signal did not end us
}

int Supervisor::run() {
  const sigset_t control = stepSupervisorControlSignals();
  while (true) {
    siginfo_t info{};
    const int sig = ::sigwaitinfo(&control, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      say(std::string("sigwaitinfo failed: ") + std::strerror(errno) + "; killing the step");
      killTree();
      return exitLikeProgram();
    }
    if (sig == SIGCHLD) {
      if (!reapUntilProgramExits()) continue;
      // The program is done: whatever it left behind is orphaned work.
      killTree();
      return exitLikeProgram();
    }
    if (sig == SIGTERM) {
      signalTree(SIGTERM);
      continue;
    }
    // kStepSupervisorKillSignal (abort, escalation, parent death), SIGINT, SIGHUP, SIGQUIT.
    killTree();
    return exitLikeProgram();
  }
}

}  // namespace

sigset_t stepSupervisorControlSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, kStepSupervisorKillSignal}) {
    sigaddset(&set, sig);
  }
  return set;
}

std::vector<pid_t> childrenOfSelfForTest(bool scan_proc) { return children(scan_proc); }

bool isStepSupervisorInvocation(int argc, char** argv) {
  return argc > 0 && argv[0] != nullptr && std::string_view(argv[0]) == kStepSupervisorArgv0;
}

int stepSupervisorMain(int argc, char** argv) {
  // First, so a control signal sent early stays pending instead of ending us (the spawner
  // should already have blocked them; see the header).
  const sigset_t control = stepSupervisorControlSignals();
  ::sigprocmask(SIG_BLOCK, &control, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // our own messages to a closed pipe must not end us

  long parent = -1;
  int i = 1;
  if (i + 1 < argc && std::string_view(argv[i]) == "--parent-pid") {
    char* end = nullptr;
    errno = 0;
    parent = std::strtol(argv[i + 1], &end, 10);
    if (errno != 0 || end == argv[i + 1] || *end != '\0' || parent <= 0) parent = -1;
    i += 2;
  }
  if (parent <= 0 || i >= argc || std::string_view(argv[i]) != "--" || i + 1 >= argc) {
    say("internal mode of td-worker; usage: td-step-supervisor --parent-pid PID -- PROGRAM "
        "[ARGS...]");
    return kSupervisorUsage;
  }
  char** program = argv + i + 1;

  ::prctl(PR_SET_NAME, "td-supervisor", 0, 0, 0);  // instead of "exe" in ps and top
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    say(std::string("cannot become a child subreaper: ") + std::strerror(errno));
    return kSupervisorSpawnFailed;
  }
  if (::prctl(PR_SET_PDEATHSIG, kStepSupervisorKillSignal, 0, 0, 0) != 0) {
    say(std::string("cannot set a parent-death signal: ") + std::strerror(errno));
    return kSupervisorSpawnFailed;
  }
  // The parent may have died before the prctl: then nobody wants the step any more.
  if (::getppid() != static_cast<pid_t>(parent)) return kSupervisorParentGone;

  Supervisor supervisor;
  if (!supervisor.spawn(program)) return kSupervisorSpawnFailed;
  return supervisor.run();
}

}  // namespace td::worker
