#include "benchmarks/fleet_cases.h"

#include <fmt/format.h>
#include <unistd.h>

#include "benchmarks/proc_usage.h"
#include "schema/schema.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

std::vector<FleetCase> matrixCases(const std::vector<int>& workers, const std::vector<int>& groups,
                                   int max_peers, int steps_per_peer) {
  std::vector<FleetCase> cases;
  for (const int g : groups) {
    for (const int w : workers) {
      if (static_cast<long>(w) * g > max_peers) continue;
      cases.push_back({.name = fmt::format("w{}_g{}", w, g),
                       .workers_per_group = w,
                       .groups = g,
                       .steps_per_group = steps_per_peer * w});
    }
  }
  return cases;
}

std::vector<std::vector<worker::PeerInfo>> fleetPeers(const CaseEnv& env, const std::string& name,
                                                      int groups, int workers, int families) {
  std::vector<std::vector<worker::PeerInfo>> peers(static_cast<std::size_t>(groups));
  for (int g = 0; g < groups; ++g) {
    for (int w = 0; w < workers; ++w) {
      worker::PeerInfo peer;
      peer.peer_id = fmt::format("{}-g{}-w{}-{}", name, g, w, env.run_id);
      td::v1::RepoState repo;
      repo.set_repository("bench://app");
      repo.set_base_ref("main");
      repo.set_change_ref(fmt::format("change-{}", g));
      peer.repos.push_back(std::move(repo));
      peer.remote_cache_id = families > 1
                                 ? fmt::format("{}-f{}", cacheIdOf(env, name), g % families)
                                 : cacheIdOf(env, name);
      peer.pipeline = "td-bench";
      peers[static_cast<std::size_t>(g)].push_back(std::move(peer));
    }
  }
  return peers;
}

td::Result<CaseResult> runFleetCase(const FleetCase& spec, const CaseEnv& env) {
  auto schema = schema::parse(noopSchemaYaml("bench-" + spec.name, spec.steps_per_group, "true"),
                              "td-bench:" + spec.name);
  if (!schema) return td::unexpected(schema.error());
  auto fleet = Fleet::create(
      FleetConfig{.bootstrap = env.bootstrap,
                  .kafka = env.kafka,
                                    .broker_kind = env.broker_kind,
.topics = env.topics,
                  .source = spec.source,
                  .groups = fleetPeers(env, spec.name, spec.groups, spec.workers_per_group),
                  .schema = &*schema,
                  .report_started = env.report_started,
                  .check = [&env] { return coordinatorAlive(env); }});
  if (!fleet) return td::unexpected(fleet.error());
  const auto start = Clock::now();
  const auto deadline = start + env.time_limit;
  TD_RETURN_IF_ERROR((*fleet)->join(deadline));
  const double join_s = std::chrono::duration<double>(Clock::now() - start).count();
  auto coordinator_before = readUsage(env.coordinator->pid());
  auto bench_before = readUsage(::getpid());
  TD_RETURN_IF_ERROR((*fleet)->drive(Fleet::Goal::kAllCompleted, deadline));
  auto coordinator_after = readUsage(env.coordinator->pid());
  auto bench_after = readUsage(::getpid());
  TD_RETURN_IF_ERROR((*fleet)->checkCompleted());
  const auto first = (*fleet)->firstAnswer().value_or((*fleet)->lastCompletion());
  const int steps = spec.groups * spec.steps_per_group;
  CaseResult result{
      .name = spec.name,
      .kind = "fleet",
      .groups = spec.groups,
      .workers = spec.groups * spec.workers_per_group,
      .steps = steps,
      .wall_s = std::chrono::duration<double>((*fleet)->lastCompletion() - first).count(),
      .window = "all joined, first answer -> last GroupCompleted",
      .dispatch = summarize((*fleet)->dispatchMs()),
      .join_s = join_s,
      .reads = std::string(sourceName(spec.source))};
  result.completions_per_s = result.wall_s > 0 ? steps / result.wall_s : 0;
  if (coordinator_before && coordinator_after) {
    result.coordinator_cpu_s = cpuSeconds(*coordinator_after) - cpuSeconds(*coordinator_before);
  }
  if (bench_before && bench_after) {
    result.bench_cpu_s = cpuSeconds(*bench_after) - cpuSeconds(*bench_before);
  }
  return result;
}

}  // namespace td::bench
