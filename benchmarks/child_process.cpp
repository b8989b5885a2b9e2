#include "benchmarks/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

extern char** environ;

namespace td::bench {

namespace {
td::Error ioError(const std::string& what, int err) {
  return td::Error(td::Errc::kIo, what + ": " + std::strerror(err));
}

// Children not reaped yet, for the termination handler (0: a free slot). Lock-free atomics, so
// the handler may read them.
std::array<std::atomic<pid_t>, 1024> g_live{};
static_assert(std::atomic<pid_t>::is_always_lock_free);

void track(pid_t pid) {
  for (auto& slot : g_live) {
    pid_t free = 0;
    if (slot.compare_exchange_strong(free, pid)) return;
  }
}

void untrack(pid_t pid) {
  for (auto& slot : g_live) {
    pid_t mine = pid;
    if (slot.compare_exchange_strong(mine, 0)) return;
  }
}

extern "C" void onTermination(int signal_number) {
  for (auto& slot : g_live) {
    const pid_t pid = slot.load();
    if (pid > 0) ::kill(pid, SIGTERM);
  }
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}
}  // namespace

void stopChildrenOnTermination() {
  struct sigaction action {};
  action.sa_handler = onTermination;
  ::sigemptyset(&action.sa_mask);
  for (int signal_number : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(signal_number, &action, nullptr);
}

td::Result<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const std::vector<std::string>& args,
                                                              const std::filesystem::path& output) {
  if (args.empty()) return makeError(td::Errc::kInvalidArgument, "spawn: no program");
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return td::unexpected(ioError("spawn " + args[0], rc));

  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return td::unexpected(ioError("pidfd_open", err));
  }
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  track(pid);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, pidfd, output));
}

ChildProcess::~ChildProcess() {
  if (!exit_code_) stop();
  ::close(pidfd_);
}

std::optional<int> ChildProcess::waitFor(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  pollfd fd{pidfd_, POLLIN, 0};
  const int ready = ::poll(&fd, 1, static_cast<int>(std::max<std::int64_t>(timeout.count(), 0)));
  if (ready <= 0) return std::nullopt;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
  untrack(pid_);
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

int ChildProcess::stop() {
  if (exit_code_) return *exit_code_;
  ::kill(pid_, SIGTERM);
  if (auto code = waitFor(kStopGrace)) return *code;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  untrack(pid_);
  exit_code_ = 128 + SIGKILL;
  return *exit_code_;
}

std::string ChildProcess::outputTail(std::size_t bytes) const {
  std::ifstream in(output_, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const std::streamoff size = in.tellg();
  const std::streamoff start = size > static_cast<std::streamoff>(bytes) ? size - bytes : 0;
  in.seekg(start);
  std::string tail(static_cast<std::size_t>(size - start), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  return tail;
}

td::Result<std::unique_ptr<ScratchDir>> ScratchDir::create(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      (std::filesystem::path(tmp != nullptr && *tmp ? tmp : "/tmp") / (prefix + ".XXXXXX"))
          .string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return td::unexpected(ioError("mkdtemp " + pattern, errno));
  }
  return std::unique_ptr<ScratchDir>(new ScratchDir(pattern));
}

ScratchDir::~ScratchDir() {
  if (keep_) return;
  std::error_code ignored;  // best effort: a leftover temp directory is harmless
  std::filesystem::remove_all(path_, ignored);
}

td::Result<std::filesystem::path> ScratchDir::writeFile(const std::string& name,
                                                        const std::string& content) const {
  const auto file = path_ / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return makeError(td::Errc::kIo, "cannot write " + file.string());
  return file;
}

}  // namespace td::bench
