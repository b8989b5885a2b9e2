// StepProcess / runToCompletion against real child processes. Waits poll with deadlines.
// StepRunnerTest.* run twice: with /bin/sh spawned directly (Direct/) and under the step
// supervisor (Supervised/, TD_TEST_STEP_SUPERVISOR: what td-worker runs as
// td-step-supervisor), since the supervisor must not change any of it. SupervisorTest.* are
// what only the supervisor does: nothing of a step survives, whatever left the process group.
#include "worker/step_runner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "common/log.h"
#include "worker/step_supervisor.h"

namespace td::worker {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

const std::string kFffd = "\xEF\xBF\xBD";

StepSpecToRun baseSpec(std::string command, std::chrono::milliseconds timeout = 10s) {
  StepSpecToRun spec;
  spec.step_id = "s1";
  spec.command = std::move(command);
  spec.timeout = timeout;
  return spec;
}

// Polls `pred` until it holds or `timeout` passes; returns its last value.
bool waitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// One iteration of an event loop: poll the step's fds until its deadline (capped by `cap`),
// then service it.
std::optional<RunResult> pollOnce(StepProcess& proc, std::chrono::milliseconds cap) {
  std::vector<pollfd> pfds;
  for (int fd : proc.pollFds()) pfds.push_back(pollfd{fd, POLLIN, 0});
  auto wait = cap;
  if (proc.deadline() != Clock::time_point::max()) {
    wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(proc.deadline() - Clock::now()),
                      0ms, cap);
  }
  ::poll(pfds.data(), pfds.size(), static_cast<int>(wait.count()));
  return proc.service();
}

// Drives `proc` like the worker's event loop would, for at most `timeout`.
std::optional<RunResult> driveToCompletion(StepProcess& proc, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (auto r = pollOnce(proc, 50ms)) return r;
  }
  return std::nullopt;
}

// True once `pid` no longer exists or is a zombie (PID 1 in a container may never reap it).
bool isGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Parameter: run the step under the supervisor.
class StepRunnerTest : public ::testing::TestWithParam<bool> {
 protected:
  StepSpecToRun makeSpec(std::string command, std::chrono::milliseconds timeout = 10s) const {
    StepSpecToRun spec = baseSpec(std::move(command), timeout);
    if (GetParam()) spec.supervisor = TD_TEST_STEP_SUPERVISOR;
    return spec;
  }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "td_step_runner_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Waits for the shell to write a pid plus newline into `path`; returns it or -1.
  pid_t waitForPidFile(const fs::path& path, StepProcess* proc = nullptr) {
    pid_t pid = -1;
    waitUntil(
        [&] {
          if (proc != nullptr) (void)proc->service();  // keep the step's pipe drained
          const std::string text = readFile(path);
          if (text.empty() || text.back() != '\n') return false;
          pid = static_cast<pid_t>(std::stol(text));
          return true;
        },
        5s);
    return pid;
  }

  fs::path dir_;
};

TEST_P(StepRunnerTest, ExitZeroSucceedsWithMergedOutput) {
  auto r = runToCompletion(makeSpec("echo out; echo err >&2"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->signal, 0);
  EXPECT_EQ(r->output_tail, "out\nerr\n");
}

TEST_P(StepRunnerTest, NonZeroExitFails) {
  auto r = runToCompletion(makeSpec("exit 3"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kFailed);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->signal, 0);
}

TEST_P(StepRunnerTest, KilledBySignalFails) {
  auto r = runToCompletion(makeSpec("kill -9 $$"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kFailed);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->signal, SIGKILL);
}

TEST_P(StepRunnerTest, StdinIsDevNull) {
  auto r = runToCompletion(makeSpec("cat; echo eof", 5s));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(r->output_tail, "eof\n");
}

TEST_P(StepRunnerTest, ExtraEnvIsVisibleAndOverridesInherited) {
  ASSERT_EQ(::setenv("TD_RUNNER_TEST_VAR", "inherited", 1), 0);
  ASSERT_EQ(::setenv("TD_RUNNER_TEST_KEEP", "kept", 1), 0);
  auto spec = makeSpec(
      "printf '%s|%s|%s|' \"$TD_RUNNER_TEST_VAR\" \"$TD_RUNNER_TEST_KEEP\" \"$TD_STEP_ID\"; "
      "env | grep -c '^TD_RUNNER_TEST_VAR='");
  spec.extra_env = {{"TD_RUNNER_TEST_VAR", "overridden"}, {"TD_STEP_ID", "step-7"}};
  auto r = runToCompletion(spec);
  ::unsetenv("TD_RUNNER_TEST_VAR");
  ::unsetenv("TD_RUNNER_TEST_KEEP");
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->output_tail, "overridden|kept|step-7|1\n");
}

