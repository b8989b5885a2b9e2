#include "benchmarks/scaling.h"

#include <fmt/format.h>

#include <malloc.h>

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "benchmarks/fleet_cases.h"
#include "common/log.h"
#include "coordinator/core.h"
#include "schema/schema.h"
#include "td/v1/registrations.pb.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;

double secondsBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}
// The idle period and the CPU window (steps 2 and 3 of runScalingCase), filling `r`.
td::Status measureWindow(const ScalingCase& spec, const CaseEnv& env, Fleet& fleet,
                         const ProcessUsage& joined, ScalingResult& r) {
  const pid_t pid = env.coordinator->pid();
  const auto deadline = Clock::now() + env.time_limit;
  const auto idle_start = Clock::now();
  TD_RETURN_IF_ERROR(fleet.idle(idle_start + spec.idle));
  auto idle_end = readUsage(pid);
  if (!idle_end) return td::unexpected(idle_end.error());
  r.rss_after_idle = idle_end->rss_bytes;
  if (r.groups_joined > 0) {
    r.rss_bytes_per_group_settled =
        static_cast<double>(r.rss_after_idle - r.rss_before) / r.groups_joined;
  }
  const double idle_s = secondsBetween(idle_start, Clock::now());
  const auto cpu = cpuSeconds;
  r.idle_cpu_ms_per_s = (cpu(*idle_end) - cpu(joined)) * 1000 / idle_s;

  const FleetCounters counted = fleet.counters();
  const auto window_start = Clock::now();
  TD_RETURN_IF_ERROR(fleet.drive(Fleet::Goal::kQuotaReached, deadline));
  r.window_s = secondsBetween(window_start, Clock::now());
  auto after = readUsage(pid);
  if (!after) return td::unexpected(after.error());
  const auto& now_counted = fleet.counters();
  r.window_started = now_counted.started - counted.started;
  r.window_finished = now_counted.finished - counted.finished;
  r.window_heartbeats = now_counted.heartbeats - counted.heartbeats;
  r.window_inputs = now_counted.inputs() - counted.inputs();
  r.rss_after_window = after->rss_bytes;
  r.cpu_window_ms = (cpu(*after) - cpu(*idle_end)) * 1000;
  r.cpu_window_stat_ms = (after->cpu_stat_s - idle_end->cpu_stat_s) * 1000;
  if (r.window_inputs > 0) r.cpu_us_per_event = r.cpu_window_ms * 1000 / r.window_inputs;
  if (r.window_s > 0) r.events_per_s = r.window_inputs / r.window_s;
  return {};
}
// Heap bytes per group of an in-process Core holding one group per peer list of `peers`
// (ScalingResult::core_bytes_per_group).
double coreBytesPerGroup(const std::vector<std::vector<worker::PeerInfo>>& peers,
                         const schema::Schema& schema, const protocol::Topics& topics) {
  std::vector<coordinator::Registration> registrations;
  registrations.reserve(peers.size());
  for (std::size_t g = 0; g < peers.size(); ++g) {
    registrations.push_back(coordinator::Registration{
        .partition = static_cast<std::int32_t>(g % 16),
        .peer = worker::buildRegistration(peers[g].front(), worker::newSessionId(), schema)});
  }
  std::vector<std::string> group_ids;
  group_ids.reserve(peers.size());
  const Instant now{.mono = Millis(1'000'000), .wall = Millis(1'800'000'000'000)};
  const auto before = mallinfo2().uordblks;
  auto core = std::make_unique<coordinator::Core>(coordinator::CoreConfig{.topics = topics});
  for (const auto& registration : registrations) {
    for (const auto& effect : core->handle(registration, now)) {
      if (const auto* join = std::get_if<coordinator::PublishJoin>(&effect)) {
        if (join->record.has_joined()) group_ids.push_back(join->record.joined().group_id());
      }
    }
  }
  for (const auto& id : group_ids) (void)core->encodeState(id, now, std::string_view());
  const auto after = mallinfo2().uordblks;
  const std::size_t groups = core->groupCount();
  return groups == 0 ? 0 : static_cast<double>(after - before) / static_cast<double>(groups);
}

}  // namespace

