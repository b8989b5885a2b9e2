#include "benchmarks/bench.h"

#include <fmt/format.h>
#include <unistd.h>

#include <memory>
#include <random>

#include "benchmarks/floor.h"
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
};

td::Result<Broker> openBroker(const BenchOptions& options, const protocol::Topics& topics) {
  if (!options.bootstrap_servers.empty()) {
    return Broker{nullptr, options.bootstrap_servers, options.bootstrap_servers};
  }
  kafka::EmbeddedBroker::Options broker_options;
  for (const auto& topic : {topics.registrations(), topics.completions(), topics.joins(),
                            topics.events(), topics.dlq(), topics.state()}) {
    broker_options.topics.emplace_back(topic, options.partitions);
  }
  broker_options.topics.emplace_back(topics.prefix() + "bench.ping", 1);
  broker_options.topics.emplace_back(topics.prefix() + "bench.pong", 1);
  auto broker = kafka::EmbeddedBroker::start(broker_options);
  if (!broker) return std::unexpected(broker.error());
  std::string bootstrap = (*broker)->bootstrapServers();
  return Broker{std::move(*broker), std::move(bootstrap), "embedded (in td-bench)"};
}

std::string consumerGroup(const BenchOptions& options) {
  return options.consumer_group.empty() ? options.topic_prefix + "bench-coordinator"
                                        : options.consumer_group;
}

td::Result<std::unique_ptr<ChildProcess>> startCoordinator(const BenchOptions& options,
                                                           const std::string& bootstrap,
                                                           const ScratchDir& scratch) {
  // clang-format off
  std::vector<std::string> args = {options.coordinator_bin,
      "--bootstrap-server", bootstrap,
      "--topic-prefix", options.topic_prefix,
      "--consumer-group", consumerGroup(options),
      "--coordinator-id", "td-bench-coordinator",
      "--log-level", options.coordinator_log_level};
  // clang-format on
  for (const auto& [key, value] : options.kafka) {
    args.push_back("-X");
    args.push_back(key + "=" + value);
  }
  return ChildProcess::spawn(args, scratch.path() / "coordinator.log");
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
    if (!broker) return std::unexpected(broker.error());
    report_.broker = broker->description;
    log_->info("broker: {} at {}", broker->description, broker->bootstrap);
    TD_RETURN_IF_ERROR(measureFloorPhase(broker->bootstrap, topics));

    auto coordinator = startCoordinator(options_, broker->bootstrap, scratch_);
    if (!coordinator) return std::unexpected(coordinator.error());
    CaseEnv env{.bootstrap = broker->bootstrap,
                .kafka = options_.kafka,
                .topics = topics,
                .run_id = run_id_,
                .coordinator = coordinator->get(),
                .scratch = &scratch_,
                .time_limit = options_.time_limit,
                .report_started = options_.report_started};
    TD_RETURN_IF_ERROR(awaitCoordinator(env));
    TD_RETURN_IF_ERROR(runCases(env));
    if (const int code = (*coordinator)->stop(); code != 0) {
      return makeError(td::Errc::kInternal,
                       fmt::format("td-coordinator exited with {} on SIGTERM; its log ends:\n{}",
                                   code, (*coordinator)->outputTail(3000)));
    }
    return std::move(report_);
  }

 private:
  td::Status measureFloorPhase(const std::string& bootstrap, const protocol::Topics& topics) {
    log_->info("floor: {} + {} round trips", options_.warmup, options_.round_trips);
    auto rtt = measureFloor(FloorConfig{.bootstrap = bootstrap,
                                        .kafka = options_.kafka,
                                        .ping_topic = topics.prefix() + "bench.ping",
                                        .pong_topic = topics.prefix() + "bench.pong",
                                        .run_id = run_id_,
                                        .warmup = options_.warmup,
                                        .round_trips = options_.round_trips,
                                        .deadline = Clock::now() + options_.time_limit});
    if (!rtt) return std::unexpected(rtt.error());
    report_.floor = summarize(std::move(*rtt));
    log_->info("floor: p50 {:.2f} ms, p99 {:.2f} ms", report_.floor.p50_ms, report_.floor.p99_ms);
    return {};
  }

  // Ready means: a one-step group of one simulated worker went from registration to
  // GroupCompleted (which also warms the coordinator's producer and consumer).
  td::Status awaitCoordinator(const CaseEnv& env) {
    const auto start = Clock::now();
    auto probe = runSimulatedCase(
        {.name = "probe", .groups = 1, .workers_per_group = 1, .steps_per_group = 1}, env);
    if (!probe) return std::unexpected(probe.error());
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
      if (!makespan) return std::unexpected(makespan.error());
      report_.makespan = std::move(*makespan);
    }
    return {};
  }

  td::Status record(td::Result<CaseResult> result) {
    if (!result) return std::unexpected(result.error());
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
  base.time_limit = std::min(base.time_limit, std::chrono::seconds(30));
  return base;
}

td::Result<BenchReport> runBench(const BenchOptions& options) {
  auto scratch = ScratchDir::create("td-bench");
  if (!scratch) return std::unexpected(scratch.error());
  if (options.keep_logs) {
    (*scratch)->keep();
    td::log::get("bench")->info("logs and schemas in {}", (*scratch)->path().string());
  }
  auto report = Run(options, **scratch).execute();
  if (!report) {
    (*scratch)->keep();
    return makeError(report.error().code(), report.error().message() + "\n(logs kept in " +
                                                (*scratch)->path().string() + ")");
  }
  return report;
}

}  // namespace td::bench
