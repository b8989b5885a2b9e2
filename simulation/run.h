// One seeded run of the simulation (docs/testing.md, "Simulation"): coordinators (the real
// Service over MemoryPort, the real Core) and simulated workers on one MemoryBus, with faults
// drawn from the seed, then the guarantees checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace td::sim {

struct RunOptions {
  std::uint64_t seed = 1;
  bool verbose = false;                       // coordinator logs and the run's story on stderr
  bool bug_stale_generation_commit = false;   // MemoryBus's re-introduced librdkafka bug
};

struct RunResult {
  std::uint64_t seed = 0;
  int crashes = 0;          // coordinators killed (kill -9)
  int freezes = 0;          // frozen (SIGSTOP) for a while
  int outages = 0;          // broker unreachable for a while
  std::uint64_t rebalances = 0;
  std::uint64_t speculative = 0;   // speculative attempts handed out (issue 18)
  std::int64_t sim_ms = 0;  // simulated time the run took
  std::vector<std::string> violations;
};

RunResult runOnce(const RunOptions& options);

}  // namespace td::sim
