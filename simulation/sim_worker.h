// A simulated td-worker on the MemoryBus: it registers, waits for its GroupJoined, follows its
// group's assignment topic through the real worker::Session (fencing, dedup, guarantee 5),
// heartbeats, "runs" each step it is given for a drawn duration, and reports StepStarted and
// StepFinished as td-worker does. A session the coordinator ends as lost registers again with a
// new session id; one it replaces stops. Each run it makes is recorded for the run's checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "schema/schema.h"
#include "simulation/memory_bus.h"
#include "td/v1/registrations.pb.h"

namespace td::sim {

// One step a simulated worker ran (or began to run).
struct Execution {
  std::string group_id;
  std::string step_id;
  std::uint32_t attempt = 0;
  std::string peer_id;
  std::string session_id;
  Millis started{0};
  Millis ended{-1};              // -1: never ended (aborted with its session, or the run ended)
  bool succeeded = false;
  bool aborted = false;
};

struct WorkerSpec {
  std::string peer_id;
  td::v1::RepoState repo;        // its change
  const schema::Schema* schema = nullptr;
  int fail_percent = 0;          // chance a run fails
  Millis min_step{100};
  Millis max_step{2000};
};

struct WorkerOutcome {
  bool finished = false;
  int exit_code = -1;            // 0 completed, 1 failed, 5 cancelled (GroupDone)
  std::string group_id;
  std::string error;             // a rejected registration, an undecodable record
};

// The worker's body, to run as a Scheduler actor. Appends to `executions` and sets `outcome`.
void runWorker(MemoryBus& bus, const WorkerSpec& spec, std::vector<Execution>& executions,
               WorkerOutcome& outcome);

}  // namespace td::sim
