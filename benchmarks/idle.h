// Idle cost (issue 16): what td-coordinator, td-worker and the broker use while nothing
// happens. `groups` groups stay open on the running td-coordinator: one of `workers` real
// td-worker processes whose steps sleep for an hour, and groups - 1 of one simulated fleet peer
// each holding its first assignment. Once every td-worker's step has started, and after a short
// settle, each process's CPU is read from /proc over `window` while the fleet only heartbeats
// (as td-worker does, at the coordinator's heartbeat interval).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "benchmarks/cases.h"

namespace td::bench {

struct IdleCase {
  std::string worker_bin;
  int groups = 100;   // open groups, the td-workers' one included
  int workers = 8;    // td-worker processes, in one group, each running one step
  std::chrono::milliseconds settle{2000};    // after the last step started, before measuring
  std::chrono::milliseconds window{10000};   // the measurement
  int families = 4;   // compatibility families the fleet's groups are spread over
};

struct IdleResult {
  int groups = 0;
  int workers = 0;
  double window_s = 0;
  // Percent of one core over the window.
  double coordinator_cpu_pct = 0;
  std::vector<double> worker_cpu_pct;   // one per td-worker
  double worker_cpu_pct_max = 0;
  double worker_cpu_pct_mean = 0;
  // td-bench itself: the fleet's two clients, and the embedded broker when td-bench hosts it.
  double bench_cpu_pct = 0;
  std::uint64_t fleet_heartbeats = 0;   // PeerHeartbeat the fleet sent in the window
};

// Errors: a td-worker that exits or whose step does not start before env.time_limit, the
// fleet's errors, the coordinator's exit, kIo (/proc).
td::Result<IdleResult> runIdleCase(const IdleCase& spec, const CaseEnv& env);

}  // namespace td::bench
