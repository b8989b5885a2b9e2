// The floor: what two Kafka hops cost with Task Director's client settings, and nothing else.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"
#include "kafka/client_settings.h"
#include "kafka/types.h"

namespace td::bench {

struct FloorConfig {
  std::string bootstrap;
  kafka::Properties kafka;  // -X overrides, applied last
  kafka::BrokerKind broker_kind = kafka::BrokerKind::kEmbedded;   // readers' fetch wait
  std::string ping_topic;   // partition 0 is used; created (where allowed) if missing
  std::string pong_topic;
  std::string run_id;      // tags the payloads, so records of another run are never matched
  int warmup = 200;        // round trips made first and not measured
  int round_trips = 2000;  // measured
  std::chrono::steady_clock::time_point deadline;  // the whole measurement fails after it
};

// Ping-pong between two clients on two threads, each a kafka::Producer plus a
// kafka::PartitionReader with the settings of client_settings.h, heated as the product heats
// its readers (kafka::kHotFetchWindow after each record written): this thread produces a ping,
// the echo thread consumes it and produces it back on pong_topic, this thread consumes that.
// No flush on either side (a bare produce: linger.ms=1 and the background sender deliver it).
// Returns one round-trip time in ms per measured round trip.
// Errors: the client's error, or td::Errc::kTimeout when a reply misses 5 s or the deadline.
td::Result<std::vector<double>> measureFloor(const FloorConfig& config);

struct ProduceConfig {
  std::string bootstrap;
  kafka::Properties kafka;  // -X overrides, applied last
  std::string topic;        // records are spread round-robin over its partitions
  int records = 50000;
  int record_bytes = 100;   // value size; no key
  std::chrono::steady_clock::time_point deadline;  // the flush fails after it
};

struct ProduceRate {
  int records = 0;
  int record_bytes = 0;
  double seconds = 0;  // first produce -> flush returned (every record acknowledged)
  double per_s = 0;
};

// Bare produce throughput: one kafka::Producer with td's producer settings (linger.ms=1,
// idempotence) produces `records` records asynchronously, then flushes; every delivery is
// checked. Errors: the producer's error, td::Errc::kUnavailable for a failed delivery,
// kafka's kTimedOut when the flush passes the deadline.
td::Result<ProduceRate> measureProduceRate(const ProduceConfig& config);

}  // namespace td::bench
