#include "benchmarks/options.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "common/log.h"
#include "config/version.h"
#include "kafka/types.h"
#include "protocol/protocol.h"

namespace td::bench {

namespace {

// The flags of the phases added for issue 7: produce floor, dispatch, matrix, scaling.
void addPhaseFlags(CLI::App& app, BenchOptions& o) {
  app.add_option("--produce-records", o.produce_records,
                 "records of the bare produce floor (one producer, async, one flush); 0 skips it")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  app.add_option("--produce-bytes", o.produce_bytes, "value size of those records")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--dispatch-steps", o.dispatch_steps,
                 "steps of the dispatch_w1 and dispatch_w4 cases (one group of 1 and of 4 "
                 "simulated workers); 0 skips them")
      ->check(CLI::Range(0, static_cast<int>(protocol::kMaxSteps)))
      ->capture_default_str();
  app.add_option("--matrix-workers", o.matrix_workers, "W of the matrix cells w{W}_g{G}")
      ->delimiter(',')
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--matrix-groups", o.matrix_groups, "G of the matrix cells w{W}_g{G}")
      ->delimiter(',')
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--matrix-max-peers", o.matrix_max_peers, "skip cells with more peers (W x G)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--matrix-steps", o.matrix_steps,
                 "steps per peer of a matrix cell (a group of W peers gets W x this many)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_flag_callback(
      "--no-matrix", [&o] { o.matrix_workers.clear(); }, "skip the throughput matrix");
  app.add_option("--idle-groups", o.idle_groups,
                 "open groups of the idle case (one of --idle-workers td-workers whose steps "
                 "sleep, the rest of one simulated peer each); 0 skips it")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--idle-workers", o.idle_workers, "td-worker processes of the idle case")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--idle-seconds", o.idle_seconds,
                 "how long the idle case measures each process's CPU")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--fleet-source", o.fleet_source,
                 "where fleets read assignments: assign (td.assign.<group>, as td-worker), "
                 "events (td.events), auto (assign up to --auto-assign-max-groups groups, "
                 "events above and for scaling)")
      ->check(CLI::IsMember({"auto", "assign", "events"}))
      ->capture_default_str();
  app.add_option("--auto-assign-max-groups", o.auto_assign_max_groups,
                 "with --fleet-source auto, matrix cells with more groups read td.events")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--scaling-groups", o.scaling_groups,
                 "open-group counts of the scaling phase (a fresh td-coordinator each)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_flag_callback(
      "--no-scaling", [&o] { o.scaling_groups.clear(); }, "skip the scaling phase");
  app.add_option("--scaling-steps", o.scaling_steps, "steps per scaling group (one peer each)")
      ->check(CLI::Range(2, static_cast<int>(protocol::kMaxSteps)))
      ->capture_default_str();
  app.add_option("--scaling-window", o.scaling_window,
                 "completions in the CPU window, spread evenly (at most steps - 1 per group)")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--scaling-lease-ms", o.scaling_lease_ms, "--lease-ms of scaling coordinators")
      ->check(CLI::Range(500, 3600 * 1000))
      ->capture_default_str();
  app.add_option("--scaling-heartbeat-ms", o.scaling_heartbeat_ms,
                 "--heartbeat-interval-ms of scaling coordinators")
      ->check(CLI::Range(50, 600 * 1000))
      ->capture_default_str();
  app.add_option("--scaling-log-level", o.scaling_log_level,
                 "--log-level of scaling coordinators (warn: the cost of the coordinator, not "
                 "of its log)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option_function<int>(
         "--scaling-seconds",
         [&o](int seconds) { o.scaling_time_limit = std::chrono::seconds(seconds); },
         "time limit of the registrations of each scaling size, and again of its window "
         "(default 300)")
      ->check(CLI::Range(1, 3600));
  app.add_option("--scaling-families", o.scaling_families,
                 "compatibility families (remote cache ids) the scaling groups are spread over, "
                 "so their input and td.state spread over the partitions")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--scaling-idle-ms", o.scaling_idle_ms,
                 "idle period before each window, for the coordinator's idle CPU and its settled "
                 "RSS (after it gave the join burst's freed heap back)")
      ->check(CLI::Range(0, 600000))
      ->capture_default_str();
  app.add_flag("!--no-topic-floor", o.topic_floor,
               "skip td-topic-floor (librdkafka's memory per td.assign topic alone) beside each "
               "scaling size");
}

