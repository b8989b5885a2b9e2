#include "benchmarks/report.h"

#include <fmt/format.h>

#include <optional>

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

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(ch));
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string number(double value) { return fmt::format("{:.3f}", value); }
std::string number(std::optional<double> value) { return value ? number(*value) : "null"; }

std::string caseJson(const BenchReport& report, const CaseResult& c) {
  std::string out = fmt::format(
      "{{\"kind\":{},\"groups\":{},\"workers\":{},\"steps\":{},\"wall_s\":{},"
      "\"completions_per_s\":{},\"window\":{}",
      quoted(c.kind), c.groups, c.workers, c.steps, number(c.wall_s), number(c.completions_per_s),
      quoted(c.window));
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

std::string settingsJson(const BenchOptions& o) {
  return fmt::format(
      "{{\"topic_prefix\":{},\"partitions\":{},\"warmup\":{},\"workers\":{},\"steps\":{},"
      "\"real_steps\":{},\"report_started\":{},\"coordinator_log_level\":{},"
      "\"time_limit_s\":{},\"producer\":\"linger.ms=1 enable.idempotence=true\","
      "\"reader\":\"fetch.wait.max.ms=5 fetch.error.backoff.ms=10\",\"overrides\":{}}}",
      quoted(o.topic_prefix), o.partitions, o.warmup, o.workers, o.steps, o.real_steps,
      o.report_started ? "true" : "false", quoted(o.coordinator_log_level), o.time_limit.count(),
      quoted(overridesText(o)));
}

std::string machineJson(const MachineFacts& m) {
  return fmt::format(
      "{{\"nproc\":{},\"memory_mib\":{},\"cpu_model\":{},\"kernel\":{},\"load_average_1m\":{}}}",
      m.nproc, m.memory_mib, quoted(m.cpu_model), quoted(m.kernel), number(m.load_average_1m));
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
  out += fmt::format("td-coordinator ready after {:.2f} s\n\n", report.coordinator_ready_s);
  out += fmt::format("{:<18} {:<10} {:>6} {:>7} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9}\n", "case",
                     "kind", "groups", "workers", "steps", "wall s", "steps/s", "disp p50",
                     "disp p99", "p99/floor");
  for (const auto& c : report.cases) {
    const auto ratio = dispatchOverFloor(report, c);
    out += fmt::format("{:<18} {:<10} {:>6} {:>7} {:>6} {:>7.2f} {:>8.0f} {:>9} {:>9} {:>9}\n",
                       c.name, c.kind, c.groups, c.workers, c.steps, c.wall_s, c.completions_per_s,
                       optionalMs(c.dispatch, &LatencySummary::p50_ms),
                       optionalMs(c.dispatch, &LatencySummary::p99_ms),
                       ratio ? fmt::format("{:.2f}", *ratio) : "-");
  }
  out +=
      "\nwall s: simulated = first StepAssigned -> last GroupCompleted; td-worker = first\n"
      "spawn -> last exit (includes process start-up). dispatch = a worker's StepFinished\n"
      "produced -> its next StepAssigned received, in ms.\n";
  if (report.makespan) out += makespanTable(*report.makespan);   // MAKESPAN (issue 7)
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
      "\"coordinator_ready_s\":{},\"broker\":{},\"settings\":{},\"machine\":{}{}}}\n",
      number(report.floor.p50_ms), number(report.floor.p90_ms), number(report.floor.p99_ms),
      number(report.floor.max_ms), report.floor.samples,
      dispatch ? number(dispatch->p50_ms) : "null", dispatch ? number(dispatch->p99_ms) : "null",
      main_case != nullptr ? number(dispatchOverFloor(report, *main_case)) : "null", rates, cases,
      number(report.coordinator_ready_s), quoted(report.broker), settingsJson(report.options),
      machineJson(report.machine),
      // MAKESPAN (issue 7): makespan_over_bound (with history) and the case's details.
      report.makespan ? fmt::format(",\"makespan_over_bound\":{},\"makespan\":{}",
                                    number(report.makespan->makespanOverBound()),
                                    makespanJson(*report.makespan))
                      : std::string(",\"makespan_over_bound\":null"));
}

}  // namespace td::bench
