#include "benchmarks/report.h"

#include <fmt/format.h>

#include <functional>
#include <optional>

#include "common/json.h"

namespace td::bench {

namespace {
const CaseResult* findCase(const BenchReport& report, const std::string& name) {
  for (const auto& c : report.cases) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::optional<double> dispatchOverFloor(const BenchReport& report, const CaseResult& c) {
  if (!c.dispatch || report.floor.p99_ms <= 0) return std::nullopt;
  return c.dispatch->p99_ms / report.floor.p99_ms;
}

std::string quoted(const std::string& text) { return td::jsonQuoted(text); }

std::string number(double value) { return fmt::format("{:.3f}", value); }
std::string number(std::optional<double> value) { return value ? number(*value) : "null"; }

std::string caseJson(const BenchReport& report, const CaseResult& c) {
  std::string out = fmt::format(
      "{{\"kind\":{},\"groups\":{},\"workers\":{},\"steps\":{},\"wall_s\":{},"
      "\"completions_per_s\":{},\"window\":{}",
      quoted(c.kind), c.groups, c.workers, c.steps, number(c.wall_s), number(c.completions_per_s),
      quoted(c.window));
  if (c.join_s) {
    out += fmt::format(",\"join_s\":{},\"reads\":{},\"coordinator_cpu_s\":{},\"bench_cpu_s\":{}",
                       number(*c.join_s), quoted(c.reads), number(c.coordinator_cpu_s),
                       number(c.bench_cpu_s));
  }
  if (c.dispatch) {
    const auto& d = *c.dispatch;
    out += fmt::format(
        ",\"dispatch_samples\":{},\"dispatch_mean_ms\":{},\"dispatch_p50_ms\":{},"
        "\"dispatch_p90_ms\":{},\"dispatch_p99_ms\":{},\"dispatch_max_ms\":{},"
        "\"dispatch_p99_over_floor_p99\":{}",
        d.samples, number(d.mean_ms), number(d.p50_ms), number(d.p90_ms), number(d.p99_ms),
        number(d.max_ms), number(dispatchOverFloor(report, c)));
  }
  return out + "}";
}

// "k=v k=v" of the -X overrides, or "" when there are none.
std::string overridesText(const BenchOptions& o) {
  std::string out;
  for (const auto& [key, value] : o.kafka) out += (out.empty() ? "" : " ") + key + "=" + value;
  return out;
}

std::string intList(const std::vector<int>& values) {
  std::string out;
  for (const int v : values) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

std::string quotedList(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ",") + quoted(v);
  return out;
}

std::string topicFloorJson(const ScalingResult& r) {
  if (!r.topic_floor) return "null";
  const TopicFloor& f = *r.topic_floor;
  return fmt::format(
      "{{\"topics\":{},\"partitions\":{},\"rss_bytes_per_topic\":{},"
      "\"trimmed_rss_bytes_per_topic\":{},\"heap_bytes_per_topic\":{}}}",
      f.topics, f.partitions, number(f.rss_bytes_per_topic), number(f.trimmed_rss_bytes_per_topic),
      number(f.heap_bytes_per_topic));
}

std::string scalingJson(const ScalingResult& r) {
  return fmt::format(
      "{{\"groups\":{},\"groups_joined\":{},\"steps_per_group\":{},\"reads\":{},\"schema_bytes\":{}"
      ","
      "\"registration_bytes\":{},\"join_s\":{},\"fleet_add_s\":{},\"rss_before\":{},"
      "\"rss_after\":{},\"rss_after_window\":{},\"rss_bytes_per_group\":{},"
      "\"core_bytes_per_group\":{},\"idle_cpu_ms_per_s\":{},\"quota_per_group\":{},"
      "\"window_started\":{},\"window_finished\":{},\"window_heartbeats\":{},"
      "\"window_inputs\":{},\"window_s\":{},"
      "\"cpu_window_ms\":{},\"cpu_window_stat_ms\":{},\"cpu_us_per_event\":{},"
      "\"inputs_per_s\":{},\"error\":{},\"rss_after_idle\":{},"
      "\"rss_bytes_per_group_settled\":{},\"topic_floor\":{},\"topic_floor_error\":{}}}",
      r.groups, r.groups_joined, r.steps_per_group, quoted(r.reads), r.schema_bytes,
      r.registration_bytes, number(r.join_s), number(r.add_s), r.rss_before, r.rss_after,
      r.rss_after_window, number(r.rss_bytes_per_group), number(r.core_bytes_per_group),
      number(r.idle_cpu_ms_per_s), r.quota_per_group, r.window_started, r.window_finished,
      r.window_heartbeats, r.window_inputs, number(r.window_s), number(r.cpu_window_ms),
      number(r.cpu_window_stat_ms), number(r.cpu_us_per_event), number(r.events_per_s),
      r.error.empty() ? "null" : quoted(r.error), r.rss_after_idle,
      number(r.rss_bytes_per_group_settled), topicFloorJson(r),
      r.topic_floor_error.empty() ? "null" : quoted(r.topic_floor_error));
}

// {"10": f(size 10), ...} over the scaling sizes.
std::string bySize(const BenchReport& report,
                   const std::function<std::string(const ScalingResult&)>& value) {
  std::string out;
  for (const auto& r : report.scaling) {
    out += fmt::format("{}\"{}\":{}", out.empty() ? "" : ",", r.groups, value(r));
  }
  return "{" + out + "}";
}

std::string failuresJson(const BenchReport& report) {
  std::string out;
  for (const auto& f : report.failures) out += (out.empty() ? "" : ",") + quoted(f);
  return out;
}

std::string settingsJson(const BenchOptions& o, int fetch_wait_ms) {
  return fmt::format(
      "{{\"topic_prefix\":{},\"partitions\":{},\"warmup\":{},\"workers\":{},\"steps\":{},"
      "\"real_steps\":{},\"report_started\":{},\"coordinator_log_level\":{},"
      "\"coordinator_args\":[{}],"
      "\"time_limit_s\":{},\"producer\":\"linger.ms=1 enable.idempotence=true\","
      "\"reader\":\"fetch.wait.max.ms={} fetch.error.backoff.ms=10\",\"overrides\":{},"
      "\"produce_records\":{},\"produce_bytes\":{},\"dispatch_steps\":{},"
      "\"matrix_workers\":[{}],\"matrix_groups\":[{}],\"matrix_max_peers\":{},"
      "\"matrix_steps_per_peer\":{},\"fleet_source\":{},\"auto_assign_max_groups\":{},"
      "\"scaling_groups\":[{}],\"scaling_steps\":{},\"scaling_window\":{},"
      "\"scaling_lease_ms\":{},\"scaling_heartbeat_ms\":{},\"scaling_log_level\":{},"
      "\"scaling_families\":{},\"idle_groups\":{},\"idle_workers\":{},\"idle_seconds\":{}}}",
      quoted(o.topic_prefix), o.partitions, o.warmup, o.workers, o.steps, o.real_steps,
      o.report_started ? "true" : "false", quoted(o.coordinator_log_level),
      quotedList(o.coordinator_args), o.time_limit.count(), fetch_wait_ms,
      quoted(overridesText(o)), o.produce_records, o.produce_bytes, o.dispatch_steps,
      intList(o.matrix_workers), intList(o.matrix_groups), o.matrix_max_peers, o.matrix_steps,
      quoted(o.fleet_source), o.auto_assign_max_groups, intList(o.scaling_groups), o.scaling_steps,
      o.scaling_window, o.scaling_lease_ms, o.scaling_heartbeat_ms, quoted(o.scaling_log_level),
      o.scaling_families, o.idle_groups, o.idle_workers, o.idle_seconds);
}

std::string idleJson(const IdleResult& r) {
  std::string workers;
  for (const double pct : r.worker_cpu_pct) workers += (workers.empty() ? "" : ",") + number(pct);
  return fmt::format(
      "{{\"groups\":{},\"td_workers\":{},\"window_s\":{},\"coordinator_cpu_pct\":{},"
      "\"worker_cpu_pct_mean\":{},\"worker_cpu_pct_max\":{},\"worker_cpu_pct\":[{}],"
      "\"bench_cpu_pct\":{},\"fleet_heartbeats\":{}}}",
      r.groups, r.workers, number(r.window_s), number(r.coordinator_cpu_pct),
      number(r.worker_cpu_pct_mean), number(r.worker_cpu_pct_max), workers,
      number(r.bench_cpu_pct), r.fleet_heartbeats);
}

std::string idleTable(const IdleResult& r, const std::string& broker) {
  return fmt::format(
      "\nidle: {} open groups ({} td-workers in one, their steps sleeping; the rest one "
      "simulated peer each, heartbeating), {:.1f} s, % of one core:\n"
      "  td-coordinator {:.2f}   td-worker mean {:.2f}, max {:.2f}   td-bench {:.2f}{}\n",
      r.groups, r.workers, r.window_s, r.coordinator_cpu_pct, r.worker_cpu_pct_mean,
      r.worker_cpu_pct_max, r.bench_cpu_pct,
      broker.starts_with("embedded") ? " (the fleet and the embedded broker)" : " (the fleet)");
}

std::string machineJson(const MachineFacts& m) {
  return fmt::format(
      "{{\"nproc\":{},\"memory_mib\":{},\"cpu_model\":{},\"kernel\":{},\"load_average_1m\":{}}}",
      m.nproc, m.memory_mib, quoted(m.cpu_model), quoted(m.kernel), number(m.load_average_1m));
}

std::string scalingTable(const BenchReport& report) {
  std::string out = fmt::format(
      "\nscaling (fresh td-coordinator per size, --log-level {}, one peer per group):\n"
      "{:>7} {:>7} {:>9} {:>9} {:>11} {:>10} {:>11} {:>9} {:>8} {:>8} {:>9} {:>9}  {}\n",
      report.options.scaling_log_level, "groups", "join s", "RSS B/grp", "settled", "floor B/tpc",
      "core B/grp", "idle ms/s", "inputs", "window s", "inputs/s", "CPU ms", "us/input", "reads");
  for (const auto& r : report.scaling) {
    out += fmt::format(
        "{:>7} {:>7.2f} {:>9.0f} {:>9.0f} {:>11} {:>10.0f} {:>11.1f} {:>9} {:>8.2f} {:>8.0f} "
        "{:>9.1f} {:>9.1f}  {}\n",
        r.groups, r.join_s, r.rss_bytes_per_group, r.rss_bytes_per_group_settled,
        r.topic_floor ? fmt::format("{:.0f}", r.topic_floor->trimmed_rss_bytes_per_topic) : "-",
        r.core_bytes_per_group, r.idle_cpu_ms_per_s, r.window_inputs, r.window_s, r.events_per_s,
        r.cpu_window_ms, r.cpu_us_per_event, r.reads);
    if (!r.error.empty()) {
      out += fmt::format("        failed ({} of {} groups joined): {}\n", r.groups_joined, r.groups,
                         r.error);
    }
  }
  if (!report.scaling.empty()) {
    const auto& r = report.scaling.front();
    out += fmt::format("schema: {} steps, {} bytes serialized ({} bytes per registration record)\n",
                       r.steps_per_group, r.schema_bytes, r.registration_bytes);
  }
  return out;
}

std::string optionalMs(const std::optional<LatencySummary>& d, double LatencySummary::*field) {
  return d ? fmt::format("{:.2f}", (*d).*field) : "-";
}
}  // namespace

std::string formatTable(const BenchReport& report) {
  const auto& m = report.machine;
  std::string out =
      fmt::format("machine: {} CPUs ({}), {} MiB, {}, load {:.2f} at start\nbroker:  {}\n", m.nproc,
                  m.cpu_model.empty() ? "?" : m.cpu_model, m.memory_mib, m.kernel,
                  m.load_average_1m, report.broker);
  if (const auto overrides = overridesText(report.options); !overrides.empty()) {
    out += "-X:      " + overrides + " (every client)\n";
  }
  const auto& f = report.floor;
  out += fmt::format(
      "floor:   {} round trips (produce->consume->produce->consume, 2 clients): "
      "p50 {:.2f} ms  p90 {:.2f} ms  p99 {:.2f} ms  max {:.2f} ms\n",
      f.samples, f.p50_ms, f.p90_ms, f.p99_ms, f.max_ms);
  const auto& p = report.produce;
  out += fmt::format(
      "produce: {} records of {} bytes, one producer, async + one flush: {:.3f} s, "
      "{:.0f} records/s\n",
      p.records, p.record_bytes, p.seconds, p.per_s);
  out += fmt::format("td-coordinator ready after {:.2f} s\n\n", report.coordinator_ready_s);
  out += fmt::format("{:<18} {:<10} {:>6} {:>7} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7}\n",
                     "case", "kind", "groups", "workers", "steps", "wall s", "steps/s", "disp p50",
                     "disp p99", "p99/floor", "join s");
  for (const auto& c : report.cases) {
    const auto ratio = dispatchOverFloor(report, c);
    out += fmt::format(
        "{:<18} {:<10} {:>6} {:>7} {:>6} {:>7.2f} {:>8.0f} {:>9} {:>9} {:>9} {:>7}{}\n", c.name,
        c.kind, c.groups, c.workers, c.steps, c.wall_s, c.completions_per_s,
        optionalMs(c.dispatch, &LatencySummary::p50_ms),
        optionalMs(c.dispatch, &LatencySummary::p99_ms),
        ratio ? fmt::format("{:.2f}", *ratio) : "-",
        c.join_s ? fmt::format("{:.2f}", *c.join_s) : "-",
        c.reads.empty() ? ""
                        : fmt::format("  {}, CPU s: coordinator {:.2f}, td-bench {:.2f}", c.reads,
                                      c.coordinator_cpu_s.value_or(0), c.bench_cpu_s.value_or(0)));
  }
  out +=
      "\nwall s: simulated = first StepAssigned -> last GroupCompleted; fleet = first answer\n"
      "(all peers joined) -> last GroupCompleted; td-worker = first spawn -> last exit\n"
      "(includes process start-up). dispatch = a worker's StepFinished produced -> its next\n"
      "StepAssigned received, in ms. join s = fleet registrations -> every group assigned.\n";
  if (!report.scaling.empty()) out += scalingTable(report);
  if (report.makespan) out += makespanTable(*report.makespan);   // MAKESPAN (issue 7)
  if (report.idle) out += idleTable(*report.idle, report.broker);
  return out;
}

std::string formatJson(const BenchReport& report) {
  const CaseResult* main_case = findCase(report, "one_group");
  const LatencySummary* dispatch =
      main_case != nullptr && main_case->dispatch ? &*main_case->dispatch : nullptr;
  std::string rates, cases;
  for (const auto& c : report.cases) {
    const char* sep = rates.empty() ? "" : ",";
    rates += fmt::format("{}{}:{}", sep, quoted(c.name), number(c.completions_per_s));
    cases += fmt::format("{}{}:{}", sep, quoted(c.name), caseJson(report, c));
  }
  return fmt::format(
      "{{\"floor_rtt_p50_ms\":{},\"floor_rtt_p90_ms\":{},\"floor_rtt_p99_ms\":{},"
      "\"floor_rtt_max_ms\":{},\"floor_round_trips\":{},"
      "\"dispatch_case\":\"one_group\",\"dispatch_p50_ms\":{},\"dispatch_p99_ms\":{},"
      "\"dispatch_p99_over_floor_p99\":{},\"completions_per_s\":{{{}}},\"cases\":{{{}}},"
      "\"floor_produce_per_s\":{},\"floor_produce\":{{\"records\":{},\"record_bytes\":{},"
      "\"seconds\":{}}},\"cpu_us_per_event\":{},\"rss_bytes_per_group\":{},"
      "\"core_bytes_per_group\":{},\"rss_bytes_per_group_settled\":{},"
      "\"topic_floor_bytes_per_topic\":{},\"rss_over_topic_floor_bytes_per_group\":{},"
      "\"scaling\":{},"
      "\"failures\":[{}],\"coordinator_ready_s\":{},\"broker\":{},\"settings\":{},"
      "\"machine\":{}{}{}}}\n",
      number(report.floor.p50_ms), number(report.floor.p90_ms), number(report.floor.p99_ms),
      number(report.floor.max_ms), report.floor.samples,
      dispatch ? number(dispatch->p50_ms) : "null", dispatch ? number(dispatch->p99_ms) : "null",
      main_case != nullptr ? number(dispatchOverFloor(report, *main_case)) : "null", rates, cases,
      number(report.produce.per_s), report.produce.records, report.produce.record_bytes,
      number(report.produce.seconds),
      bySize(report,
             [](const ScalingResult& r) {
               return r.window_inputs > 0 ? number(r.cpu_us_per_event) : "null";
             }),
      bySize(report,
             [](const ScalingResult& r) {
               return r.rss_after > 0 ? number(r.rss_bytes_per_group) : "null";
             }),
      bySize(report, [](const ScalingResult& r) { return number(r.core_bytes_per_group); }),
      bySize(report,
             [](const ScalingResult& r) {
               return r.rss_after_idle > 0 ? number(r.rss_bytes_per_group_settled) : "null";
             }),
      // The floor after malloc_trim, as the coordinator's settled figure is after its trim.
      bySize(report,
             [](const ScalingResult& r) {
               return r.topic_floor ? number(r.topic_floor->trimmed_rss_bytes_per_topic) : "null";
             }),
      bySize(report,
             [](const ScalingResult& r) {
               return r.topic_floor && r.rss_after_idle > 0
                          ? number(r.rss_bytes_per_group_settled -
                                   r.topic_floor->trimmed_rss_bytes_per_topic)
                          : "null";
             }),
      bySize(report, scalingJson), failuresJson(report), number(report.coordinator_ready_s),
      quoted(report.broker), settingsJson(report.options, report.fetch_wait_ms), machineJson(report.machine),
      // MAKESPAN (issue 7): makespan_over_bound (with history) and the case's details.
      report.makespan ? fmt::format(",\"makespan_over_bound\":{},\"makespan\":{}",
                                    number(report.makespan->makespanOverBound()),
                                    makespanJson(*report.makespan))
                      : std::string(",\"makespan_over_bound\":null"),
      report.idle ? fmt::format(",\"idle_coordinator_cpu_pct\":{},\"idle_worker_cpu_pct_max\":{},"
                                "\"idle\":{}",
                                number(report.idle->coordinator_cpu_pct),
                                number(report.idle->worker_cpu_pct_max), idleJson(*report.idle))
                  : std::string(",\"idle_coordinator_cpu_pct\":null,\"idle\":null"));
}

}  // namespace td::bench
