#include "benchmarks/options.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "common/log.h"
#include "kafka/types.h"
#include "protocol/protocol.h"

namespace td::bench {

namespace {

void addFlags(CLI::App& app, BenchOptions& o, int& seconds, std::vector<std::string>& properties) {
  app.add_option("--bootstrap-server", o.bootstrap_servers,
                 "use this Kafka (HOST:PORT[,...]) instead of an embedded broker hosted in "
                 "td-bench; it must have td.joins with as many partitions as td.registrations "
                 "(use a fresh broker or a fresh --topic-prefix)");
  app.add_option("-X", properties,
                 "librdkafka property key=value for every client of the run: td-bench's own, "
                 "td-coordinator's and td-workers' (repeatable; applied last; for experiments, "
                 "the default is the deployed settings)");
  app.add_option("--topic-prefix", o.topic_prefix, "prefix of every topic name")
      ->capture_default_str();
  app.add_option("--partitions", o.partitions,
                 "partitions of each pre-created td.* topic (embedded broker only)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--round-trips", o.round_trips, "measured floor round trips")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "floor round trips made first and not measured")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--workers,-w", o.workers,
                 "simulated workers per case, and td-worker processes in the real case")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--steps,-n", o.steps,
                 "no-op steps of the one-group case (the group-per-worker case has steps/workers "
                 "per group, the same total)")
      ->check(CLI::Range(1, static_cast<int>(protocol::kMaxSteps)))
      ->capture_default_str();
  app.add_option("--real-steps", o.real_steps,
                 "steps (running `true`) of the real td-worker case; 0 skips that case")
      ->check(CLI::Range(0, static_cast<int>(protocol::kMaxSteps)))
      ->capture_default_str();
  app.add_option("--seconds", seconds,
                 "time limit of each phase (floor, coordinator start, each case); a phase still "
                 "running after it fails the run")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_flag("!--no-group-per-worker", o.group_per_worker,
               "skip the case with one group per simulated worker");
  app.add_flag(
      "!--no-step-started", o.report_started,
      "simulated workers publish only StepFinished (td-worker also publishes StepStarted)");
  app.add_option("--coordinator-bin", o.coordinator_bin, "td-coordinator to start")
      ->capture_default_str();
  app.add_option("--worker-bin", o.worker_bin, "td-worker to start")->capture_default_str();
  app.add_option("--coordinator-log-level", o.coordinator_log_level,
                 "td-coordinator's --log-level (info logs one line per event, as deployed)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--consumer-group", o.consumer_group,
                 "td-coordinator's consumer group (default: the topic prefix + "
                 "\"bench-coordinator\"). On the embedded broker a group that had a member "
                 "before rebalances only after ~44 s (session.timeout.ms - 1 s)");
  // MAKESPAN (issue 7)
  app.add_flag("!--no-makespan", o.makespan,
               "skip the makespan case (40 steps of 10-198 ms on 4 simulated peers, run without "
               "and then with duration history)");
  app.add_flag("--keep-logs", o.keep_logs,
               "keep the scratch directory with td-coordinator's and td-workers' logs (it is "
               "always kept when a phase fails)");
}

}  // namespace

std::expected<CommandLine, int> parseCommandLine(int argc, char** argv) {
  CLI::App app{
      "td-bench: the Kafka round-trip floor, then dispatch latency and throughput "
      "through one real td-coordinator, on one broker"};
  CommandLine line;
  line.options.coordinator_bin = TD_BENCH_COORDINATOR_BIN;
  line.options.worker_bin = TD_BENCH_WORKER_BIN;
  int seconds = static_cast<int>(line.options.time_limit.count());
  bool smoke = false;
  std::string level = "info";
  std::vector<std::string> properties;
  addFlags(app, line.options, seconds, properties);
  app.add_flag("--json", line.json, "print one JSON object on stdout instead of the table");
  app.add_flag("--smoke", smoke,
               "a tiny run (a few round trips, one small group, two td-workers) that only "
               "proves every phase completes; used by CTest");
  app.add_option("--log-level", level, "td-bench's own log level (stderr)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return std::unexpected(app.exit(e) == 0 ? 0 : 2);  // --help is 0; every usage error is 2
  }
  (void)td::log::setLevel(level);  // checked by IsMember above
  auto parsed = kafka::parseProperties(properties);
  if (!parsed) {
    std::fprintf(stderr, "td-bench: -X: %s\n", parsed.error().message().c_str());
    return std::unexpected(2);
  }
  line.options.kafka = std::move(*parsed);
  line.options.time_limit = std::chrono::seconds(seconds);
  if (smoke) line.options = smokeOptions(line.options);
  return line;
}

}  // namespace td::bench
