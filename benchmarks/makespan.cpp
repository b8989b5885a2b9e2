#include "benchmarks/makespan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <set>

#include "benchmarks/background_task.h"
#include "benchmarks/sim_worker.h"
#include "common/log.h"
#include "schema/schema.h"

namespace td::bench {

namespace {

double msBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::string stepId(std::size_t index) { return fmt::format("s{}", index + 1); }

std::string schemaYaml(const std::string& name, std::size_t steps) {
  std::string yaml =
      fmt::format("name: {}\ndefaults: {{timeout: 1m, max_attempts: 1}}\nsteps:\n", name);
  for (std::size_t i = 0; i < steps; ++i) yaml += fmt::format("  - {{id: {}, run: 'true'}}\n", stepId(i));
  return yaml;
}

// Greedy list scheduling with instant dispatch: each step, in `order`, to the least loaded peer.
double greedyMakespan(std::vector<double> order, int peers) {
  std::vector<double> load(static_cast<std::size_t>(peers), 0.0);
  for (double d : order) *std::min_element(load.begin(), load.end()) += d;
  return *std::max_element(load.begin(), load.end());
}

worker::PeerInfo peerOf(const CaseEnv& env, int run, int index, std::uint32_t prefetch) {
  worker::PeerInfo peer;
  peer.prefetch = prefetch;
  peer.peer_id = fmt::format("makespan-r{}-w{}-{}", run, index, env.run_id);
  td::v1::RepoState repo;
  repo.set_repository("bench://app");
  repo.set_base_ref("main");
  repo.set_change_ref(fmt::format("makespan-change-{}", run));   // one group per run
  peer.repos.push_back(std::move(repo));
  peer.remote_cache_id = "td-bench-" + env.run_id + "-makespan";
  peer.pipeline = "td-bench";
  return peer;
}

td::Result<MakespanRun> runGroup(const MakespanCase& spec, const schema::Schema& schema,
                                 const std::map<std::string, std::chrono::milliseconds>& sleeps,
                                 int run, std::uint32_t prefetch, double bound,
                                 const CaseEnv& env) {
  StartGate gate(spec.peers);
  std::vector<SimWorkerConfig> configs;
  for (int w = 0; w < spec.peers; ++w) {
    configs.push_back(SimWorkerConfig{
        .bootstrap = env.bootstrap,
        .kafka = env.kafka,
                .broker_kind = env.broker_kind,
.topics = env.topics,
        .peer = peerOf(env, run, w, prefetch),
        .schema = &schema,
        .gate = &gate,
        .report_started = env.report_started,
        .join_timeout = env.time_limit,
        .idle_timeout = env.time_limit,
        .step_duration = [&sleeps](const std::string& step) { return sleeps.at(step); }});
  }
  std::vector<std::unique_ptr<SimTask>> tasks;
  for (const auto& config : configs) {
    tasks.push_back(std::make_unique<SimTask>(
        [&config](std::stop_token stop) { return runSimWorker(config, stop); }));
  }
  TD_RETURN_IF_ERROR(awaitAll(tasks, env, "makespan"));

  MakespanRun out;
  std::optional<SteadyTime> first;
  const SimWorkerOutcome* critical = nullptr;
  std::set<std::string> groups;
  std::multiset<std::string> ran;
  double gaps = 0;
  std::size_t gap_count = 0;
  for (auto& task : tasks) {
    const SimWorkerOutcome& o = *task->result();
    groups.insert(o.group_id);
    ran.insert(o.steps_run.begin(), o.steps_run.end());
    if (!o.steps_run.empty()) out.first_steps.push_back(o.steps_run.front());
    if (o.first_assignment && (!first || *o.first_assignment < *first)) first = o.first_assignment;
    if (o.last_finished && (critical == nullptr || *o.last_finished > *critical->last_finished)) {
      critical = &o;
    }
    out.busy_makespan_ms = std::max(out.busy_makespan_ms, o.busy_ms);
    gaps += std::accumulate(o.dispatch_ms.begin(), o.dispatch_ms.end(), 0.0);
    gap_count += o.dispatch_ms.size();
  }
  if (groups.size() != 1 || ran.size() != schema.steps.size() || critical == nullptr || !first ||
      std::set<std::string>(ran.begin(), ran.end()).size() != ran.size()) {
    return makeError(td::Errc::kInternal,
                     fmt::format("makespan run {}: {} groups, {} step runs of {} distinct steps, "
                                 "expected one group running each of {} steps once",
                                 run, groups.size(), ran.size(),
                                 std::set<std::string>(ran.begin(), ran.end()).size(),
                                 schema.steps.size()));
  }
  std::sort(out.first_steps.begin(), out.first_steps.end());
  out.group_id = *groups.begin();
  out.makespan_ms = msBetween(*first, *critical->last_finished);
  out.over_bound = out.makespan_ms / bound;
  out.busy_over_bound = out.busy_makespan_ms / bound;
  out.critical_gaps_ms =
      std::accumulate(critical->dispatch_ms.begin(), critical->dispatch_ms.end(), 0.0);
  out.critical_start_ms = msBetween(*first, *critical->first_assignment);
  out.critical_dispatches = static_cast<int>(critical->dispatch_ms.size());
  out.mean_gap_ms = gap_count > 0 ? gaps / static_cast<double>(gap_count) : 0;
  return out;
}

std::string num(double v) { return fmt::format("{:.3f}", v); }

std::string runJson(const MakespanRun& r) {
  std::string first;
  for (const auto& s : r.first_steps) first += (first.empty() ? "\"" : ",\"") + s + "\"";
  return fmt::format(
      "{{\"group\":\"{}\",\"makespan_ms\":{},\"over_bound\":{},\"busy_makespan_ms\":{},"
      "\"busy_over_bound\":{},\"critical_peer_gaps_ms\":{},\"critical_peer_start_ms\":{},"
      "\"critical_peer_dispatches\":{},\"mean_gap_ms\":{},\"first_steps\":[{}]}}",
      r.group_id, num(r.makespan_ms), num(r.over_bound), num(r.busy_makespan_ms),
      num(r.busy_over_bound), num(r.critical_gaps_ms), num(r.critical_start_ms),
      r.critical_dispatches, num(r.mean_gap_ms), first);
}

std::string runLine(const char* name, const MakespanRun& r) {
  return fmt::format(
      "  {:<9} makespan {:7.1f} ms = {:.3f} x bound; busiest peer {:6.1f} ms = {:.3f} x; "
      "critical peer: {:.1f} ms in {} gaps + {:.1f} ms late start (mean gap {:.1f} ms); "
      "first steps {}\n",
      name, r.makespan_ms, r.over_bound, r.busy_makespan_ms, r.busy_over_bound,
      r.critical_gaps_ms, r.critical_dispatches, r.critical_start_ms, r.mean_gap_ms,
      fmt::join(r.first_steps, ","));
}

}  // namespace

std::vector<std::chrono::milliseconds> makespanDurations() {
  std::vector<std::chrono::milliseconds> out;
  for (int i = 0; i < 40; ++i) {
    out.emplace_back(10 + std::lround(188.0 * i / 39.0));
  }
  return out;
}

td::Result<MakespanResult> runMakespanCase(const MakespanCase& spec, const CaseEnv& env) {
  auto log = td::log::get("bench");
  // Its own schema name per run: an outside broker's td.step-stats may hold an earlier run's.
  auto schema = schema::parse(schemaYaml("bench-makespan-" + env.run_id, spec.durations.size()),
                              "td-bench:makespan");
  if (!schema) return td::unexpected(schema.error());
  std::map<std::string, std::chrono::milliseconds> sleeps;
  std::vector<double> ms;
  for (std::size_t i = 0; i < spec.durations.size(); ++i) {
    sleeps.emplace(stepId(i), spec.durations[i]);
    ms.push_back(static_cast<double>(spec.durations[i].count()));
  }
  MakespanResult result;
  result.peers = spec.peers;
  result.steps = static_cast<int>(ms.size());
  result.total_ms = std::accumulate(ms.begin(), ms.end(), 0.0);
  result.shortest_ms = *std::min_element(ms.begin(), ms.end());
  result.longest_ms = *std::max_element(ms.begin(), ms.end());
  result.lower_bound_ms = std::max(result.total_ms / spec.peers, result.longest_ms);
  result.ideal_schema_order_ms = greedyMakespan(ms, spec.peers);
  std::vector<double> longest_first = ms;
  std::sort(longest_first.rbegin(), longest_first.rend());
  result.ideal_longest_first_ms = greedyMakespan(longest_first, spec.peers);

  auto fallback = runGroup(spec, *schema, sleeps, 1, 0, result.lower_bound_ms, env);
  if (!fallback) return td::unexpected(fallback.error());
  result.fallback = std::move(*fallback);
  log->info("makespan, no history: {:.1f} ms ({:.3f} x bound {:.0f} ms)",
            result.fallback.makespan_ms, result.fallback.over_bound, result.lower_bound_ms);
  auto history = runGroup(spec, *schema, sleeps, 2, 0, result.lower_bound_ms, env);
  if (!history) return td::unexpected(history.error());
  result.history = std::move(*history);
  log->info("makespan, with history: {:.1f} ms ({:.3f} x bound)", result.history.makespan_ms,
            result.history.over_bound);
  auto ahead = runGroup(spec, *schema, sleeps, 3, 1, result.lower_bound_ms, env);
  if (!ahead) return td::unexpected(ahead.error());
  result.prefetch = std::move(*ahead);
  log->info("makespan, with history and --prefetch 1: {:.1f} ms ({:.3f} x bound)",
            result.prefetch.makespan_ms, result.prefetch.over_bound);
  return result;
}

std::string makespanJson(const MakespanResult& r) {
  return fmt::format(
      "{{\"peers\":{},\"steps\":{},\"durations\":\"d_i = 10 + round(188 i / 39) ms, i = 0..{}\","
      "\"total_ms\":{},\"longest_ms\":{},\"lower_bound_ms\":{},\"ideal_schema_order_ms\":{},"
      "\"ideal_longest_first_ms\":{},\"makespan_over_bound\":{},"
      "\"fallback_makespan_over_bound\":{},\"prefetch_makespan_over_bound\":{},"
      "\"fallback\":{},\"history\":{},\"prefetch\":{}}}",
      r.peers, r.steps, r.steps - 1, num(r.total_ms), num(r.longest_ms), num(r.lower_bound_ms),
      num(r.ideal_schema_order_ms), num(r.ideal_longest_first_ms), num(r.makespanOverBound()),
      num(r.fallback.over_bound), num(r.prefetch.over_bound), runJson(r.fallback),
      runJson(r.history), runJson(r.prefetch));
}

std::string makespanTable(const MakespanResult& r) {
  return fmt::format(
             "\nmakespan: {} steps of {:.0f}-{:.0f} ms on {} peers, total {:.0f} ms, lower bound "
             "{:.0f} ms (instant dispatch: schema order {:.0f} ms, longest first {:.0f} ms)\n",
             r.steps, r.shortest_ms, r.longest_ms, r.peers, r.total_ms,
             r.lower_bound_ms, r.ideal_schema_order_ms, r.ideal_longest_first_ms) +
         runLine("fallback", r.fallback) + runLine("history", r.history) +
         runLine("prefetch", r.prefetch) +
         fmt::format("  makespan_over_bound (with history): {:.3f}; with --prefetch 1: {:.3f}\n",
                     r.makespanOverBound(), r.prefetch.over_bound);
}

}  // namespace td::bench
