// The port under the coordinator's shell (Service): everything it does with Kafka, as one
// interface. KafkaPort (coordinator/kafka/kafka_port.h) implements it with librdkafka clients;
// simulation/memory_port.h implements it over an in-memory bus driven by a seeded scheduler,
// so the shell's real code runs under deterministic simulation (docs/testing.md,
// "Simulation").
//
// What the shell relies on, and every implementation must keep:
//   - Input: td.registrations is consumed in a consumer group; td.completions is
//     co-partitioned and follows the same assignment. poll() returns records in offset order
//     per partition (no order across partitions), and runs the rebalance listener inside the
//     call, before any record of a newly assigned partition and after the last record of a
//     revoked one. Offsets stored with storeOffsets() are committed later (at most-once per
//     stored value, never before it is stored); a partition's records after its committed
//     offset are delivered again to its next owner.
//   - Output: produce() only queues; a record is written once its delivery callback reports
//     success, which happens inside flush() (or a later flush, or the port's destruction).
//     Records of one producer to one partition are written in the order produced. A record
//     whose delivery failed may or may not have been written.
//   - Readers (state, step stats): plain partition readers, outside the consumer group.
//   - Every call may block (a network round trip); none throws, except that an in-memory
//     port may end the calling coordinator at any call (a simulated crash) by throwing
//     something the shell does not catch.
//
// Thread safety: the service thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/time.h"
#include "kafka/types.h"

namespace td::coordinator {

// A partition reader outside the consumer group (td.state on restore, td.step-stats).
class LogReader {
 public:
  virtual ~LogReader() = default;
  // Replaces the assignment; each offset is an absolute one or kafka::kOffsetBeginning.
  virtual td::Status assign(const std::vector<kafka::TopicPartitionOffset>& partitions) = 0;
  // Up to `max` records, waiting up to `wait` for the first.
  virtual td::Result<std::vector<kafka::Message>> poll(std::size_t max, Millis wait) = 0;
  // The next offset this reader will return for the partition (-1 if unknown).
  virtual std::int64_t position(const std::string& topic, std::int32_t partition) = 0;
  // The partition's low and high watermarks, asked of its leader.
  virtual td::Result<std::pair<std::int64_t, std::int64_t>> watermarks(const std::string& topic,
                                                                       std::int32_t partition,
                                                                       Millis timeout) = 0;
};

class Port {
 public:
  using RebalanceListener =
      std::function<void(bool assigned, const std::vector<kafka::TopicPartitionOffset>&)>;
  using Delivery = std::function<void(const td::Status&, std::int32_t partition,
                                      std::int64_t offset)>;
  struct PartitionLag {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t lag = 0;
  };
  // What a quiet td.registrations partition's leader says (docs/architecture.md, "Flow
  // probes"): its watermarks and the consumer group's committed offset (-1: none); `error`
  // set when it did not answer.
  struct FlowAnswer {
    std::int32_t partition = 0;
    std::int64_t low = 0;
    std::int64_t high = 0;
    std::int64_t committed = -1;
    std::string error;
  };

  virtual ~Port() = default;

  // ---- Connecting
  // The number of partitions of `topic` (a metadata request; may auto-create it).
  virtual td::Result<int> partitionCount(const std::string& topic, Millis timeout) = 0;
  // The broker answered: the port may remake clients that have not read yet for its kind.
  virtual td::Status brokerAnswered() = 0;
  // Waits `duration` (the back-off between attempts to reach the broker).
  virtual void pause(Millis duration) = 0;

  // ---- Input (the consumer group)
  // Heard inside poll() and leaveGroup(). Set before subscribe().
  virtual void setRebalanceListener(RebalanceListener listener) = 0;
  // Joins the consumer group on td.registrations (with a consumer made anew if the last one
  // left the group).
  virtual td::Status subscribe() = 0;
  virtual td::Result<std::vector<kafka::Message>> poll(std::size_t max, Millis wait) = 0;
  // The next offsets to read, to be committed (the input up to them is done with).
  virtual td::Status storeOffsets(const std::vector<kafka::TopicPartitionOffset>& offsets) = 0;
  // The next offset of every assigned partition whose position is known (for transactions).
  virtual std::vector<kafka::TopicPartitionOffset> positions() = 0;
  virtual std::vector<PartitionLag> lag() = 0;
  // Completions flow: fetch without waiting for a while (docs/performance.md).
  virtual void heat() = 0;
  // Leaves the consumer group: the listener hears every partition revoked.
  virtual void leaveGroup() = 0;

  // ---- Output
  // Queues a record (partition -1: by key). Errors: the record was not queued.
  virtual td::Status produce(const std::string& topic, std::int32_t partition,
                             const std::string& key, const std::string& value,
                             Delivery on_delivery) = 0;
  // The same for a td.assign.<group> record (partition 0), through the producer its group's
  // topic is placed on.
  virtual td::Status produceAssignment(const std::string& topic, const std::string& key,
                                       const std::string& value, Delivery on_delivery) = 0;
  // Records queued and not yet acknowledged.
  virtual int outstanding() = 0;
  // Waits up to `timeout` for every queued record's acknowledgement (delivery callbacks run).
  virtual td::Status flush(Millis timeout) = 0;
  // `topic` (td.assign.<group>) gets no more records from this coordinator.
  virtual void forgetAssignTopic(const std::string& topic) = 0;
  // Replaces every producer with a new one (new producer ids) after output failed for good;
  // what the old ones held is purged.
  virtual td::Status renewProducers() = 0;
  // Shards of td.assign producers open now, and closed so far.
  virtual std::pair<std::int64_t, std::uint64_t> assignProducers() = 0;

  // ---- Transactions (ServiceOptions::exactly_once)
  virtual td::Status initTransactions(Millis timeout) = 0;
  virtual td::Status beginTransaction() = 0;
  virtual td::Status sendOffsetsToTransaction(
      const std::vector<kafka::TopicPartitionOffset>& offsets, Millis timeout) = 0;
  virtual td::Status commitTransaction(Millis timeout) = 0;
  virtual td::Status abortTransaction(Millis timeout) = 0;

  // ---- Readers
  virtual LogReader& stateReader() = 0;
  // Null: duration history has no reader (off, or gone after the topic was unavailable).
  virtual LogReader* statsReader() = 0;
  virtual void dropStatsReader() = 0;

  // ---- Flow probes of quiet td.registrations partitions
  virtual void askFlow(std::int32_t partition) = 0;
  virtual std::vector<FlowAnswer> flowAnswers() = 0;

  // ---- Assignment topics through the Admin API (ServiceOptions::assign_topics.create);
  // no-ops where the broker creates them itself.
  virtual void ensureAssignTopics(const std::vector<std::string>& group_ids) = 0;
  virtual void retireAssignTopic(const std::string& group_id, Millis now) = 0;
  virtual void dropAssignTopic(const std::string& group_id) = 0;
  virtual void pollAssignTopics(Millis now) = 0;
};

}  // namespace td::coordinator