TEST_P(StepRunnerTest, WorkingDirIsRespected) {
  auto spec = makeSpec("pwd -P");
  spec.working_dir = dir_;
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->output_tail, fs::canonical(dir_).string() + "\n");
}

TEST_P(StepRunnerTest, MissingOrNonDirectoryWorkingDirIsAnError) {
  auto spec = makeSpec("true");
  spec.working_dir = dir_ / "does-not-exist";
  auto missing = StepProcess::start(spec);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Errc::kNotFound);
  EXPECT_NE(missing.error().message().find("does-not-exist"), std::string::npos);

  spec.working_dir = dir_ / "file";
  std::ofstream(spec.working_dir) << "x";
  auto not_dir = StepProcess::start(spec);
  ASSERT_FALSE(not_dir.has_value());
  EXPECT_EQ(not_dir.error().code(), Errc::kInvalidArgument);
  EXPECT_NE(not_dir.error().message().find("not a directory"), std::string::npos);
}

TEST_P(StepRunnerTest, InvalidSpecIsAnError) {
  auto zero_timeout = runToCompletion(makeSpec("true", 0ms));
  ASSERT_FALSE(zero_timeout.has_value());
  EXPECT_EQ(zero_timeout.error().code(), Errc::kInvalidArgument);

  auto spec = makeSpec("true");
  spec.extra_env = {{"A=B", "c"}};
  auto bad_env = runToCompletion(spec);
  ASSERT_FALSE(bad_env.has_value());
  EXPECT_EQ(bad_env.error().code(), Errc::kInvalidArgument);
}

TEST_P(StepRunnerTest, LargeOutputKeepsOnlyTheTail) {
  auto spec = makeSpec("head -c 1000000 /dev/zero | tr '\\0' a; printf END", 8s);
  spec.output_tail_bytes = 100;
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kSucceeded);
  ASSERT_EQ(r->output_tail.size(), 100u);
  EXPECT_EQ(r->output_tail, std::string(97, 'a') + "END");
  EXPECT_LT(r->duration, 5s);
}

TEST_P(StepRunnerTest, InvalidUtf8IsReplaced) {
  // ff: never valid; e2 82 ac: the euro sign; ed a0 80: a surrogate (3 bad bytes);
  // trailing e2 82: one truncated character.
  auto r = runToCompletion(makeSpec("printf 'ok\\377x\\342\\202\\254\\355\\240\\200\\342\\202'"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->output_tail, "ok" + kFffd + "x\xE2\x82\xAC" + kFffd + kFffd + kFffd + kFffd);
}

TEST_P(StepRunnerTest, TailCutDropsPartialCharacter) {
  auto spec = makeSpec("printf '\\342\\202\\254\\342\\202\\254'");  // two euro signs
  spec.output_tail_bytes = 4;
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->output_tail, "\xE2\x82\xAC");
}

