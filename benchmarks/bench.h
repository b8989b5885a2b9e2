// td-bench's run: one broker, the floor, one td-coordinator, then the dispatch cases.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "benchmarks/cases.h"
#include "benchmarks/floor.h"
#include "benchmarks/idle.h"
#include "benchmarks/scaling.h"
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
  int produce_records = 50000;   // bare produce floor: records produced, then one flush
  int produce_bytes = 100;       // ... each this large
  int workers = 8;               // simulated workers per case, and td-worker processes
  int steps = 4000;              // steps of the one-group case; the group-per-worker case has
                                 // steps / workers per group (the same total)
  int real_steps = 200;          // steps of the td-worker case; 0 skips it
  bool group_per_worker = true;  // run the group-per-worker case
  int dispatch_steps = 400;      // steps of dispatch_w1 and dispatch_w4 (one group); 0 skips
  // The throughput matrix: cases w{W}_g{G} of G groups of W fleet peers, W in matrix_workers,
  // G in matrix_groups, skipping cells over matrix_max_peers peers; W * matrix_steps steps per
  // group. Empty lists skip it.
  std::vector<int> matrix_workers{1, 8, 64};
  std::vector<int> matrix_groups{1, 10, 1000};
  int matrix_max_peers = 1000;
  int matrix_steps = 20;  // per peer
  // Where fleets read assignments: "assign" (td.assign.<group>), "events" (td.events), or
  // "auto": assign for matrix cells of at most auto_assign_max_groups groups, else events.
  std::string fleet_source = "auto";
  int auto_assign_max_groups = 10;
  // Scaling: one fresh td-coordinator per size; empty skips it.
  std::vector<int> scaling_groups{10, 1000, 10000};
  int scaling_steps = 10;      // per group (one peer each): every group stays open
  int scaling_window = 20000;  // completions spread over the groups in the CPU window
  int scaling_lease_ms = 120000;
  int scaling_heartbeat_ms = 30000;
  std::string scaling_log_level = "warn";  // td-coordinator's --log-level there
  int scaling_idle_ms = 1500;  // idle CPU and settled RSS, before each window
  bool topic_floor = true;     // run td-topic-floor beside each scaling size
  int scaling_families = 16;   // compatibility families the scaling groups are spread over
  // Of the registrations of each size, and again of its window.
  std::chrono::seconds scaling_time_limit{300};
  bool report_started = true;    // simulated workers publish StepStarted too
  std::chrono::seconds time_limit{60};         // of each phase (floor, readiness, each case)
  std::string coordinator_bin;                 // td-coordinator to start
  std::string worker_bin;                      // td-worker to start
  std::string topic_floor_bin;                 // td-topic-floor (scaling: librdkafka's floor)
  std::string coordinator_log_level = "info";  // as deployed: one line per event
  // More flags for every td-coordinator of the run (--coordinator-arg), e.g. --exactly-once.
  std::vector<std::string> coordinator_args;
  // td-coordinator's consumer group; empty means topic_prefix + "bench-coordinator", so a fresh
  // --topic-prefix also gets a fresh group.
  std::string consumer_group;
  bool keep_logs = false;  // keep the scratch directory (logs, schemas) after the run
  bool makespan = true;    // MAKESPAN (issue 7): run the makespan case (benchmarks/makespan.h)
  // The idle case (benchmarks/idle.h): open groups (0 skips it), td-workers, measured seconds.
  int idle_groups = 100;
  int idle_workers = 8;
  int idle_seconds = 10;
};

// The smoke configuration: a few round trips, a few records, small simulated groups, a tiny
// matrix, two td-workers, and scaling with 10 groups.
BenchOptions smokeOptions(BenchOptions base);

struct BenchReport {
  MachineFacts machine;
  std::string broker;  // "embedded (in td-bench)" or the bootstrap servers
  int fetch_wait_ms = 0;   // the readers' fetch.wait.max.ms for that broker (kafka::fetchWait)
  BenchOptions options;
  LatencySummary floor;            // round-trip times
  ProduceRate produce;             // bare produce throughput
  double coordinator_ready_s = 0;  // spawn -> the probe's group completed
  // one_group first, then group_per_worker, dispatch_w1, dispatch_w4, the matrix cells,
  // real_workers.
  std::vector<CaseResult> cases;
  std::vector<ScalingResult> scaling;  // one per size, in order
  // Phases that failed without stopping the run (scaling sizes): the report is still printed,
  // and td-bench exits 1.
  std::vector<std::string> failures;
  std::optional<MakespanResult> makespan;   // MAKESPAN (issue 7): unless --no-makespan
  std::optional<IdleResult> idle;           // unless --idle-groups 0
};

// Runs everything in order. Progress goes to the "bench" logger (stderr).
// Errors: the first phase's error; the scratch directory (with td-coordinator's and the
// td-workers' logs) is then kept and named in the message. A failed scaling size does not stop
// the run: it lands in BenchReport::failures (and the scratch directory is kept).
td::Result<BenchReport> runBench(const BenchOptions& options);

}  // namespace td::bench
