// The producers that write the coordinator's td.assign.<group> topics, as a pool of shards.
//
// Why: librdkafka 2.0.2's producer broker thread walks every partition it has produced to on
// each wake-up (rd_kafka_broker_produce_toppars), and a producer never drops a topic. With one
// td.assign topic per group (4 partitions each on the embedded broker), one producer for all of
// them made the coordinator's CPU per input event grow with every group it had ever served
// (docs/performance.md, "Producer shards for td.assign (issue 7)"). The pool bounds the topics
// any one producer handles and closes a producer once every group it served is gone, so the
// cost per event depends on the shard size, not on the number of groups.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"
#include "kafka/kafka.h"

namespace td::coordinator {

// Places each topic on a shard (a kafka::Producer) the first time it is produced to: the
// current shard, or a new one when there is none or the current one is full. A shard is full
// once `topics_per_producer` topics were placed on it (forgetting a topic does not make room,
// since librdkafka keeps a forgotten topic's partitions). A topic stays on its shard until it is
// forgotten, so one topic's records always leave through one producer, in produce order.
//
// Shard lifecycle: open (current) -> full -> closed, when full and every topic placed on it has
// been forgotten: it is flushed and destroyed. The current shard is never closed.
//
// Order across a forget: a topic produced to again after forget() is placed anew, possibly on
// another shard; its order holds only if its earlier records were acknowledged before the
// forget (the coordinator forgets a group only between cycles, after it waited for them).
//
// Thread safety: one thread. Delivery callbacks run on it, inside produce(), flush() and
// forget() (a closing shard's flush, or its purge). Owns its producers.
class AssignProducers {
 public:
  // Makes the producer of shard `index` (0, 1, 2, ... in opening order; for its client id).
  using Factory =
      std::function<td::Result<std::unique_ptr<kafka::Producer>>(std::uint64_t index)>;

  // REQUIRES: topics_per_producer >= 1 (TD_CHECK).
  AssignProducers(std::size_t topics_per_producer, Factory factory);
  // Destroys every shard: records still queued are purged (their callbacks report it), so
  // flush() first.
  ~AssignProducers();
  AssignProducers(const AssignProducers&) = delete;
  AssignProducers& operator=(const AssignProducers&) = delete;

  // Enqueues a record for `topic` on its shard (kafka::Producer::produce: the same arguments,
  // callback and errors), opening a shard first if the topic has none and no shard has room.
  // Errors: also the factory's, when a new shard cannot be made (the topic is not placed).
  td::Status produce(const std::string& topic, std::int32_t partition, std::string_view key,
                     std::string_view value, kafka::Producer::DeliveryCallback on_delivery = {},
                     int block_ms = 1000);

  // `topic` gets no more records (its group was forgotten, or its partition moved to another
  // coordinator). Unknown topics are ignored. If that leaves a full shard with no topic, the
  // shard is flushed (up to `close_timeout`) and destroyed; anything still unacknowledged then
  // is purged and its callbacks report the failure.
  void forget(const std::string& topic,
              std::chrono::milliseconds close_timeout = std::chrono::seconds(5));

  // Records not yet acknowledged, summed over the shards.
  int outstanding() const;
  // Flushes every shard with outstanding records, all within `timeout` in total.
  // Errors: kafka::Errc::kTimedOut (the first shard that did not finish), with its count.
  td::Status flush(std::chrono::milliseconds timeout);

  std::size_t openShards() const { return shards_.size(); }
  std::uint64_t closedShards() const { return closed_; }
  // Topics placed and not forgotten.
  std::size_t topics() const { return shard_of_.size(); }
  std::size_t topicsPerProducer() const { return topics_per_producer_; }

 private:
  struct Shard {
    std::unique_ptr<kafka::Producer> producer;
    std::size_t placed = 0;   // topics ever placed on it (full at topics_per_producer_)
    std::size_t live = 0;     // of those, not forgotten
  };
  // The shard for a topic that has none: the current one, or a new one. Errors: the factory's.
  td::Result<std::uint64_t> place(const std::string& topic);

  const std::size_t topics_per_producer_;
  Factory factory_;
  std::map<std::uint64_t, Shard> shards_;                    // open shards by index
  std::unordered_map<std::string, std::uint64_t> shard_of_;  // placed topic -> shard index
  std::optional<std::uint64_t> current_;                     // the shard new topics go to
  std::uint64_t next_index_ = 0;
  std::uint64_t closed_ = 0;
};

}  // namespace td::coordinator
