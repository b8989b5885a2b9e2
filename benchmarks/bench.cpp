#include "benchmarks/bench.h"

#include <fmt/format.h>
#include <unistd.h>

#include <memory>
#include <random>

#include "benchmarks/fleet_cases.h"
#include "common/log.h"
#include "kafka/kafka.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;

std::string newRunId() {
  std::random_device device;
  return fmt::format("{}-{:06x}", ::getpid(), device() & 0xffffff);
}

// Hosts the broker (unless an outside one is given) for the whole run.
struct Broker {
  std::unique_ptr<kafka::EmbeddedBroker> embedded;
  std::string bootstrap;
  std::string description;
  kafka::BrokerKind kind = kafka::BrokerKind::kEmbedded;   // what the readers are made for
};

// The td.* topics a coordinator needs under `topics`' prefix, `partitions` each.
std::vector<std::pair<std::string, int>> coordinatorTopics(const protocol::Topics& topics,
                                                           int partitions) {
  std::vector<std::pair<std::string, int>> out;
  for (const auto& topic : {topics.registrations(), topics.completions(), topics.joins(),
                            topics.events(), topics.dlq(), topics.state()}) {
    out.emplace_back(topic, partitions);
  }
  return out;
}

// Creates `topics` on an outside broker through the Admin API (one that already exists counts
// as created), as an operator would before a run: a consumer does not auto-create topics, so
// td.joins would otherwise not exist when a worker first reads it.
td::Status createOutsideTopics(const BenchOptions& options,
                               const std::vector<std::pair<std::string, int>>& topics) {
  kafka::Properties props{{"bootstrap.servers", options.bootstrap_servers}};
  props.insert(props.end(), options.kafka.begin(), options.kafka.end());
  auto admin = kafka::Admin::create(props);
  if (!admin) return td::unexpected(admin.error());
  std::vector<kafka::NewTopic> requests;
  for (const auto& [name, partitions] : topics) {
    requests.push_back({.name = name, .partitions = partitions});
  }
  for (const auto& outcome : (*admin)->createTopics(requests, std::chrono::seconds(30))) {
    if (!outcome.status) {
      return makeError(outcome.status.error().code(),
                       "create topic " + outcome.topic + ": " + outcome.status.error().message());
    }
  }
  return {};
}

td::Result<Broker> openBroker(const BenchOptions& options, const protocol::Topics& topics) {
  auto needed = coordinatorTopics(topics, options.partitions);
  needed.emplace_back(topics.prefix() + "bench.ping", 1);
  needed.emplace_back(topics.prefix() + "bench.pong", 1);
  needed.emplace_back(topics.prefix() + "bench.produce", options.partitions);
  if (!options.bootstrap_servers.empty()) {
    TD_RETURN_IF_ERROR(createOutsideTopics(options, needed));
    // As td-coordinator and td-worker learn it: from the cluster's id.
    auto producer = kafka::Producer::create(
        kafka::producerSettings(options.bootstrap_servers, "td-bench", options.kafka));
    if (!producer) return td::unexpected(producer.error());
    const auto kind = kafka::brokerKindOf((*producer)->clusterId(std::chrono::seconds(10)));
    return Broker{nullptr, options.bootstrap_servers, options.bootstrap_servers, kind};
  }
  kafka::EmbeddedBroker::Options broker_options;
  broker_options.topics = std::move(needed);
  auto broker = kafka::EmbeddedBroker::start(broker_options);
  if (!broker) return td::unexpected(broker.error());
  std::string bootstrap = (*broker)->bootstrapServers();
  return Broker{std::move(*broker), std::move(bootstrap), "embedded (in td-bench)"};
}

std::string consumerGroup(const BenchOptions& options) {
  return options.consumer_group.empty() ? options.topic_prefix + "bench-coordinator"
                                        : options.consumer_group;
}

// One td-coordinator of the run: its topics, consumer group, log level, and extra flags.
struct CoordinatorSpec {
  std::string topic_prefix;
  std::string consumer_group;
  std::string log_level;
  std::vector<std::string> extra_args;
  std::string log_name;  // in the scratch directory
};