TEST_P(StepRunnerTest, TimeoutKillsTheWholeGroup) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  auto spec = makeSpec("sleep 100 & echo $! > '" + pid_file.string() + "'; sleep 30", 300ms);
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kTimedOut);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_NE(r->signal, 0);
  EXPECT_GE(r->duration, 300ms);
  EXPECT_LT(r->duration, 2000ms);
  const pid_t grandchild = waitForPidFile(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(waitUntil([&] { return isGone(grandchild); }, 2s));
}

TEST_P(StepRunnerTest, TimeoutEscalatesToSigkillAfterGrace) {
  // An ignored SIGTERM is inherited by sleep, so only the SIGKILL ends the step.
  auto spec = makeSpec("trap '' TERM; sleep 30", 200ms);
  spec.kill_grace = 200ms;
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kTimedOut);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_GE(r->duration, 400ms);
  EXPECT_LT(r->duration, 2500ms);
}

TEST_P(StepRunnerTest, AbortKillsTheWholeGroup) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  auto proc =
      StepProcess::start(makeSpec("sleep 100 & echo $! > '" + pid_file.string() + "'; sleep 30"));
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  const pid_t grandchild = waitForPidFile(pid_file, proc->get());
  ASSERT_GT(grandchild, 0);
  (*proc)->abort();
  auto r = driveToCompletion(**proc, 3s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, RunOutcome::kAborted);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_TRUE(waitUntil([&] { return isGone(grandchild); }, 2s));
}

TEST_P(StepRunnerTest, GrandchildHoldingThePipeDoesNotHang) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  auto spec = makeSpec("sleep 100 & echo $! > '" + pid_file.string() + "'; echo done", 20s);
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(r->output_tail, "done\n");
  EXPECT_LT(r->duration, 2s);
  const pid_t grandchild = waitForPidFile(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(waitUntil([&] { return isGone(grandchild); }, 2s));
}

TEST_P(StepRunnerTest, PollContractAndRepeatedService) {
  auto spec = makeSpec("echo hi", 10s);
  const auto before = Clock::now();
  auto proc = StepProcess::start(spec);
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  StepProcess& p = **proc;
  EXPECT_GT(p.pid(), 0);
  EXPECT_EQ(p.pollFds().size(), 2u);  // pipe + pidfd
  EXPECT_GE(p.deadline(), before + 10s);
  EXPECT_LE(p.deadline(), Clock::now() + 10s);
  auto r = driveToCompletion(p, 5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->output_tail, "hi\n");
  EXPECT_TRUE(p.pollFds().empty());
  EXPECT_EQ(p.deadline(), Clock::time_point::max());
  auto again = p.service();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->output_tail, "hi\n");
  p.abort();  // no-op once done
  EXPECT_EQ(p.service()->outcome, RunOutcome::kSucceeded);
}

TEST_P(StepRunnerTest, WaitidFallbackWithoutPidfd) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  auto proc = StepProcess::startWithoutPidfdForTest(
      makeSpec("sleep 100 & echo $! > '" + pid_file.string() + "'; exit 3"));
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  EXPECT_EQ((*proc)->pollFds().size(), 1u);  // pipe only
  EXPECT_LE((*proc)->deadline(), Clock::now() + 100ms);
  auto r = driveToCompletion(**proc, 3s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, RunOutcome::kFailed);
  EXPECT_EQ(r->exit_code, 3);
  const pid_t grandchild = waitForPidFile(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(waitUntil([&] { return isGone(grandchild); }, 2s));
}

TEST_P(StepRunnerTest, DestructorKillsAndReaps) {
  const fs::path pid_file = dir_ / "grandchild.pid";
  auto proc =
      StepProcess::start(makeSpec("sleep 100 & echo $! > '" + pid_file.string() + "'; sleep 30"));
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  const pid_t grandchild = waitForPidFile(pid_file, proc->get());
  ASSERT_GT(grandchild, 0);
  const pid_t child = (*proc)->pid();
  proc->reset();
  EXPECT_TRUE(isGone(child));  // reaped synchronously
  EXPECT_TRUE(waitUntil([&] { return isGone(grandchild); }, 2s));
}

