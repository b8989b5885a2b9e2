#include "benchmarks/cases.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "benchmarks/background_task.h"
#include "benchmarks/sim_worker.h"
#include "schema/schema.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kWaitSlice{200};
constexpr std::size_t kLogTail = 3000;

double secondsBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

// Between waits: fails once the coordinator is gone or the case ran out of time.
td::Status stillGoing(const CaseEnv& env, Clock::time_point deadline, const std::string& name) {
  TD_RETURN_IF_ERROR(coordinatorAlive(env));
  if (Clock::now() >= deadline) {
    return makeError(td::Errc::kTimeout, fmt::format("case {} did not finish within {} s", name,
                                                     env.time_limit.count() / 1000.0));
  }
  return {};
}

worker::PeerInfo simulatedPeer(const CaseEnv& env, const SimulatedCase& spec, int group,
                               int index) {
  worker::PeerInfo peer;
  peer.peer_id = fmt::format("{}-g{}-w{}-{}", spec.name, group, index, env.run_id);
  td::v1::RepoState repo;
  repo.set_repository("bench://app");
  repo.set_base_ref("main");
  repo.set_change_ref(fmt::format("change-{}", group));
  peer.repos.push_back(std::move(repo));
  peer.remote_cache_id = cacheIdOf(env, spec.name);
  peer.pipeline = "td-bench";
  return peer;
}

// The checks of runSimulatedCase and the figures, from every worker's outcome.
td::Result<CaseResult> summarizeCase(const SimulatedCase& spec,
                                     const std::vector<const SimWorkerOutcome*>& outcomes) {
  std::uint64_t finished = 0;
  std::set<std::string> groups;
  std::optional<SteadyTime> first;
  SteadyTime last{};
  std::vector<double> dispatch;
  for (const auto* o : outcomes) {
    finished += o->steps_finished;
    groups.insert(o->group_id);
    if (o->first_assignment && (!first || *o->first_assignment < *first)) {
      first = o->first_assignment;
    }
    last = std::max(last, o->completed_at);
    dispatch.insert(dispatch.end(), o->dispatch_ms.begin(), o->dispatch_ms.end());
    if (o->summary_steps != static_cast<std::size_t>(spec.steps_per_group)) {
      return makeError(td::Errc::kInternal,
                       fmt::format("{}: GroupCompleted of {} lists {} steps, expected {}",
                                   spec.name, o->group_id, o->summary_steps, spec.steps_per_group));
    }
  }
  const auto expected = static_cast<std::uint64_t>(spec.groups) * spec.steps_per_group;
  if (finished != expected || groups.size() != static_cast<std::size_t>(spec.groups) || !first) {
    return makeError(td::Errc::kInternal,
                     fmt::format("{}: {} steps finished in {} groups, expected {} in {}", spec.name,
                                 finished, groups.size(), expected, spec.groups));
  }
  CaseResult result{.name = spec.name,
                    .kind = "simulated",
                    .groups = spec.groups,
                    .workers = spec.groups * spec.workers_per_group,
                    .steps = static_cast<int>(finished),
                    .wall_s = secondsBetween(*first, last),
                    .window = "first StepAssigned -> last GroupCompleted",
                    .dispatch = summarize(std::move(dispatch))};
  result.completions_per_s = result.wall_s > 0 ? finished / result.wall_s : 0;
  return result;
}

// Waits for one worker to exit 0.
td::Status awaitWorker(ChildProcess& worker, int index, const CaseEnv& env,
                       Clock::time_point deadline, const std::string& name) {
  while (true) {
    if (auto code = worker.waitFor(kWaitSlice)) {
      if (*code == 0) return {};
      return makeError(td::Errc::kInternal,
                       fmt::format("{}: td-worker {} exited with {}; its log ends:\n{}", name,
                                   index, *code, worker.outputTail(kLogTail)));
    }
    TD_RETURN_IF_ERROR(stillGoing(env, deadline, name));
  }
}
}  // namespace

td::Result<std::unique_ptr<ChildProcess>> spawnWorker(const RealWorkerCase& spec,
                                                      const CaseEnv& env,
                                                      const std::filesystem::path& schema,
                                                      int index) {
  const std::string peer = fmt::format("{}-w{}-{}", spec.name, index, env.run_id);
  const auto seconds = std::to_string(std::max<std::int64_t>(1, env.time_limit.count() / 1000));
  // clang-format off
  std::vector<std::string> args = {spec.worker_bin,
      "--bootstrap-server", env.bootstrap,
      "--topic-prefix", env.topics.prefix(),
      "--schema", schema.string(),
      "--peer-id", peer,
      "--repository", "bench://app",
      "--base-ref", "main",
      "--change-ref", "change-0",
      "--remote-cache-id", cacheIdOf(env, spec.name),
      "--workdir", env.scratch->path().string(),
      "--join-timeout", seconds,
      "--quiet-steps"};
  // clang-format on
  for (const auto& [key, value] : env.kafka) {
    args.push_back("-X");
    args.push_back(key + "=" + value);
  }
  return ChildProcess::spawn(args, env.scratch->path() / (peer + ".log"));
}

