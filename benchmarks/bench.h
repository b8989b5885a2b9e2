// td-bench's run: one broker, the floor, one td-coordinator, then the dispatch cases.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "benchmarks/cases.h"
#include "benchmarks/makespan.h"   // MAKESPAN (issue 7)
#include "benchmarks/stats.h"
#include "common/result.h"
#include "kafka/types.h"

namespace td::bench {

// Every field has its default here; main.cpp maps the flags onto it (see td-bench --help).
struct BenchOptions {
  std::string bootstrap_servers;  // empty: host an EmbeddedBroker in this process
  kafka::Properties kafka;        // -X: librdkafka overrides for every client of the run
  std::string topic_prefix = "td.";
  int partitions = 4;            // of td.registrations/completions/joins/events/dlq (embedded)
  int round_trips = 1000;        // measured floor round trips
  int warmup = 100;              // floor round trips before those, not measured
  int workers = 8;               // simulated workers per case, and td-worker processes
  int steps = 4000;              // steps of the one-group case; the group-per-worker case has
                                 // steps / workers per group (the same total)
  int real_steps = 200;          // steps of the td-worker case; 0 skips it
  bool group_per_worker = true;  // run the group-per-worker case
  bool report_started = true;    // simulated workers publish StepStarted too
  std::chrono::seconds time_limit{60};         // of each phase (floor, readiness, each case)
  std::string coordinator_bin;                 // td-coordinator to start
  std::string worker_bin;                      // td-worker to start
  std::string coordinator_log_level = "info";  // as deployed: one line per event
  // td-coordinator's consumer group; empty means topic_prefix + "bench-coordinator", so a fresh
  // --topic-prefix also gets a fresh group.
  std::string consumer_group;
  bool keep_logs = false;  // keep the scratch directory (logs, schemas) after the run
  bool makespan = true;    // MAKESPAN (issue 7): run the makespan case (benchmarks/makespan.h)
};

// The smoke configuration: a few round trips, one small simulated group, two td-workers.
BenchOptions smokeOptions(BenchOptions base);

struct BenchReport {
  MachineFacts machine;
  std::string broker;  // "embedded (in td-bench)" or the bootstrap servers
  BenchOptions options;
  LatencySummary floor;            // round-trip times
  double coordinator_ready_s = 0;  // spawn -> the probe's group completed
  std::vector<CaseResult> cases;   // one_group first, then group_per_worker, real_workers
  std::optional<MakespanResult> makespan;   // MAKESPAN (issue 7): unless --no-makespan
};

// Runs everything in order. Progress goes to the "bench" logger (stderr).
// Errors: the first phase's error; the scratch directory (with td-coordinator's and the
// td-workers' logs) is then kept and named in the message.
td::Result<BenchReport> runBench(const BenchOptions& options);

}  // namespace td::bench