td::Result<std::unique_ptr<ChildProcess>> startCoordinator(const BenchOptions& options,
                                                           const CoordinatorSpec& spec,
                                                           const std::string& bootstrap,
                                                           const ScratchDir& scratch) {
  // clang-format off
  std::vector<std::string> args = {options.coordinator_bin,
      "--bootstrap-server", bootstrap,
      "--topic-prefix", spec.topic_prefix,
      "--consumer-group", spec.consumer_group,
      "--coordinator-id", "td-bench-coordinator",
      "--log-level", spec.log_level};
  // clang-format on
  args.insert(args.end(), spec.extra_args.begin(), spec.extra_args.end());
  args.insert(args.end(), options.coordinator_args.begin(), options.coordinator_args.end());
  for (const auto& [key, value] : options.kafka) {
    args.push_back("-X");
    args.push_back(key + "=" + value);
  }
  return ChildProcess::spawn(args, scratch.path() / spec.log_name);
}

td::Status stopCoordinator(ChildProcess& coordinator) {
  if (const int code = coordinator.stop(); code != 0) {
    return makeError(td::Errc::kInternal,
                     fmt::format("td-coordinator exited with {} on SIGTERM; its log ends:\n{}",
                                 code, coordinator.outputTail(3000)));
  }
  return {};
}

FleetSource matrixSource(const BenchOptions& options, int groups) {
  if (options.fleet_source == "events") return FleetSource::kEvents;
  if (options.fleet_source == "assign") return FleetSource::kAssignTopics;
  return groups <= options.auto_assign_max_groups ? FleetSource::kAssignTopics
                                                  : FleetSource::kEvents;
}

FleetSource scalingSource(const BenchOptions& options) {
  return options.fleet_source == "assign" ? FleetSource::kAssignTopics : FleetSource::kEvents;
}

class Run {
 public:
  Run(const BenchOptions& options, const ScratchDir& scratch)
      : options_(options), scratch_(scratch), log_(td::log::get("bench")) {
    report_.options = options;
    report_.machine = readMachineFacts();
  }

  td::Result<BenchReport> execute() {
    const protocol::Topics topics(options_.topic_prefix);
    auto broker = openBroker(options_, topics);
    if (!broker) return td::unexpected(broker.error());
    report_.broker = broker->description;
    broker_kind_ = broker->kind;
    report_.fetch_wait_ms = static_cast<int>(kafka::fetchWait(broker_kind_).count());
    log_->info("broker: {} at {}", broker->description, broker->bootstrap);
    TD_RETURN_IF_ERROR(measureFloorPhase(broker->bootstrap, topics));
    TD_RETURN_IF_ERROR(measureProducePhase(broker->bootstrap, topics));

    auto coordinator = startCoordinator(options_,
                                        {.topic_prefix = options_.topic_prefix,
                                         .consumer_group = consumerGroup(options_),
                                         .log_level = options_.coordinator_log_level,
                                         .log_name = "coordinator.log"},
                                        broker->bootstrap, scratch_);
    if (!coordinator) return td::unexpected(coordinator.error());
    const CaseEnv env = caseEnv(broker->bootstrap, topics, coordinator->get());
    TD_RETURN_IF_ERROR(awaitCoordinator(env));
    TD_RETURN_IF_ERROR(runCases(env));
    TD_RETURN_IF_ERROR(stopCoordinator(**coordinator));
    for (const int groups : options_.scaling_groups) {
      if (auto status = scalingPhase(*broker, groups); !status) {
        log_->error("scaling {} groups failed: {}", groups, status.error().message());
        report_.failures.push_back(
            fmt::format("scaling {} groups: {}", groups, status.error().message()));
        if (report_.scaling.empty() || report_.scaling.back().groups != groups) {
          report_.scaling.push_back({.groups = groups, .error = status.error().message()});
        }
      }
    }
    return std::move(report_);
  }

