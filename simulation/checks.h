// The guarantees checked after each simulated run (docs/testing.md, "Simulation"), from what the
// run left: the bus's logs (td.events, td.state, td.dlq, the input and its committed offsets),
// the workers' own record of what they ran, and how each worker ended.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "simulation/memory_bus.h"
#include "simulation/sim_worker.h"

namespace td::sim {

struct RunRecord {
  MemoryBus& bus;
  const std::vector<Execution>& executions;
  const std::vector<WorkerOutcome>& outcomes;
  const std::vector<std::unique_ptr<WorkerSpec>>& specs;   // outcomes[i] is specs[i]'s
  // Garbage records written to the input: (topic, partition, offset).
  const std::vector<std::tuple<std::string, std::int32_t, std::int64_t>>& garbage;
};

struct CheckResult {
  std::vector<std::string> violations;   // each names what and where
  std::uint64_t speculative = 0;         // steps raced by a speculative attempt
};

// Every worker finished with its group's result on td.events; td.events passes
// audit::verify; no (step, attempt) ran twice, every success on td.events is a real run, no
// step succeeded twice (but a raced one may on both sides); no forgotten group was restored
// from an older snapshot or created again after it ended; every handled garbage record has
// its dead letter; no coordinator claimed a partition again in place.
CheckResult checkRun(const RunRecord& record);

}  // namespace td::sim
