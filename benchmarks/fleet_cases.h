// The throughput matrix: cases "w{W}_g{G}" of G groups of W simulated peers each, all driven
// by one Fleet (benchmarks/fleet.h) through the running td-coordinator.
#pragma once

#include <string>
#include <vector>

#include "benchmarks/cases.h"
#include "benchmarks/fleet.h"

namespace td::bench {

struct FleetCase {
  std::string name;  // "w{W}_g{G}"
  int workers_per_group = 1;
  int groups = 1;
  int steps_per_group = 1;
  FleetSource source = FleetSource::kAssignTopics;
};

// The cells of the matrix for W in `workers` and G in `groups`, skipping those with more
// than `max_peers` peers; each group gets steps_per_peer * W steps.
std::vector<FleetCase> matrixCases(const std::vector<int>& workers, const std::vector<int>& groups,
                                   int max_peers, int steps_per_peer);

// Peers for `groups` groups of `workers` each: ids "{case}-g{g}-w{w}-{run id}", change ref
// "change-{g}", the case's own remote cache id, suffixed "-f{g % families}" when families > 1
// (each family is a compatibility key of its own, so its registrations, completions and
// td.state records go to a partition of their own).
std::vector<std::vector<worker::PeerInfo>> fleetPeers(const CaseEnv& env, const std::string& name,
                                                      int groups, int workers, int families = 1);

// Every peer joins (assignments held), then the fleet answers until every group completed.
// wall_s runs from the first answer to the last GroupCompleted; join_s from the first
// registration to the last group's first StepAssigned. Checks as runSimulatedCase does.
// Errors: the fleet's (see Fleet), kUnavailable if the coordinator exited.
td::Result<CaseResult> runFleetCase(const FleetCase& spec, const CaseEnv& env);

}  // namespace td::bench