 private:
  // What a case needs to run against `coordinator` on the broker at `bootstrap`.
  CaseEnv caseEnv(const std::string& bootstrap, const protocol::Topics& topics,
                  ChildProcess* coordinator) const {
    return CaseEnv{.bootstrap = bootstrap,
                   .kafka = options_.kafka,
                   .broker_kind = broker_kind_,
                   .topics = topics,
                   .run_id = run_id_,
                   .coordinator = coordinator,
                   .scratch = &scratch_,
                   .time_limit = options_.time_limit,
                   .report_started = options_.report_started};
  }
  td::Status measureFloorPhase(const std::string& bootstrap, const protocol::Topics& topics) {
    log_->info("floor: {} + {} round trips", options_.warmup, options_.round_trips);
    auto rtt = measureFloor(FloorConfig{.bootstrap = bootstrap,
                                        .kafka = options_.kafka,
                                        .broker_kind = broker_kind_,
                                        .ping_topic = topics.prefix() + "bench.ping",
                                        .pong_topic = topics.prefix() + "bench.pong",
                                        .run_id = run_id_,
                                        .warmup = options_.warmup,
                                        .round_trips = options_.round_trips,
                                        .deadline = Clock::now() + options_.time_limit});
    if (!rtt) return td::unexpected(rtt.error());
    report_.floor = summarize(std::move(*rtt));
    log_->info("floor: p50 {:.2f} ms, p99 {:.2f} ms", report_.floor.p50_ms, report_.floor.p99_ms);
    return {};
  }

  td::Status measureProducePhase(const std::string& bootstrap, const protocol::Topics& topics) {
    if (options_.produce_records <= 0) return {};
    auto rate = measureProduceRate({.bootstrap = bootstrap,
                                    .kafka = options_.kafka,
                                    .topic = topics.prefix() + "bench.produce",
                                    .records = options_.produce_records,
                                    .record_bytes = options_.produce_bytes,
                                    .deadline = Clock::now() + options_.time_limit});
    if (!rate) return td::unexpected(rate.error());
    report_.produce = *rate;
    log_->info("produce floor: {} records of {} bytes in {:.3f} s, {:.0f} records/s",
               rate->records, rate->record_bytes, rate->seconds, rate->per_s);
    return {};
  }

  // A fresh td-coordinator on fresh topics (so it restores and replays nothing) and a fresh
  // consumer group, with a long lease; measured by runScalingCase, then stopped.
  td::Status scalingPhase(const Broker& broker, int groups) {
    const protocol::Topics topics(fmt::format("{}scale{}-{}.", options_.topic_prefix, groups,
                                              run_id_));
    const auto needed = coordinatorTopics(topics, options_.partitions);
    if (broker.embedded) {
      for (const auto& [topic, partitions] : needed) {
        TD_RETURN_IF_ERROR(broker.embedded->createTopic(topic, partitions));
      }
    } else {
      TD_RETURN_IF_ERROR(createOutsideTopics(options_, needed));
    }
    log_->info("scaling {} groups: starting a td-coordinator on {}*", groups, topics.prefix());
    auto coordinator = startCoordinator(
        options_,
        {.topic_prefix = topics.prefix(),
         .consumer_group = topics.prefix() + "bench-coordinator",
         .log_level = options_.scaling_log_level,
         .extra_args = {"--lease-ms", std::to_string(options_.scaling_lease_ms),
                        "--heartbeat-interval-ms", std::to_string(options_.scaling_heartbeat_ms)},
         .log_name = fmt::format("coordinator-scale{}.log", groups)},
        broker.bootstrap, scratch_);
    if (!coordinator) return td::unexpected(coordinator.error());
    CaseEnv env = caseEnv(broker.bootstrap, topics, coordinator->get());
    auto probe = runSimulatedCase(
        {.name = "probe", .groups = 1, .workers_per_group = 1, .steps_per_group = 1}, env);
    if (!probe) return td::unexpected(probe.error());
    env.time_limit = options_.scaling_time_limit;
    auto result = runScalingCase({.groups = groups,
                                  .steps_per_group = options_.scaling_steps,
                                  .window_completions = options_.scaling_window,
                                  .source = scalingSource(options_),
                                  .families = options_.scaling_families,
                                  .idle = std::chrono::milliseconds(options_.scaling_idle_ms)},
                                 env);
    if (!result) return td::unexpected(result.error());
    const std::string error = result->error;
    log_->info(
        "scaling {} groups: joined in {:.2f} s, {:.0f} B RSS per group, idle {:.1f} ms CPU/s, "
        "window {} inputs in {:.2f} s, {:.1f} us CPU per input",
        groups, result->join_s, result->rss_bytes_per_group, result->idle_cpu_ms_per_s,
        result->window_inputs, result->window_s, result->cpu_us_per_event);
    report_.scaling.push_back(std::move(*result));
    // A failed size's coordinator is stopped (or killed) by its destructor.
    if (!error.empty()) return makeError(td::Errc::kTimeout, error);
    TD_RETURN_IF_ERROR(stopCoordinator(**coordinator));
    if (!options_.topic_floor) return {};
    return topicFloor(broker, groups, report_.scaling.back());
  }