td::Result<ScalingResult> runScalingCase(const ScalingCase& spec, const CaseEnv& env) {
  const std::string name = fmt::format("scale_g{}", spec.groups);
  // A long step timeout: held steps must not time out during the run.
  auto schema = schema::parse(noopSchemaYaml("bench-" + name, spec.steps_per_group, "true", "1h"),
                              "td-bench:" + name);
  if (!schema) return td::unexpected(schema.error());
  ScalingResult r{.groups = spec.groups,
                  .steps_per_group = spec.steps_per_group,
                  .reads = std::string(sourceName(spec.source))};
  r.quota_per_group =
      std::max(1, std::min(spec.steps_per_group - 1, spec.window_completions / spec.groups));
  auto peers = fleetPeers(env, name, spec.groups, 1, spec.families);
  r.core_bytes_per_group = coreBytesPerGroup(peers, *schema, env.topics);
  {
    const auto registration =
        worker::buildRegistration(peers.front().front(), worker::newSessionId(), *schema);
    for (const auto& step : registration.steps()) r.schema_bytes += step.ByteSizeLong();
    td::v1::RegistrationRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    *record.mutable_registered() = registration;
    r.registration_bytes = record.ByteSizeLong();
  }
  auto fleet = Fleet::create(FleetConfig{.bootstrap = env.bootstrap,
                                         .kafka = env.kafka,
                                         .broker_kind = env.broker_kind,
                                         .topics = env.topics,
                                         .source = spec.source,
                                         .groups = std::move(peers),
                                         .schema = &*schema,
                                         .report_started = env.report_started,
                                         .quota_per_group = r.quota_per_group,
                                         .check = [&env] { return coordinatorAlive(env); }});
  if (!fleet) return td::unexpected(fleet.error());
  const pid_t pid = env.coordinator->pid();
  const auto deadline = Clock::now() + env.time_limit;

  auto before = readUsage(pid);
  if (!before) return td::unexpected(before.error());
  const auto join_start = Clock::now();
  const auto joined_status = (*fleet)->join(deadline);
  r.join_s = secondsBetween(join_start, Clock::now());
  r.add_s = (*fleet)->addSeconds();
  r.groups_joined = static_cast<int>((*fleet)->groupsAssigned());
  auto joined = readUsage(pid);
  if (!joined) return td::unexpected(joined.error());
  r.rss_before = before->rss_bytes;
  r.rss_after = joined->rss_bytes;
  if (r.groups_joined > 0) {
    r.rss_bytes_per_group = static_cast<double>(r.rss_after - r.rss_before) / r.groups_joined;
  }
  td::log::get("bench")->info("{}: {} of {} groups joined in {:.2f} s; RSS {} -> {} bytes", name,
                              r.groups_joined, spec.groups, r.join_s, r.rss_before, r.rss_after);
  if (!joined_status) {
    r.error = joined_status.error().message();
    return r;
  }
  if (auto status = measureWindow(spec, env, **fleet, *joined, r); !status) {
    r.error = status.error().message();
  }
  return r;
}

namespace {
// The number after "\"key\":" in `line`, or nullopt.
std::optional<double> jsonNumber(const std::string& line, const std::string& key) {
  const std::string needle = "\"" + key + "\":";
  const auto at = line.find(needle);
  if (at == std::string::npos) return std::nullopt;
  try {
    return std::stod(line.substr(at + needle.size()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}
}  // namespace

td::Result<TopicFloor> measureTopicFloor(const TopicFloorSpec& spec) {
  std::vector<std::string> args = {spec.bin,
                                   "--bootstrap-server", spec.bootstrap,
                                   "--topics", std::to_string(spec.topics),
                                   "--partitions", std::to_string(spec.partitions),
                                   "--prefix", spec.prefix};
  for (const auto& [key, value] : spec.kafka) {
    args.push_back("-X");
    args.push_back(key + "=" + value);
  }
  auto child = ChildProcess::spawn(args, spec.log);
  if (!child) return td::unexpected(child.error());
  const auto code = (*child)->waitFor(spec.time_limit);
  if (!code) {
    return makeError(td::Errc::kTimeout,
                     fmt::format("td-topic-floor still running after {} s",
                                 std::chrono::duration_cast<std::chrono::seconds>(spec.time_limit)
                                     .count()));
  }
  const std::string tail = (*child)->outputTail(4000);
  if (*code != 0) {
    return makeError(td::Errc::kInternal,
                     fmt::format("td-topic-floor exited with {}: {}", *code, tail));
  }
  const auto line_at = tail.rfind("{\"topics\":");
  if (line_at == std::string::npos) {
    return makeError(td::Errc::kInternal, "td-topic-floor printed no figures: " + tail);
  }
  const std::string line = tail.substr(line_at);
  TopicFloor floor{.topics = spec.topics, .partitions = spec.partitions};
  const auto rss = jsonNumber(line, "rss_bytes_per_topic");
  const auto trimmed = jsonNumber(line, "trimmed_rss_bytes_per_topic");
  const auto heap = jsonNumber(line, "heap_bytes_per_topic");
  if (!rss || !trimmed || !heap) {
    return makeError(td::Errc::kInternal, "td-topic-floor's figures are incomplete: " + line);
  }
  floor.rss_bytes_per_topic = *rss;
  floor.trimmed_rss_bytes_per_topic = *trimmed;
  floor.heap_bytes_per_topic = *heap;
  return floor;
}

}  // namespace td::bench