TEST_P(StepRunnerTest, MovedProcessKeepsRunning) {
  auto proc = StepProcess::start(makeSpec("echo moved"));
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  StepProcess moved(std::move(**proc));
  EXPECT_EQ((*proc)->pid(), -1);
  EXPECT_TRUE((*proc)->pollFds().empty());
  auto r = driveToCompletion(moved, 5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->output_tail, "moved\n");
}

TEST_P(StepRunnerTest, ClosesEveryFdItOpens) {
  auto countFds = [] {
    return std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator{});
  };
  const auto before = countFds();
  ASSERT_TRUE(runToCompletion(makeSpec("echo x")).has_value());
  ASSERT_TRUE(runToCompletion(makeSpec("sleep 30", 50ms)).has_value());
  {
    auto proc = StepProcess::start(makeSpec("sleep 30"));
    ASSERT_TRUE(proc.has_value()) << proc.error().message();
  }
  EXPECT_EQ(countFds(), before);
}

TEST_P(StepRunnerTest, ChildInheritsNoExtraFds) {
  // 0-2 plus the fd ls uses to read its own fd directory.
  auto r = runToCompletion(makeSpec("ls /proc/self/fd | wc -l"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->output_tail, "4\n");
}

TEST_P(StepRunnerTest, EchoPrefixesEachLine) {
  auto spec = makeSpec("printf 'a\\n\\nb'");
  spec.step_id = "grp/step";
  spec.echo_output = true;
  ::testing::internal::CaptureStderr();
  auto r = runToCompletion(spec);
  const std::string echoed = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->output_tail, "a\n\nb");
  EXPECT_EQ(echoed, "[grp/step] a\n[grp/step] \n[grp/step] b\n");
}

TEST_P(StepRunnerTest, TerminatingSignalsPassThrough) {
  // ulimit: a SIGSEGV of the shell must not leave a core file behind.
  for (int sig : {SIGTERM, SIGINT, SIGSEGV}) {
    auto r = runToCompletion(makeSpec("ulimit -c 0; kill -" + std::to_string(sig) + " $$"));
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->outcome, RunOutcome::kFailed) << sig;
    EXPECT_EQ(r->exit_code, -1) << sig;
    EXPECT_EQ(r->signal, sig);
  }
  auto big = runToCompletion(makeSpec("exit 255"));
  ASSERT_TRUE(big.has_value()) << big.error().message();
  EXPECT_EQ(big->exit_code, 255);
  EXPECT_EQ(big->signal, 0);
}

TEST_P(StepRunnerTest, AbortRightAfterStartIsASigkill) {
  const fs::path ran = dir_ / "ran";
  auto proc = StepProcess::start(makeSpec("sleep 5; touch '" + ran.string() + "'"));
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  (*proc)->abort();
  auto r = driveToCompletion(**proc, 3s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, RunOutcome::kAborted);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_FALSE(fs::exists(ran));
}

INSTANTIATE_TEST_SUITE_P(, StepRunnerTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Supervised" : "Direct";
                         });

// What only the supervisor does. Each step builds the same tree and records its pids:
//   sh.pid      the step's shell            sup.pid   the supervisor (the shell's parent)
//   bg.pid      a background job (`sleep 60 &`, in the shell's process group)
//   setsid.pid  a sleeper that left with setsid and a double fork: `setsid sh -c 'sleep 60 &'`
//               whose sh exits at once, so the sleeper is an orphan in a session of its own
// and waits until all four files exist before going on with `then`.
class SupervisorTest : public StepRunnerTest {
 protected:
  std::string treeCommand(const std::string& then) const {
    return "cd '" + dir_.string() + "' || exit 99\n"
           "echo $$ > sh.pid\n"
           "echo $PPID > sup.pid\n"
           "sleep 60 & echo $! > bg.pid\n"
           "setsid sh -c 'sleep 60 & echo $! > setsid.pid' &\n"
           "until [ -s setsid.pid ] && [ -s bg.pid ]; do sleep 0.01; done\n" +
           then;
  }

