// `td-audit logs GROUP STEP [--attempt N] [--peer P] [--follow]`: prints one step attempt's
// whole output from td.logs (docs/operations.md, "Reading a step's output").
#pragma once

#include <atomic>
#include <string>

#include "audit/logs.h"
#include "kafka/types.h"

namespace td::audit {

struct LogsCommand {
  std::string bootstrap;
  td::kafka::Properties props;  // -X
  std::string topic;            // <prefix>logs
  LogQuery query;
  bool follow = false;
};

// Exit codes of `td-audit logs`.
inline constexpr int kLogsFound = 0;
inline constexpr int kLogsNone = 1;         // no output of that step/attempt on the topic
inline constexpr int kLogsUnreachable = 3;  // the broker did not answer (or refused)
inline constexpr int kLogsInterrupted = 130;

// Writes the attempt's output to stdout (raw bytes, in order) and what is missing to stderr.
// With `follow`, keeps reading until the attempt's last chunk arrived or `stop` is set.
int runLogs(const LogsCommand& command, const std::atomic<bool>& stop);

}  // namespace td::audit