void addFlags(CLI::App& app, BenchOptions& o, int& seconds, std::vector<std::string>& properties) {
  app.add_option("--bootstrap-server", o.bootstrap_servers,
                 "use this Kafka (HOST:PORT[,...]) instead of an embedded broker hosted in "
                 "td-bench; it creates its topics there through the Admin API (use a fresh "
                 "broker or a fresh --topic-prefix)");
  app.add_option("-X", properties,
                 "librdkafka property key=value for every client of the run: td-bench's own, "
                 "td-coordinator's and td-workers' (repeatable; applied last; for experiments, "
                 "the default is the deployed settings)");
  app.add_option("--topic-prefix", o.topic_prefix, "prefix of every topic name")
      ->capture_default_str();
  app.add_option("--partitions", o.partitions,
                 "partitions of each td.* topic it creates (on an outside broker through the "
                 "Admin API; one that exists is kept as it is)")
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
  addPhaseFlags(app, o);
  app.add_flag(
      "!--no-step-started", o.report_started,
      "simulated workers publish only StepFinished (td-worker also publishes StepStarted)");
  app.add_option("--coordinator-bin", o.coordinator_bin, "td-coordinator to start")
      ->capture_default_str();
  app.add_option("--worker-bin", o.worker_bin, "td-worker to start")->capture_default_str();
  app.add_option("--topic-floor-bin", o.topic_floor_bin,
                 "td-topic-floor, run beside each scaling size")
      ->capture_default_str();
  app.add_option("--coordinator-log-level", o.coordinator_log_level,
                 "td-coordinator's --log-level (info, as deployed: one line per group-level "
                 "event; debug adds one per step-level event)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--coordinator-arg", o.coordinator_args,
                 "a flag for every td-coordinator of the run, e.g. --coordinator-arg=--exactly-once "
                 "(repeatable; one argument each)");
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

td::Expected<CommandLine, int> parseCommandLine(int argc, char** argv) {
  CLI::App app{
      "td-bench: the Kafka round-trip floor, then dispatch latency and throughput "
      "through one real td-coordinator, on one broker"};
  CommandLine line;
  line.options.coordinator_bin = TD_BENCH_COORDINATOR_BIN;
  line.options.worker_bin = TD_BENCH_WORKER_BIN;
  line.options.topic_floor_bin = TD_BENCH_TOPIC_FLOOR_BIN;
  int seconds = static_cast<int>(line.options.time_limit.count());
  bool smoke = false;
  std::string level = "info";
  std::vector<std::string> properties;
  addFlags(app, line.options, seconds, properties);
  td::config::addVersionFlag(app, "td-bench");
  app.add_flag("--json", line.json, "print one JSON object on stdout instead of the table");
  app.add_flag("--smoke", smoke,
               "a tiny run (a few round trips and records, small groups, a 2-cell matrix, two "
               "td-workers, scaling with 10 groups) that only proves every phase completes; "
               "used by CTest");
  app.add_option("--log-level", level, "td-bench's own log level (stderr)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return td::unexpected(app.exit(e) == 0 ? 0 : 2);  // --help is 0; every usage error is 2
  }
  (void)td::log::setLevel(level);  // checked by IsMember above
  auto parsed = kafka::parseProperties(properties);
  if (!parsed) {
    std::fprintf(stderr, "td-bench: -X: %s\n", parsed.error().message().c_str());
    return td::unexpected(2);
  }
  line.options.kafka = std::move(*parsed);
  line.options.time_limit = std::chrono::seconds(seconds);
  if (smoke) line.options = smokeOptions(line.options);
  return line;
}

}  // namespace td::bench