  // librdkafka's floor beside a scaling size: td-topic-floor with as many topics as the size
  // has groups, made as td-coordinator makes td.assign topics (by the Admin API with one
  // partition under --assign-topics=admin, else by the broker on first use). Run after the
  // coordinator stopped, alone. A failure is the phase's, and also kept with the size.
  td::Status topicFloor(const Broker& broker, int groups, ScalingResult& result) {
    const auto& args = options_.coordinator_args;
    const bool admin =
        std::find(args.begin(), args.end(), "--assign-topics=admin") != args.end() ||
        std::adjacent_find(args.begin(), args.end(), [](const auto& a, const auto& b) {
          return a == "--assign-topics" && b == "admin";
        }) != args.end();
    auto floor = measureTopicFloor(
        {.bin = options_.topic_floor_bin,
         .bootstrap = broker.bootstrap,
         .kafka = options_.kafka,
         .topics = groups,
         .partitions = admin ? 1 : 0,
         .prefix = fmt::format("{}floor{}-{}.", options_.topic_prefix, groups, run_id_),
         .log = scratch_.path() / fmt::format("topic-floor-{}.log", groups),
         .time_limit = options_.scaling_time_limit});
    if (!floor) {
      result.topic_floor_error = floor.error().message();
      return td::unexpected(floor.error());
    }
    log_->info("topic floor {} topics ({} partitions): {:.0f} B RSS per topic ({:.0f} after "
               "malloc_trim), {:.0f} B heap per topic; the coordinator: {:.0f} B settled RSS "
               "per group",
               groups, floor->partitions, floor->rss_bytes_per_topic,
               floor->trimmed_rss_bytes_per_topic, floor->heap_bytes_per_topic,
               result.rss_bytes_per_group_settled);
    result.topic_floor = *floor;
    return {};
  }

  // Ready means: a one-step group of one simulated worker went from registration to
  // GroupCompleted (which also warms the coordinator's producer and consumer).
  td::Status awaitCoordinator(const CaseEnv& env) {
    const auto start = Clock::now();
    auto probe = runSimulatedCase(
        {.name = "probe", .groups = 1, .workers_per_group = 1, .steps_per_group = 1}, env);
    if (!probe) return td::unexpected(probe.error());
    report_.coordinator_ready_s = std::chrono::duration<double>(Clock::now() - start).count();
    log_->info("td-coordinator ready after {:.2f} s", report_.coordinator_ready_s);
    return {};
  }

