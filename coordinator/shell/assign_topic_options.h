// What the coordinator's shell knows of assignment topics made through the Admin API: their
// options (ServiceOptions::assign_topics) and the counters ServiceProbe publishes. The Admin
// client itself is coordinator/kafka/assign_topics.h.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/time.h"
#include "kafka/types.h"

namespace td::coordinator {

struct AssignTopicOptions {
  bool create = false;            // true: --assign-topics admin
  int partitions = 1;             // only partition 0 carries records (docs/protocol.md)
  int replication = -1;           // -1: the broker's default.replication.factor
  kafka::Properties config;       // topic configuration entries (--assign-topic-config)
  kafka::Properties admin_kafka;  // librdkafka properties of the admin client only, after -X
  Millis timeout{10000};          // per Admin request
  // A failed deletion is tried again `retry_backoff` later, `delete_attempts` times in all,
  // then given up (logged).
  int delete_attempts = 5;
  Millis retry_backoff{30000};
};

// What happened to assignment topics, for metrics (read from any thread).
struct AssignTopicCounters {
  std::atomic<std::uint64_t> created{0};          // created, or found existing
  std::atomic<std::uint64_t> create_failures{0};  // not created (output went ahead)
  std::atomic<std::uint64_t> deleted{0};          // deleted, or found missing
  std::atomic<std::uint64_t> delete_failures{0};  // attempts that failed (retried, then given up)
  std::atomic<std::int64_t> deletes_pending{0};   // waiting for an answer or a retry
};

}  // namespace td::coordinator
