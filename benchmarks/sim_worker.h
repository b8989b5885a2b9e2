// A simulated worker: speaks td-worker's protocol on its own thread, but "runs" every step by
// reporting success at once, so what it measures is the coordinator and the two Kafka hops.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "benchmarks/start_gate.h"
#include "common/result.h"
#include "kafka/client_settings.h"
#include "kafka/types.h"
#include "protocol/protocol.h"
#include "schema/schema.h"
#include "worker/identity.h"

namespace td::bench {

using SteadyTime = std::chrono::steady_clock::time_point;

struct SimWorkerConfig {
  std::string bootstrap;
  kafka::Properties kafka;  // -X overrides, applied last
  kafka::BrokerKind broker_kind = kafka::BrokerKind::kEmbedded;   // readers' fetch wait
  protocol::Topics topics;
  worker::PeerInfo peer;
  const schema::Schema* schema = nullptr;  // not owned; outlives the worker
  // Not owned. All workers of a case pass it before publishing their registrations, so a
  // late thread cannot find its group already completed.
  StartGate* gate = nullptr;
  // Publish StepStarted before StepFinished, as td-worker does (each published and flushed).
  bool report_started = true;
  std::chrono::milliseconds join_timeout{30000};  // registration -> GroupJoined
  std::chrono::milliseconds idle_timeout{30000};  // longest wait for the next record
  // MAKESPAN (issue 7; benchmarks/makespan.cpp): if set, each step "runs" this long (a sleep
  // between StepStarted and StepFinished, which reports the time slept as duration_ms).
  // Empty: StepFinished at once, duration_ms 0.
  std::function<std::chrono::milliseconds(const std::string& step_id)> step_duration;
};

struct SimWorkerOutcome {
  std::string group_id;
  std::uint64_t steps_finished = 0;  // StepFinished records published
  // One sample per StepAssigned that followed one of our StepFinished: its arrival minus the
  // moment just before that StepFinished was produced (0 if it arrived before: taken ahead).
  std::vector<double> dispatch_ms;
  std::optional<SteadyTime> first_assignment;  // arrival of our first StepAssigned
  SteadyTime completed_at{};                   // arrival of GroupCompleted
  std::size_t summary_steps = 0;               // steps listed in GroupCompleted
  // MAKESPAN (issue 7): what this worker ran, in order, and when its last step ended.
  std::vector<std::string> steps_run;
  double busy_ms = 0;                          // time slept in steps (step_duration)
  std::optional<SteadyTime> last_finished;     // just before the last StepFinished was produced
};

// Runs one simulated worker to the end of its group, on the calling thread:
//  1. partition = protocol::partitionFor(key, partitions of td.registrations); read that
//     partition of td.joins from its high watermark; pass the gate;
//  2. publish the PeerRegistered built by worker::buildRegistration; wait for our GroupJoined;
//  3. read td.assign.<group> from offset 0 through worker::Session (td-worker's own logic);
//     on each StepAssigned for our (peer, session): [StepStarted,] StepFinished(SUCCEEDED);
//     a PeerHeartbeat every heartbeat_interval_ms of the GroupJoined, as td-worker sends;
//  4. return on GroupCompleted.
// Every publish is produce + flush (acknowledged), as td-worker's publish() does.
// Errors: Kafka errors; td::Errc::kInvalidArgument (rejected, or a step we do not know);
// td::Errc::kUnavailable (group failed, or stopped through `stop`); td::Errc::kTimeout.
td::Result<SimWorkerOutcome> runSimWorker(const SimWorkerConfig& config, std::stop_token stop);

}  // namespace td::bench
