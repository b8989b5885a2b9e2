// A consumer in a Kafka consumer group, with offsets committed only by the application.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "kafka/error.h"
#include "kafka/types.h"

namespace td::kafka {

// Thread safety: none; use from one thread. Callbacks run on that thread inside poll() and
// close(). Not copyable or movable.
class GroupConsumer {
 public:
  // Defaults set before `props`: enable.auto.commit=false, enable.auto.offset.store=false,
  // auto.offset.reset=earliest. `props` must set group.id (and bootstrap.servers).
  // Errors: Errc::kInvalidArg for a missing group.id or an unknown/invalid property.
  // `hot_window` > 0 allows hot fetching (heat()).
  static td::Result<std::unique_ptr<GroupConsumer>> create(
      const Properties& props, std::chrono::milliseconds hot_window = {});
  ~GroupConsumer();  // close()s
  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  // Joins the group for `topics` (replacing an earlier subscription). Names starting with '^'
  // are regular expressions. Errors: kInvalidArg, kFatal.
  td::Status subscribe(const std::vector<std::string>& topics);

  // Returns up to `max` messages, waiting at most `timeout` for the first (then taking only
  // what is already fetched). Empty on timeout. Non-fatal errors (partition EOF, transport,
  // unknown topic, ...) are logged rate-limited and skipped. Errors: kFatal (recreate it); an
  // access-denied error (kafka/error.h: failed authentication, an ACL refusing the group or a
  // topic), returned at once.
  td::Result<std::vector<Message>> poll(std::size_t max, std::chrono::milliseconds timeout);

  // Input is expected soon (it flows, or the owner just wrote what asks for it): for the hot
  // window a second client with fetch.wait.max.ms=0 fetches the assigned partitions too, from
  // the positions handed out, on the embedded broker only (PartitionReader::heat has the
  // details). Records are still handed out once and in order per partition.
  void heat();
  // Records the hot twin handed out first: 0 without one. For tests and benchmarks.
  std::uint64_t hotRecords() const;

  // Commits `next_offsets` (each the next offset to read, i.e. last processed + 1). async=true
  // returns at once and logs a failure later (from poll()); async=false waits for the broker.
  // An empty list is a no-op. Errors: the broker's error (sync), kInvalidArg, kFatal.
  td::Status commit(const std::vector<TopicPartitionOffset>& next_offsets, bool async);

  // Marks `next_offsets` (each last processed + 1) as done, for librdkafka's own commit: with
  // enable.auto.commit=true it commits them every auto.commit.interval.ms while the group is
  // steady, and for revoked partitions before they go. Unlike commit(), this never sends a
  // commit in the middle of a rebalance, whose stale generation would make librdkafka treat the
  // whole assignment as lost. The partitions must be assigned. Errors: kState, kFatal.
  td::Status storeOffsets(const std::vector<TopicPartitionOffset>& next_offsets);

  // Companion topics follow the subscription partition by partition: whenever partition p of a
  // subscribed topic is assigned (or revoked), partition p of every companion is assigned (or
  // revoked) with it, resuming from the group's committed offset. This co-partitions topics
  // under any assignor, including cooperative-sticky, which balances partitions across topics
  // without regard to their numbers. Commit companion offsets with commit() as usual. The
  // rebalance callback hears of subscribed partitions only. Set before subscribe().
  void setCompanions(std::vector<std::string> topics);

  // Called from poll()/close() on the caller's thread after partitions were assigned
  // (assigned=true) or before they are revoked (assigned=false), with the partitions that
  // changed (offsets are not meaningful). The assignment itself is handled here, for both the
  // eager and the cooperative ("cooperative-sticky") protocols. Set before subscribe().
  using RebalanceCallback =
      std::function<void(bool assigned, const std::vector<TopicPartitionOffset>& partitions)>;
  void onRebalance(RebalanceCallback callback);

  // The consumer's group metadata (group id, generation, member id), opaque, for
  // Producer::sendOffsetsToTransaction. Taken at the time of the call.
  struct GroupMetadata;
  std::shared_ptr<const GroupMetadata> groupMetadata() const;

  // How far behind the consumer is on each assigned partition: the partition's high
  // watermark minus the consumer's position (last consumed + 1). Local only, no broker round
  // trip: the high watermark is the one librdkafka cached from its latest fetch response. A
  // partition is left out while either number is unknown (nothing fetched or consumed since
  // it was assigned), except an empty one (low == high), whose lag is 0.
  struct PartitionLag {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t lag = 0;
  };
  std::vector<PartitionLag> lag() const;

  // The next offset to consume of every assigned partition whose position is known (it has
  // been consumed from since it was assigned). For a transaction's offsets: sending them with
  // every transaction ties its commit to the consumer group's generation (KIP-447), so a
  // member that lost its partitions cannot commit one.
  std::vector<TopicPartitionOffset> positions() const;

  // Leaves the group (revoking the assignment through the callback). Idempotent; after it,
  // poll() returns nothing and commit() fails.
  void close();

  struct Impl;

 private:
  explicit GroupConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace td::kafka
