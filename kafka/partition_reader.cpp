#include "kafka/partition_reader.h"

#include <algorithm>
#include <set>
#include <thread>

#include "kafka/internal/hot_twin.h"
#include "kafka/internal/rdkafka.h"
#include "kafka/internal/wake_pipe.h"

namespace td::kafka {

using namespace internal;

static_assert(kOffsetBeginning == RD_KAFKA_OFFSET_BEGINNING);
static_assert(kOffsetEnd == RD_KAFKA_OFFSET_END);
static_assert(kOffsetStored == RD_KAFKA_OFFSET_STORED);

struct PartitionReader::Impl {
  WakePipe pipe;   // signalled by the consumer queue (and a twin's); eventFd() is its read end
  HandlePtr rk;
  QueuePtr queue;  // the consumer queue
  PeriodicLog poll_log;
  HotReading hot;  // heat()

  ~Impl() {
    hot.stop();   // the twin's queue signals the pipe
    if (queue) {
      WakePipe::unwatch(queue.get());
      queue.reset();  // must go before rd_kafka_consumer_close
    }
    if (rk) {
      rd_kafka_consumer_close(rk.get());
      rk.reset();
    }
  }
};

PartitionReader::PartitionReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PartitionReader::~PartitionReader() = default;

td::Result<std::unique_ptr<PartitionReader>> PartitionReader::create(
    const Properties& props, std::chrono::milliseconds hot_window) {
  auto impl = std::make_unique<Impl>();
  auto pipe = WakePipe::open();
  if (!pipe) return td::unexpected(pipe.error());
  impl->pipe = std::move(*pipe);
  // assign() needs a group.id; a unique one is never joined, subscribed or committed to.
  auto consumer = makeAssignOnlyConsumer({{"group.id", placeholderGroup("td-reader")},
                                          {"enable.auto.commit", "false"},
                                          {"enable.auto.offset.store", "false"},
                                          {"auto.offset.reset", "earliest"}},
                                         props, impl.get(), impl->pipe);
  if (!consumer) return td::unexpected(consumer.error());
  impl->rk = std::move(consumer->rk);
  impl->queue = std::move(consumer->queue);
  impl->hot = HotReading(hot_window, props);
  return std::unique_ptr<PartitionReader>(new PartitionReader(std::move(impl)));
}

td::Status PartitionReader::assign(const std::vector<TopicPartitionOffset>& partitions) {
  std::set<std::string> topics;
  for (const auto& tp : partitions) topics.insert(tp.topic);
  for (const auto& topic : topics) {
    const auto err = warmMetadata(impl_->rk.get(), topic, kWarmupMs);
    if (accessDenied(err)) {
      return rdKafkaError(err, "assign " + topic);   // else it would wait silently forever
    }
  }
  auto list = toPartitionList(partitions);
  if (auto err = rd_kafka_assign(impl_->rk.get(), list.get()); err) {
    return rdKafkaError(err, "assign");
  }
  impl_->hot.cleared();
  impl_->hot.assigned(partitions);
  return {};
}

td::Status PartitionReader::add(const TopicPartitionOffset& partition) {
  const auto err = warmMetadata(impl_->rk.get(), partition.topic, kWarmupMs);
  if (accessDenied(err)) {
    return rdKafkaError(err, "add " + partition.topic);
  }
  auto list = toPartitionList({partition});
  ErrorPtr error(rd_kafka_incremental_assign(impl_->rk.get(), list.get()));
  if (error) {
    return td::unexpected(fromRdKafka(
        error.get(), "add " + partition.topic + "[" + std::to_string(partition.partition) + "]"));
  }
  impl_->hot.assigned({partition});
  return {};
}

namespace {
// GROUP_AUTHORIZATION_FAILED: librdkafka looks up the coordinator of the placeholder group
// (create()) although nothing uses it; a principal with no ACL on it reads on regardless.
const std::vector<rd_kafka_resp_err_t> kQuietReadErrors = {
    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
    RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED};
}  // namespace

std::uint64_t PartitionReader::hotRecords() const { return impl_->hot.hotRecords(); }

void PartitionReader::heat() {
  impl_->hot.heat(impl_->rk.get(), [this] { return &impl_->pipe; });
}

td::Result<std::vector<Message>> PartitionReader::poll(std::size_t max,
                                                       std::chrono::milliseconds timeout) {
  if (impl_->hot.twin() != nullptr) {
    return readBoth(impl_->rk.get(), impl_->hot, impl_->pipe, max, timeout, impl_->poll_log,
                    kQuietReadErrors);
  }
  impl_->pipe.drain();   // for a caller that waits on eventFd()
  auto batch = consume(impl_->rk.get(), max, timeout, impl_->poll_log, kQuietReadErrors);
  if (!batch) return batch;
  impl_->hot.handedOut(*batch);
  // Stopped at `max`: more may be queued, and librdkafka signals only a queue that was empty.
  if (max > 0 && batch->size() >= max) impl_->pipe.signal();
  return batch;
}

td::Result<std::pair<std::int64_t, std::int64_t>> PartitionReader::watermarks(
    const std::string& topic, std::int32_t partition, std::chrono::milliseconds timeout) {
  std::int64_t low = 0;
  std::int64_t high = 0;
  // librdkafka 2.0.2 asks the leader it knows once and returns what it says. Apache Kafka
  // answers NOT_LEADER / LEADER_NOT_AVAILABLE for a while after a topic is created or its
  // leader moves (a broker restarted or died), and a topic being auto-created has no
  // partitions in the metadata yet: ask again, with fresh metadata, until the deadline. The
  // embedded broker never says so.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto backoff = std::chrono::milliseconds(20);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto err = rd_kafka_query_watermark_offsets(impl_->rk.get(), topic.c_str(), partition, &low,
                                                &high, static_cast<int>(std::max<std::int64_t>(
                                                           left.count(), 1)));
    if (!err) return std::pair{low, high};
    const bool not_yet_known = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                               err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                               err == RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH ||
                               err == RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH ||
                               err == RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE ||
                               err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                               err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      // librdkafka says "unknown partition" for a topic this principal may not describe too:
      // the topic's metadata tells which, and a refusal does not pass with time.
      const auto topic_err = warmMetadata(impl_->rk.get(), topic, kWarmupMs);
      if (accessDenied(topic_err)) {
        return rdKafkaError(topic_err,
                            "watermarks of " + topic + "[" + std::to_string(partition) + "]");
      }
    }
    if (!not_yet_known || std::chrono::steady_clock::now() + backoff >= deadline) {
      return rdKafkaError(err, "watermarks of " + topic + "[" + std::to_string(partition) + "]");
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
  }
}

td::Result<std::int64_t> PartitionReader::committed(const std::string& topic,
                                                   std::int32_t partition,
                                                   std::chrono::milliseconds timeout) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  const std::string what = "committed offset of " + topic + "[" + std::to_string(partition) + "]";
  auto err = rd_kafka_committed(impl_->rk.get(), list.get(),
                                static_cast<int>(std::max<std::int64_t>(timeout.count(), 1)));
  if (err) return rdKafkaError(err, what);
  if (list->elems[0].err) return rdKafkaError(list->elems[0].err, what);
  const std::int64_t offset = list->elems[0].offset;
  return offset >= 0 ? offset : -1;
}

std::int64_t PartitionReader::position(const std::string& topic, std::int32_t partition) const {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  if (rd_kafka_position(impl_->rk.get(), list.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
  // A hot twin may have handed out records the main client has not fetched yet.
  const std::int64_t offset = impl_->hot.position(topic, partition, list->elems[0].offset);
  return offset >= 0 ? offset : -1;
}

int PartitionReader::eventFd() const { return impl_->pipe.readFd(); }

}  // namespace td::kafka
