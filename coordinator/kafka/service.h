// The coordinator's Kafka shell: consumes td.registrations (in a consumer group, cooperative
// rebalancing) with td.completions co-partitioned, feeds the pure Core, and carries out its
// effects (td.joins, td.assign.<group>, td.events, td.dlq), keeping every group's state in
// the compacted changelog td.state so another coordinator can take the group over.
//
// One cycle (a batch of input, or a tick that changed something):
//   1. snapshot every group the cycle changed, with the cycle's output for it as its outbox,
//      to td.state; wait for the broker's acknowledgement;
//   2. write the output itself; wait for the acknowledgement;
//   3. store the input offsets, which librdkafka commits within 200 ms (outside rebalances).
// A crash before 1 is acknowledged loses nothing (the input is replayed against the previous
// snapshot); after it, the next owner re-publishes the outbox (identical records) and the
// replayed input is recognised as duplicate by the core. On partition assignment the shell
// claims the partition in td.state with a higher epoch, restores its groups and only then
// reads its input (docs/architecture.md, "Fail-over").
//
// Duration history (unless CoreConfig::step_stats is off): before its first poll the shell
// reads every partition of td.step-stats to its high watermark into the core, then keeps
// following the topic (polled without waiting, once per tick) for other coordinators'
// records. Each cycle's PublishStepStats effects (the latest per key) are produced after the
// cycle's output is acknowledged, and nothing waits for them: they are advisory.
//
// Thread safety: run() owns everything; stop() may be called from any thread or signal context.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
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
  Millis restore_timeout{60000};               // reading a partition's td.state on assignment
  // One Kafka transaction per cycle (state, output and input offsets together), for brokers
  // that implement transactions (Apache Kafka; the embedded broker accepts the calls but
  // isolates nothing and does not store offsets sent in a transaction).
  bool exactly_once = false;
};

// Counters a test or an operator can read (the probe).
struct ServiceProbe {
  std::atomic<std::uint64_t> records_in{0};
  std::atomic<std::uint64_t> dead_letters{0};
  std::atomic<std::uint64_t> records_out{0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> snapshots{0};
  std::atomic<std::uint64_t> partitions_restored{0};
  std::atomic<std::uint64_t> groups_restored{0};
  std::atomic<std::uint64_t> step_stats_read{0};       // records taken from td.step-stats
  std::atomic<std::uint64_t> step_stats_written{0};    // records produced to it
  std::atomic<std::uint64_t> step_stats_failures{0};   // of those, not delivered
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
  td::Status checkPartitionCounts();
  void onRebalance(bool assigned, const std::vector<kafka::TopicPartitionOffset>& partitions);
  td::Status restorePartition(std::int32_t partition);
  // Reads td.state[partition] over [from, to), calling `visit` for each record.
  td::Status readState(std::int32_t partition, std::int64_t from, std::int64_t to,
                       const std::function<void(const kafka::Message&)>& visit);
  td::Status handleBatch(const std::vector<kafka::Message>& batch);
  // Reads td.step-stats (every partition) up to its high watermarks into the core, then keeps
  // the reader on it. A missing topic turns duration history off with a warning.
  td::Status loadStepStats();
  // What td.step-stats got since the last call (no waiting).
  void pollStepStats();
  void learnStepStats(const kafka::Message& msg);
  void produceStepStats();
  // Queues `effects` for the current cycle; dead letters are built from `source` at once.
  void collect(const kafka::Message* source, Effects effects);
  // Steps 1-3 of a cycle (see the top of this file) for what collect() queued.
  td::Status writeCycle(const std::vector<kafka::TopicPartitionOffset>& offsets);
  void writeSnapshots();
  void produce(const std::string& topic, std::int32_t partition, const std::string& key,
               const std::string& value, kafka::Producer::DeliveryCallback on_delivery = {});
  td::Status awaitAcknowledgements();
  td::Status writeTransaction(const std::vector<kafka::TopicPartitionOffset>& offsets);
  void produceOutput();

  ServiceOptions options_;
  const Clock& clock_;
  Core core_;
  std::unique_ptr<kafka::GroupConsumer> consumer_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::PartitionReader> state_reader_;
  std::unique_ptr<kafka::PartitionReader> stats_reader_;   // null: history off or unavailable
  bool stats_writable_ = false;
  // This cycle's PublishStepStats, the latest per key.
  std::map<std::string, td::v1::StepStats> stats_out_;
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> delivery_failures_{0};
  ServiceProbe probe_;
  // The current cycle's output, in order, and its dead letters (serialized td.dlq records).
  Effects pending_;
  struct DeadLetterRecord {
    std::string key;
    std::string value;
  };
  std::vector<DeadLetterRecord> dead_letters_;
  std::optional<td::Status> fatal_;            // an error inside a rebalance callback
};

}  // namespace td::coordinator
