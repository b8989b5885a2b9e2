// What td-worker runs with (WorkerOptions, filled from the command line by options.h) and the
// exit codes it ends with. Plain values: the pure worker code and its Kafka shell
// (worker/kafka/worker_app.h) both use them.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "kafka/types.h"
#include "protocol/protocol.h"
#include "worker/identity.h"

namespace td::worker {

struct WorkerOptions {
  std::string bootstrap_servers;
  kafka::Properties kafka;                      // -X overrides, applied last
  protocol::Topics topics;
  PeerInfo peer;
  std::filesystem::path working_dir;            // where steps run (default: current directory)
  std::chrono::milliseconds join_timeout{std::chrono::minutes(5)};
  // Give up (kExitInfrastructure) once the broker has not answered for this long
  // (--broker-timeout; worker/broker_watch.h).
  std::chrono::milliseconds broker_timeout{std::chrono::minutes(2)};
  bool echo_output = true;                      // copy steps' output to stderr, prefixed
  // Bytes of each step attempt's output shipped to td.logs (--log-cap); 0 = ship none.
  std::uint64_t log_cap = kDefaultLogCap;
  static constexpr std::uint64_t kDefaultLogCap = 64ull << 20;
};

// Exit codes of td-worker (docs/operations.md, "Exit codes of td-worker"). A CI system may
// retry a job on kExitInfrastructure; every other code is the build's own answer.
inline constexpr int kExitCompleted = 0;
inline constexpr int kExitFailed = 1;           // the group failed
inline constexpr int kExitUsage = 2;            // usage, configuration, schema, rejected;
                                                // the broker refused the credentials or an ACL
inline constexpr int kExitInfrastructure = 3;   // the broker unreachable past --broker-timeout,
                                                // no coordinator reply within --join-timeout
inline constexpr int kExitReplaced = 4;         // a newer process registered with this peer id
                                                // and replaced this session (docs/operations.md)
inline constexpr int kExitCancelled = 5;        // an operator cancelled the group (td-ctl
                                                // cancel): do not retry the job
inline constexpr int kExitInterrupted = 130;

}  // namespace td::worker