  // The four pids, read once each file is complete; fails the test if one never is.
  std::vector<pid_t> treePids(StepProcess* proc = nullptr) {
    std::vector<pid_t> pids;
    for (const char* name : {"sh.pid", "sup.pid", "bg.pid", "setsid.pid"}) {
      const pid_t pid = waitForPidFile(dir_ / name, proc);
      EXPECT_GT(pid, 0) << name;
      if (pid > 0) pids.push_back(pid);
    }
    return pids;
  }

  static std::string alive(const std::vector<pid_t>& pids) {
    std::string out;
    for (pid_t pid : pids) {
      if (!isGone(pid)) out += std::to_string(pid) + " ";
    }
    return out;
  }
};

TEST_P(SupervisorTest, ParentDeathKillsTheWholeTreeIncludingSetsidDescendants) {
  // The parent is a forked copy of this test that starts the step and then waits to be
  // SIGKILLed, as a td-worker would be.
  const StepSpecToRun spec = makeSpec(treeCommand("sleep 60; touch done"), 120s);
  const pid_t parent = ::fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    auto proc = StepProcess::start(spec);
    if (!proc) ::_exit(1);
    while (true) ::pause();
  }
  const std::vector<pid_t> pids = treePids();
  ASSERT_EQ(pids.size(), 4u);
  EXPECT_FALSE(isGone(pids[3])) << "the setsid sleeper runs";
  ASSERT_EQ(::kill(parent, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(parent, &status, 0), parent);
  EXPECT_TRUE(waitUntil([&] { return alive(pids).empty(); }, 1s)) << "alive: " << alive(pids);
  EXPECT_FALSE(fs::exists(dir_ / "done"));
}

TEST_P(SupervisorTest, AbortKillsTheWholeTreeBeforeTheResult) {
  auto proc = StepProcess::start(makeSpec(treeCommand("sleep 60")));
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  const std::vector<pid_t> pids = treePids(proc->get());
  ASSERT_EQ(pids.size(), 4u);
  EXPECT_EQ(pids[1], (*proc)->pid());
  (*proc)->abort();
  auto r = driveToCompletion(**proc, 3s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, RunOutcome::kAborted);
  EXPECT_EQ(r->signal, SIGKILL);
  // The supervisor exits only once its tree is gone: no waiting here.
  EXPECT_EQ(alive(pids), "");
}

TEST_P(SupervisorTest, NormalExitKillsLeftoversIncludingSetsidOnesAndKeepsTheExitCode) {
  auto r = runToCompletion(makeSpec(treeCommand("echo done; exit 7")));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kFailed);
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->signal, 0);
  EXPECT_EQ(r->output_tail, "done\n");
  EXPECT_LT(r->duration, 5s);
  const std::vector<pid_t> pids = treePids();
  ASSERT_EQ(pids.size(), 4u);
  EXPECT_EQ(alive(pids), "");
}

TEST_P(SupervisorTest, TimeoutKillsSetsidDescendantsAndReportsTimedOut) {
  const auto spec = makeSpec(treeCommand("sleep 60"), 1500ms);
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->outcome, RunOutcome::kTimedOut);
  EXPECT_EQ(r->signal, SIGTERM);  // the shell took the forwarded SIGTERM
  EXPECT_LT(r->duration, 4s);
  const std::vector<pid_t> pids = treePids();
  ASSERT_EQ(pids.size(), 4u);
  EXPECT_EQ(alive(pids), "");
}

