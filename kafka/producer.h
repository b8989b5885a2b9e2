// A Kafka producer: RAII over a librdkafka producer handle.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "kafka/error.h"
#include "kafka/group_consumer.h"
#include "kafka/types.h"

namespace td::kafka {

// Thread safety: use from one thread. Delivery callbacks run on it, inside poll(), flush()
// and produce() (when the queue is full). Not copyable or movable (callbacks point at it).
class Producer {
 public:
  // Creates a producer. Defaults set before `props`: enable.idempotence=true, linger.ms=1
  // (a later entry in `props` overrides them). librdkafka log lines go to the "kafka" logger.
  // Errors: Errc::kInvalidArg naming an unknown or invalid property with librdkafka's message.
  static td::Result<std::unique_ptr<Producer>> create(const Properties& props);
  // Purges what is still queued or in flight (their callbacks are run with kPurge* errors when
  // possible) and destroys the handle: call flush() first to deliver everything.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // result is OK once the broker acknowledged the record at (partition, offset); otherwise an
  // Errc error (kMessageTimedOut, kPurgeQueue, ...) and offset is -1.
  using DeliveryCallback =
      std::function<void(const td::Status& result, std::int32_t partition, std::int64_t offset)>;

  // Enqueues a copy of key and value (an empty key or value is sent as null) for `topic`.
  // partition -1 lets librdkafka's partitioner choose (by key hash). on_delivery, if set, is
  // called exactly once from poll()/flush() (or from the destructor's purge).
  // When the local queue is full, serves delivery reports and retries for up to block_ms.
  // The first produce to a topic first fetches its metadata (waiting up to 500 ms), which
  // saves up to 1 s of librdkafka 2.0.2 discovering a new topic on its own.
  // Errors: kQueueFull after block_ms, kFatal, kInvalidArg, kUnknownPartition, kUnknownTopic.
  td::Status produce(std::string_view topic, std::int32_t partition, std::string_view key,
                     std::string_view value, DeliveryCallback on_delivery = {},
                     int block_ms = 1000);

  // Drops this producer's handle of `topic` (kept from the first produce to it, so later ones
  // skip a lookup by name); a later produce makes a new one. For topics that are done with,
  // such as a forgotten group's td.assign topic.
  void forgetTopic(const std::string& topic);

  // Serves delivery callbacks and errors, waiting up to timeout_ms for the first; returns the
  // number of events served.
  int poll(int timeout_ms);

  // Waits until every outstanding record was acknowledged or failed (callbacks run here).
  // Errors: kTimedOut with the number still outstanding.
  td::Status flush(std::chrono::milliseconds timeout);

  // Records (and requests) not yet acknowledged: librdkafka's rd_kafka_outq_len.
  int outstanding() const;

  // The cluster's id, waiting up to `timeout` for the first metadata; nullopt if none came.
  std::optional<std::string> clusterId(std::chrono::milliseconds timeout) const;

  // Why the broker refuses this producer, if it does: the first failed authentication
  // (kAuthentication: wrong credentials, a mechanism the listener does not offer) or fatal
  // error (with its cause, e.g. kClusterAuthorizationFailed when the idempotent producer's
  // InitProducerId is refused: its principal may write no topic). Authentication failures
  // are heard of in poll(), flush() or partitionCount(); a fatal error at once. After a fatal
  // error the producer delivers nothing.
  std::optional<td::Error> refusal() const;

  // The latest client-level error librdkafka reported (connection refused or lost, all
  // brokers down, ...), served in poll(), flush() or produce(); nullopt if none yet. For
  // saying why the broker does not answer; it is not cleared when the broker answers again.
  std::optional<td::Error> lastError() const;

  // The number of partitions of `topic`, from cluster metadata. Asks the broker to auto-create
  // the topic where it allows that, and retries until `timeout` while the topic has no leader.
  // Serves error events (and delivery callbacks) between requests. Errors: kTimedOut,
  // kUnknownTopicOrPart (when it never appeared), kTransport; at once, an access-denied error
  // (kafka/error.h): kTopicAuthorizationFailed (no DESCRIBE on the topic), kAuthentication.
  td::Result<int> partitionCount(const std::string& topic, std::chrono::milliseconds timeout);

  // ---- Transactions (only for a producer created with `transactional.id`) ----
  // Each call waits up to `timeout`. After an error, abortTransaction() and try again; a fatal
  // error (fenced by a newer instance with the same transactional.id) needs a new producer.
  td::Status initTransactions(std::chrono::milliseconds timeout);
  td::Status beginTransaction();
  // Commits the consumer's `next_offsets` with the transaction (not through the consumer).
  td::Status sendOffsetsToTransaction(const std::vector<TopicPartitionOffset>& next_offsets,
                                      const GroupConsumer& consumer,
                                      std::chrono::milliseconds timeout);
  // Flushes, then commits; every record produced since beginTransaction() becomes visible to
  // read_committed readers at once, or (on error) none does.
  td::Status commitTransaction(std::chrono::milliseconds timeout);
  td::Status abortTransaction(std::chrono::milliseconds timeout);

  struct Impl;

 private:
  explicit Producer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace td::kafka
