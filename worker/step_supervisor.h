// The per-step supervisor: a small process between td-worker and a step's `/bin/sh -c`, whose
// only job is that no process of the step outlives the step or td-worker (issue 15).
//
// It is a hidden mode of the td-worker binary itself: StepProcess (worker/step_runner.h)
// spawns `/proc/self/exe` with argv[0] == kStepSupervisorArgv0, and td-worker's main() hands
// such an invocation to stepSupervisorMain() before it parses any flag. So nothing new is
// installed, and the supervisor is always the same build as the worker that started it.
//
// Command line (built by StepProcess; not an interface for people):
//   td-step-supervisor --parent-pid <pid> -- <program> [args...]
//
// What the supervisor does (Linux only; docs/architecture.md, "Step processes"):
//   1. PR_SET_CHILD_SUBREAPER: every orphaned descendant, also one that left with setsid or
//      a double fork, is reparented to the supervisor rather than to init.
//   2. PR_SET_PDEATHSIG(kStepSupervisorKillSignal), then compares getppid() with --parent-pid:
//      if the parent died before the prctl, it exits 125 at once without running anything.
//   3. Spawns <program> in a new process group, stdin/stdout/stderr and working directory
//      inherited, every other fd closed, default signal dispositions and an empty mask, then
//      waits (sigwaitinfo) for SIGCHLD and its control signals.
//   4. When <program> exits: SIGKILLs its process group (while its zombie pins the group id)
//      and every remaining child (and the process group each child leads), reaps, and repeats
//      until it has no child left (a killed child's orphans are reparented to it, so it loops);
//      then exits with <program>'s status: the same exit code, or the same signal (raised on
//      itself with the default disposition and no core dump).
//   5. SIGTERM (the worker's step timeout): forwarded to <program>'s group and to every other
//      child (and the group it leads); the supervisor keeps waiting.
//   6. kStepSupervisorKillSignal (the worker's abort, SIGKILL escalation and destructor, and
//      the parent-death signal), SIGINT, SIGHUP, SIGQUIT: kills the whole tree as in 4, then
//      exits the same way (normally with SIGKILL, the status of the killed <program>).
//   If <program> cannot be spawned, or a prctl fails, it writes why to stderr (the step's
//   output) and exits 127.
//
// What still escapes: processes that are not descendants (started through another daemon:
// systemd-run, at, ssh localhost, a container engine); processes stuck in uninterruptible
// sleep (the supervisor waits for them); and everything if the supervisor itself is
// SIGKILLed (it is never sent SIGKILL by td-worker).
//
// REQUIRES: the process that spawns the supervisor spawns it from a thread that lives as long
// as the step: PR_SET_PDEATHSIG fires when the spawning *thread* exits (td-worker spawns steps
// from its main thread). The spawner should start it with kStepSupervisorKillSignal, SIGTERM
// and SIGCHLD blocked, so a signal sent before the supervisor has set itself up stays pending
// instead of killing it with the default action.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string_view>
#include <vector>

namespace td::worker {

// argv[0] that selects the supervisor mode of td-worker.
inline constexpr std::string_view kStepSupervisorArgv0 = "td-step-supervisor";

// The signal that makes the supervisor kill the whole tree and exit (also its parent-death
// signal). SIGTERM means "terminate gracefully" and is forwarded instead.
inline constexpr int kStepSupervisorKillSignal = SIGUSR1;

// Exit codes of the supervisor itself (the step's own codes pass through unchanged).
inline constexpr int kSupervisorUsage = 2;         // bad command line (message on stderr)
inline constexpr int kSupervisorParentGone = 125;  // parent died before PDEATHSIG was armed
// <program> could not be spawned, or the supervisor could not set itself up (prctl failed).
inline constexpr int kSupervisorSpawnFailed = 127;

// The signals the supervisor takes with sigwaitinfo (kept blocked): SIGCHLD, SIGTERM, SIGINT,
// SIGHUP, SIGQUIT and kStepSupervisorKillSignal. The spawner blocks them in the supervisor's
// initial mask.
sigset_t stepSupervisorControlSignals();

// True when argv asks for the supervisor mode (argv[0] is exactly kStepSupervisorArgv0).
bool isStepSupervisorInvocation(int argc, char** argv);

// Runs the supervisor (see above) on `argv` (argv[0] is not looked at). Returns an exit code
// for main() to return, or ends the process with the step's terminating signal.
int stepSupervisorMain(int argc, char** argv);

// How the supervisor lists its children (alive or zombie), for tests: the calling process's
// main thread's /proc/self/task/<pid>/children, or with `scan_proc` (the supervisor's fallback
// where the kernel has no such file) every /proc/<pid>/stat that names it as the parent.
std::vector<pid_t> childrenOfSelfForTest(bool scan_proc);

}  // namespace td::worker
