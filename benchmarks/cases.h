// The dispatch cases: groups of simulated workers, or real td-worker processes, driven through
// one running td-coordinator, each measured from the workers' side.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "benchmarks/background_task.h"
#include "benchmarks/child_process.h"
#include "benchmarks/sim_worker.h"
#include "benchmarks/stats.h"
#include "common/result.h"
#include "kafka/client_settings.h"
#include "kafka/types.h"
#include "protocol/protocol.h"

namespace td::bench {

// What every case runs against. Pointers are not owned and outlive the case.
struct CaseEnv {
  std::string bootstrap;
  kafka::Properties kafka;  // -X overrides for every client, td-worker's too
  kafka::BrokerKind broker_kind = kafka::BrokerKind::kEmbedded;   // readers' fetch wait
  protocol::Topics topics;
  // Makes peer ids and remote cache ids unique per run: a coordinator that replays an earlier
  // run's registrations (a fresh consumer group on a used broker) must not mistake them for
  // earlier sessions of this run's peers.
  std::string run_id;
  ChildProcess* coordinator = nullptr;          // a case fails at once if it exits
  const ScratchDir* scratch = nullptr;          // schema files and td-worker logs go here
  std::chrono::milliseconds time_limit{60000};  // a case still running after it fails
  bool report_started = true;                   // simulated workers also publish StepStarted
};

// `groups` groups of `workers_per_group` simulated workers each, on a schema of
// `steps_per_group` no-op steps. Every case has its own remote cache id, so its peers form
// their own compatibility family; within it each group has its own change ref, and the
// workers of one group share it.
struct SimulatedCase {
  std::string name;
  int groups = 1;
  int workers_per_group = 1;
  int steps_per_group = 1;
};

// `workers` td-worker processes in one group, on a schema of `steps` steps running `true`.
struct RealWorkerCase {
  std::string name;
  std::string worker_bin;
  int workers = 1;
  int steps = 1;
};

struct CaseResult {
  std::string name;
  std::string kind;  // "simulated", "fleet" or "td-worker"
  int groups = 0;
  int workers = 0;    // in all groups together
  int steps = 0;      // completed, in all groups together
  double wall_s = 0;  // see `window`
  double completions_per_s = 0;
  std::string window;                      // what wall_s measures
  std::optional<LatencySummary> dispatch;  // simulated and fleet cases
  std::optional<double> join_s;            // fleet cases: registrations -> all joined
  std::string reads;                       // fleet cases: where assignments were read
  // Fleet cases: CPU seconds over wall_s of td-coordinator, and of td-bench itself (its fleet,
  // and the embedded broker when td-bench hosts it).
  std::optional<double> coordinator_cpu_s;
  std::optional<double> bench_cpu_s;
};

// Spawns td-worker number `index` of `spec` in the scratch directory on `schema` (stdout and
// stderr to "<peer id>.log" there); every worker of a case is a peer of one group (change
// "change-0"). Errors: td::Errc::kIo.
td::Result<std::unique_ptr<ChildProcess>> spawnWorker(const RealWorkerCase& spec,
                                                      const CaseEnv& env,
                                                      const std::filesystem::path& schema,
                                                      int index);

// Runs the case and checks it: every worker saw its group complete, every step of every group
// was finished exactly once, and each GroupCompleted listed all steps.
// wall_s runs from the first StepAssigned any worker received to the last GroupCompleted.
// Errors: a worker's error (the first one), td::Errc::kTimeout past time_limit,
// td::Errc::kUnavailable if the coordinator exited, td::Errc::kInternal for a failed check.
td::Result<CaseResult> runSimulatedCase(const SimulatedCase& spec, const CaseEnv& env);

// Spawns the workers (stdout/stderr to files in the scratch directory) and waits for all to
// exit 0. wall_s runs from just before the first spawn to the last exit, so it includes
// process start-up, registration and each step's /bin/sh.
// Errors: td::Errc::kIo (spawn), kTimeout, kUnavailable (coordinator exited), kInternal (a
// worker exited non-zero; the message carries the end of its log).
td::Result<CaseResult> runRealWorkerCase(const RealWorkerCase& spec, const CaseEnv& env);

// Simulated workers running on their own threads.
using SimTask = BackgroundTask<td::Result<SimWorkerOutcome>>;
// Waits until every task has returned; the first error found is returned at once (the
// remaining tasks are then stopped by their owner's destructors). Errors also when the
// coordinator exits (kUnavailable) or `env.time_limit` passes (kTimeout, naming case `name`).
td::Status awaitAll(std::vector<std::unique_ptr<SimTask>>& tasks, const CaseEnv& env,
                    const std::string& name);

// A schema named `name` of `steps` steps "s1".."sN" running `command`, max_attempts 1, each
// with the step timeout `timeout`.
std::string noopSchemaYaml(const std::string& name, int steps, const std::string& command,
                           const std::string& timeout = "1m");

// The remote cache id of a case: its peers form a compatibility family of their own.
std::string cacheIdOf(const CaseEnv& env, const std::string& case_name);

// Between waits: an error once the coordinator has exited.
td::Status coordinatorAlive(const CaseEnv& env);

}  // namespace td::bench