  td::Status runCases(const CaseEnv& env) {
    const int w = options_.workers;
    TD_RETURN_IF_ERROR(record(runSimulatedCase({.name = "one_group",
                                                .groups = 1,
                                                .workers_per_group = w,
                                                .steps_per_group = options_.steps},
                                               env)));
    if (options_.group_per_worker) {
      TD_RETURN_IF_ERROR(
          record(runSimulatedCase({.name = "group_per_worker",
                                   .groups = w,
                                   .workers_per_group = 1,
                                   .steps_per_group = std::max(1, options_.steps / w)},
                                  env)));
    }
    if (options_.dispatch_steps > 0) {
      for (const int workers : {1, 4}) {
        TD_RETURN_IF_ERROR(
            record(runSimulatedCase({.name = fmt::format("dispatch_w{}", workers),
                                     .groups = 1,
                                     .workers_per_group = workers,
                                     .steps_per_group = options_.dispatch_steps},
                                    env)));
      }
    }
    for (auto spec : matrixCases(options_.matrix_workers, options_.matrix_groups,
                                 options_.matrix_max_peers, options_.matrix_steps)) {
      spec.source = matrixSource(options_, spec.groups);
      log_->info("{}: {} groups x {} fleet peers, {} steps each, reading {}", spec.name,
                 spec.groups, spec.workers_per_group, spec.steps_per_group,
                 sourceName(spec.source));
      TD_RETURN_IF_ERROR(record(runFleetCase(spec, env)));
    }
    if (options_.real_steps > 0) {
      TD_RETURN_IF_ERROR(record(runRealWorkerCase({.name = "real_workers",
                                                   .worker_bin = options_.worker_bin,
                                                   .workers = w,
                                                   .steps = options_.real_steps},
                                                  env)));
    }
    // MAKESPAN (issue 7): two groups of the 40-step schema, without and with history.
    if (options_.makespan) {
      auto makespan =
          runMakespanCase({.peers = 4, .durations = makespanDurations()}, env);
      if (!makespan) return td::unexpected(makespan.error());
      report_.makespan = std::move(*makespan);
    }
    if (options_.idle_groups > 0) {
      auto idle = runIdleCase({.worker_bin = options_.worker_bin,
                               .groups = options_.idle_groups,
                               .workers = options_.idle_workers,
                               .window = std::chrono::seconds(options_.idle_seconds),
                               .families = options_.partitions},
                              env);
      if (!idle) return td::unexpected(idle.error());
      report_.idle = std::move(*idle);
    }
    return {};
  }

  td::Status record(td::Result<CaseResult> result) {
    if (!result) return td::unexpected(result.error());
    log_->info("{}: {} steps in {:.2f} s, {:.0f} steps/s{}", result->name, result->steps,
               result->wall_s, result->completions_per_s,
               result->dispatch ? fmt::format(", dispatch p50 {:.2f} ms p99 {:.2f} ms",
                                              result->dispatch->p50_ms, result->dispatch->p99_ms)
                                : std::string());
    report_.cases.push_back(std::move(*result));
    return {};
  }

  const BenchOptions& options_;
  const ScratchDir& scratch_;
  std::shared_ptr<spdlog::logger> log_;
  std::string run_id_ = newRunId();
  kafka::BrokerKind broker_kind_ = kafka::BrokerKind::kEmbedded;
  BenchReport report_;
};
}  // namespace

BenchOptions smokeOptions(BenchOptions base) {
  base.round_trips = 20;
  base.warmup = 5;
  base.workers = 2;
  base.steps = 20;
  base.real_steps = 4;
  base.group_per_worker = false;
  base.produce_records = 2000;
  base.dispatch_steps = 8;
  base.matrix_workers = {1, 2};
  base.matrix_groups = {2};
  base.matrix_steps = 3;
  base.scaling_groups = {10};
  base.scaling_window = 40;
  base.scaling_time_limit = std::chrono::seconds(30);
  base.scaling_idle_ms = 200;
  base.idle_groups = 3;
  base.idle_workers = 2;
  base.idle_seconds = 1;
  base.time_limit = std::min(base.time_limit, std::chrono::seconds(30));
  return base;
}

td::Result<BenchReport> runBench(const BenchOptions& options) {
  auto scratch = ScratchDir::create("td-bench");
  if (!scratch) return td::unexpected(scratch.error());
  if (options.keep_logs) {
    (*scratch)->keep();
    td::log::get("bench")->info("logs and schemas in {}", (*scratch)->path().string());
  }
  auto report = Run(options, **scratch).execute();
  if (report && !report->failures.empty()) {
    (*scratch)->keep();
    td::log::get("bench")->error("logs kept in {}", (*scratch)->path().string());
  }
  if (!report) {
    (*scratch)->keep();
    return makeError(report.error().code(), report.error().message() + "\n(logs kept in " +
                                                (*scratch)->path().string() + ")");
  }
  return report;
}

}  // namespace td::bench
