#include "benchmarks/idle.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>
#include <thread>

#include "benchmarks/fleet.h"
#include "benchmarks/fleet_cases.h"
#include "benchmarks/proc_usage.h"
#include "common/log.h"
#include "schema/schema.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kLook{100};   // between looks for the steps' marks
constexpr std::size_t kLogTail = 3000;

double percentOf(const ProcessUsage& before, const ProcessUsage& after, double seconds) {
  return seconds > 0 ? (cpuSeconds(after) - cpuSeconds(before)) * 100 / seconds : 0;
}

// The td-workers' processes, stopped (SIGTERM: each kills its step's tree) when this goes.
struct Workers {
  std::vector<std::unique_ptr<ChildProcess>> processes;
  ~Workers() {
    for (auto& p : processes) p->stop();
  }
};

// Pauses (the fleet heartbeating) until every td-worker's step has left its mark in `marks`.
td::Status awaitSteps(const std::function<td::Status(Clock::time_point)>& pause,
                      Workers& workers, const std::filesystem::path& marks, int expected,
                      const CaseEnv& env) {
  const auto deadline = Clock::now() + env.time_limit;
  while (true) {
    std::error_code ec;
    int started = 0;
    for (const auto& entry : std::filesystem::directory_iterator(marks, ec)) {
      (void)entry;
      ++started;
    }
    if (started >= expected) return {};
    for (std::size_t i = 0; i < workers.processes.size(); ++i) {
      if (auto code = workers.processes[i]->waitFor(std::chrono::milliseconds(0))) {
        return makeError(td::Errc::kInternal,
                         fmt::format("idle: td-worker {} exited with {}; its log ends:\n{}", i,
                                     *code, workers.processes[i]->outputTail(kLogTail)));
      }
    }
    if (Clock::now() >= deadline) {
      return makeError(td::Errc::kTimeout,
                       fmt::format("idle: {} of {} steps started within {} ms", started,
                                   expected, env.time_limit.count()));
    }
    TD_RETURN_IF_ERROR(pause(Clock::now() + kLook));
  }
}
}  // namespace

td::Result<IdleResult> runIdleCase(const IdleCase& spec, const CaseEnv& env) {
  const std::string name = "idle";
  const auto marks = env.scratch->path() / "idle-started";
  std::error_code ec;
  std::filesystem::create_directories(marks, ec);
  if (ec) return makeError(td::Errc::kIo, "idle: " + marks.string() + ": " + ec.message());
  // Each step marks that it started, then sleeps far past the measurement (td-worker kills it).
  const std::string command = fmt::format("touch {}/$TD_STEP_ID && exec sleep 3600", marks.string());
  auto schema_file = env.scratch->writeFile(
      "idle.yaml", noopSchemaYaml("bench-idle", spec.workers, command, "2h"));
  if (!schema_file) return td::unexpected(schema_file.error());
  // The fleet's groups: two steps each, so holding the first keeps the group open.
  auto fleet_schema = schema::parse(noopSchemaYaml("bench-idle-fleet", 2, "true", "2h"),
                                    "td-bench:idle-fleet");
  if (!fleet_schema) return td::unexpected(fleet_schema.error());
  // No fleet for one group: then the pauses below only wait.
  std::unique_ptr<Fleet> fleet;
  if (spec.groups > 1) {
    auto made = Fleet::create(FleetConfig{
        .bootstrap = env.bootstrap,
        .kafka = env.kafka,
                .broker_kind = env.broker_kind,
.topics = env.topics,
        .source = FleetSource::kEvents,
        .groups = fleetPeers(env, name + "-fleet", spec.groups - 1, 1, spec.families),
        .schema = &*fleet_schema,
        .report_started = env.report_started,
        .check = [&env] { return coordinatorAlive(env); }});
    if (!made) return td::unexpected(made.error());
    fleet = std::move(*made);
    TD_RETURN_IF_ERROR(fleet->join(Clock::now() + env.time_limit));
  }
  auto pause = [&](Clock::time_point until) -> td::Status {
    if (fleet) return fleet->idle(until);
    std::this_thread::sleep_until(until);
    return {};
  };

  Workers workers;
  for (int i = 0; i < spec.workers; ++i) {
    auto worker = spawnWorker({.name = name, .worker_bin = spec.worker_bin}, env, *schema_file, i);
    if (!worker) return td::unexpected(worker.error());
    workers.processes.push_back(std::move(*worker));
  }
  TD_RETURN_IF_ERROR(awaitSteps(pause, workers, marks, spec.workers, env));
  TD_RETURN_IF_ERROR(pause(Clock::now() + spec.settle));

  const pid_t coordinator = env.coordinator->pid();
  auto coordinator_before = readUsage(coordinator);
  auto bench_before = readUsage(::getpid());
  std::vector<ProcessUsage> workers_before;
  for (const auto& p : workers.processes) {
    auto usage = readUsage(p->pid());
    if (!usage) return td::unexpected(usage.error());
    workers_before.push_back(*usage);
  }
  if (!coordinator_before) return td::unexpected(coordinator_before.error());
  if (!bench_before) return td::unexpected(bench_before.error());
  const std::uint64_t heartbeats_before = fleet ? fleet->counters().heartbeats : 0;
  const auto start = Clock::now();
  TD_RETURN_IF_ERROR(pause(start + spec.window));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  auto coordinator_after = readUsage(coordinator);
  auto bench_after = readUsage(::getpid());
  if (!coordinator_after) return td::unexpected(coordinator_after.error());
  if (!bench_after) return td::unexpected(bench_after.error());

  IdleResult r{.groups = spec.groups,
               .workers = spec.workers,
               .window_s = seconds};
  r.coordinator_cpu_pct = percentOf(*coordinator_before, *coordinator_after, seconds);
  r.bench_cpu_pct = percentOf(*bench_before, *bench_after, seconds);
  r.fleet_heartbeats = fleet ? fleet->counters().heartbeats - heartbeats_before : 0;
  for (std::size_t i = 0; i < workers.processes.size(); ++i) {
    auto after = readUsage(workers.processes[i]->pid());
    if (!after) return td::unexpected(after.error());
    r.worker_cpu_pct.push_back(percentOf(workers_before[i], *after, seconds));
  }
  if (!r.worker_cpu_pct.empty()) {
    r.worker_cpu_pct_max = *std::max_element(r.worker_cpu_pct.begin(), r.worker_cpu_pct.end());
    r.worker_cpu_pct_mean =
        std::accumulate(r.worker_cpu_pct.begin(), r.worker_cpu_pct.end(), 0.0) /
        static_cast<double>(r.worker_cpu_pct.size());
  }
  td::log::get("bench")->info(
      "idle: {} groups, {} td-workers, {:.1f} s: coordinator {:.2f} %, td-worker mean {:.2f} % "
      "max {:.2f} %, td-bench {:.2f} % of a core",
      r.groups, r.workers, seconds, r.coordinator_cpu_pct, r.worker_cpu_pct_mean,
      r.worker_cpu_pct_max, r.bench_cpu_pct);
  return r;
}

}  // namespace td::bench
