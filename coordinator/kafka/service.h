// The coordinator's Kafka shell: consumes td.registrations and td.completions in a consumer
// group, feeds the pure Core, and carries out its effects (td.joins, td.assign.<group>,
// td.events, td.dlq). Input offsets are committed only after every record the batch produced
// has been acknowledged by the broker (at-least-once; the core is idempotent for repeats).
//
// Thread safety: run() owns everything; stop() may be called from any thread or signal context.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/log.h"
#include "common/result.h"
#include "common/time.h"
#include "coordinator/core.h"
#include "kafka/kafka.h"

namespace td::coordinator {

struct ServiceOptions {
  std::string bootstrap_servers;
  kafka::Properties kafka;                     // -X overrides, applied last
  std::string consumer_group = "td-coordinator";
  CoreConfig core;
  Millis tick_interval{100};                   // how often time-driven work runs
  std::size_t batch_max = 1000;                // records handled between commits
};

// Counters a test or an operator can read (the probe).
struct ServiceProbe {
  std::atomic<std::uint64_t> records_in{0};
  std::atomic<std::uint64_t> dead_letters{0};
  std::atomic<std::uint64_t> records_out{0};
  std::atomic<std::uint64_t> batches{0};
};

class Service {
 public:
  static td::Result<std::unique_ptr<Service>> create(ServiceOptions options, const Clock& clock);

  // Runs until stop() is called or a fatal error occurs.
  td::Status run();
  void stop() { stopping_.store(true); }
  const ServiceProbe& probe() const { return probe_; }

 private:
  Service(ServiceOptions options, const Clock& clock);
  td::Status handleBatch(const std::vector<kafka::Message>& batch);
  void apply(const kafka::Message* source, const Effects& effects);
  void produce(const std::string& topic, std::int32_t partition, const std::string& key,
               const std::string& value);
  td::Status flushAndCommit(const std::vector<kafka::Message>& batch);

  ServiceOptions options_;
  const Clock& clock_;
  Core core_;
  std::unique_ptr<kafka::GroupConsumer> consumer_;
  std::unique_ptr<kafka::Producer> producer_;
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> delivery_failures_{0};
  ServiceProbe probe_;
};

}  // namespace td::coordinator