td::Status awaitAll(std::vector<std::unique_ptr<SimTask>>& tasks, const CaseEnv& env,
                    const std::string& name) {
  const auto deadline = Clock::now() + env.time_limit;
  while (true) {
    SimTask* pending = nullptr;
    for (auto& task : tasks) {
      if (!task->waitFor(std::chrono::milliseconds(0))) {
        if (pending == nullptr) pending = task.get();
        continue;
      }
      if (auto& result = task->result(); !result) return td::unexpected(result.error());
    }
    if (pending == nullptr) return {};
    TD_RETURN_IF_ERROR(stillGoing(env, deadline, name));
    pending->waitFor(kWaitSlice);
  }
}


td::Status coordinatorAlive(const CaseEnv& env) {
  if (auto code = env.coordinator->waitFor(std::chrono::milliseconds(0))) {
    return makeError(td::Errc::kUnavailable,
                     fmt::format("td-coordinator exited with {}; its log ends:\n{}", *code,
                                 env.coordinator->outputTail(kLogTail)));
  }
  return {};
}

std::string cacheIdOf(const CaseEnv& env, const std::string& case_name) {
  return "td-bench-" + env.run_id + "-" + case_name;
}

std::string noopSchemaYaml(const std::string& name, int steps, const std::string& command,
                           const std::string& timeout) {
  std::string yaml = fmt::format(
      "name: {}\ndefaults: {{timeout: {}, max_attempts: 1}}\nsteps:\n", name, timeout);
  for (int i = 1; i <= steps; ++i) {
    yaml += fmt::format("  - id: s{}\n    run: \"{}\"\n", i, command);
  }
  return yaml;
}

td::Result<CaseResult> runSimulatedCase(const SimulatedCase& spec, const CaseEnv& env) {
  auto schema = schema::parse(noopSchemaYaml("bench-" + spec.name, spec.steps_per_group, "true"),
                              "td-bench:" + spec.name);
  if (!schema) return td::unexpected(schema.error());
  // Declared before the tasks, which point into them: destroyed after the threads are joined.
  StartGate gate(spec.groups * spec.workers_per_group);
  std::vector<SimWorkerConfig> configs;
  for (int g = 0; g < spec.groups; ++g) {
    for (int w = 0; w < spec.workers_per_group; ++w) {
      configs.push_back(SimWorkerConfig{.bootstrap = env.bootstrap,
                                        .kafka = env.kafka,
                                        .broker_kind = env.broker_kind,
                                        .topics = env.topics,
                                        .peer = simulatedPeer(env, spec, g, w),
                                        .schema = &*schema,
                                        .gate = &gate,
                                        .report_started = env.report_started,
                                        .join_timeout = env.time_limit,
                                        .idle_timeout = env.time_limit});
    }
  }
  std::vector<std::unique_ptr<SimTask>> tasks;
  for (const auto& config : configs) {
    tasks.push_back(std::make_unique<SimTask>(
        [&config](std::stop_token stop) { return runSimWorker(config, stop); }));
  }
  TD_RETURN_IF_ERROR(awaitAll(tasks, env, spec.name));
  std::vector<const SimWorkerOutcome*> outcomes;
  for (auto& task : tasks) outcomes.push_back(&*task->result());
  return summarizeCase(spec, outcomes);
}

td::Result<CaseResult> runRealWorkerCase(const RealWorkerCase& spec, const CaseEnv& env) {
  auto schema = env.scratch->writeFile(spec.name + ".yaml",
                                       noopSchemaYaml("bench-" + spec.name, spec.steps, "true"));
  if (!schema) return td::unexpected(schema.error());
  const auto start = Clock::now();
  const auto deadline = start + env.time_limit;
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int i = 0; i < spec.workers; ++i) {
    auto worker = spawnWorker(spec, env, *schema, i);
    if (!worker) return td::unexpected(worker.error());
    workers.push_back(std::move(*worker));
  }
  for (int i = 0; i < spec.workers; ++i) {
    TD_RETURN_IF_ERROR(awaitWorker(*workers[i], i, env, deadline, spec.name));
  }
  CaseResult result{.name = spec.name,
                    .kind = "td-worker",
                    .groups = 1,
                    .workers = spec.workers,
                    .steps = spec.steps,
                    .wall_s = secondsBetween(start, Clock::now()),
                    .window = "first spawn -> last td-worker exit (includes process start-up)"};
  result.completions_per_s = result.wall_s > 0 ? spec.steps / result.wall_s : 0;
  return result;
}

}  // namespace td::bench