TEST_P(SupervisorTest, DestructorKillsTheWholeTree) {
  auto proc = StepProcess::start(makeSpec(treeCommand("sleep 60")));
  ASSERT_TRUE(proc.has_value()) << proc.error().message();
  const std::vector<pid_t> pids = treePids(proc->get());
  ASSERT_EQ(pids.size(), 4u);
  proc->reset();
  EXPECT_EQ(alive(pids), "");
}

TEST_P(SupervisorTest, RunsNothingWhenItsParentIsAlreadyGone) {
  // The parent died before the supervisor armed its parent-death signal: getppid() is not
  // the pid it was given (999999999 is above any pid_max).
  const fs::path ran = dir_ / "ran";
  auto spec = baseSpec("exec \"$SUPERVISOR\" --parent-pid 999999999 -- /bin/sh -c 'touch " +
                       ran.string() + "'");
  spec.extra_env = {{"SUPERVISOR", TD_TEST_STEP_SUPERVISOR}};
  auto r = runToCompletion(spec);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->exit_code, kSupervisorParentGone);
  EXPECT_FALSE(fs::exists(ran));
}

TEST_P(SupervisorTest, AMissingSupervisorIsAnIoErrorOfStart) {
  auto spec = makeSpec("true");
  spec.supervisor = dir_ / "no-such-supervisor";
  auto proc = StepProcess::start(spec);
  ASSERT_FALSE(proc.has_value());
  EXPECT_EQ(proc.error().code(), Errc::kIo);
  EXPECT_NE(proc.error().message().find("no-such-supervisor"), std::string::npos)
      << proc.error().message();
}

TEST(SupervisorChildren, BothWaysOfListingFindTheSameChildren) {
  auto first = StepProcess::start(baseSpec("sleep 30"));
  auto second = StepProcess::start(baseSpec("sleep 30"));
  ASSERT_TRUE(first.has_value() && second.has_value());
  for (bool scan_proc : {false, true}) {
    const std::vector<pid_t> found = childrenOfSelfForTest(scan_proc);
    for (pid_t pid : {(*first)->pid(), (*second)->pid()}) {
      EXPECT_NE(std::find(found.begin(), found.end(), pid), found.end())
          << pid << (scan_proc ? " (scan)" : " (children file)");
    }
    for (pid_t pid : found) {  // and nothing that is not our child
      const std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
      std::istringstream rest(stat.substr(stat.rfind(')') + 1));
      char state = 0;
      long ppid = 0;
      rest >> state >> ppid;
      EXPECT_EQ(ppid, ::getpid()) << pid << ": " << stat;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(, SupervisorTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return "Supervised"; });

}  // namespace
}  // namespace td::worker

// With --log-format json the echoed step output is wrapped as log records, so stderr stays one
// JSON object per line whatever the step prints.
namespace td::worker {
namespace {

TEST(StepEcho, JsonLogFormatWrapsEachLine) {
  const fs::path file = fs::temp_directory_path() / ("td-echo-" + std::to_string(::getpid()));
  const int saved = ::dup(2);
  ASSERT_GE(saved, 0);
  const int out = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(out, 0);
  ::dup2(out, 2);
  ::close(out);
  ASSERT_TRUE(td::log::setFormat("json"));
  auto spec = baseSpec("printf 'say \"hi\"\\tnow\\nsecond\\n'");
  spec.echo_output = true;
  auto r = runToCompletion(spec);
  ASSERT_TRUE(td::log::setFormat("text"));
  ::dup2(saved, 2);
  ::close(saved);
  ASSERT_TRUE(r.has_value());
  std::ifstream in(file);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  fs::remove(file);
  EXPECT_NE(first.find("\"level\":\"info\",\"logger\":\"step\","
                       "\"message\":\"[s1] say \\\"hi\\\"\\tnow\"}"),
            std::string::npos)
      << first;
  EXPECT_EQ(first.rfind("{\"time\":", 0), 0u) << first;
  EXPECT_NE(second.find("\"message\":\"[s1] second\"}"), std::string::npos) << second;
}

}  // namespace
}  // namespace td::worker
