#include "kafka/group_consumer.h"

#include <algorithm>
#include <cstring>

#include "kafka/internal/hot_twin.h"
#include "kafka/internal/rdkafka.h"
#include "kafka/internal/wake_pipe.h"

namespace td::kafka {

using namespace internal;

struct GroupConsumer::Impl {
  HandlePtr rk;
  RebalanceCallback on_rebalance;
  std::vector<std::string> companions;
  PeriodicLog poll_log;
  PeriodicLog commit_log;
  bool closed = false;
  HotReading hot;   // heat()
  // With a twin: a wake-up pipe both the consumer queue and the twin's signal (made on first
  // use, by wakePipe(): only a consumer with a twin waits on it), and that consumer queue.
  WakePipe pipe;
  QueuePtr queue;

  ~Impl() {
    hot.stop();
    if (queue) {
      WakePipe::unwatch(queue.get());
      queue.reset();
    }
  }

  // Null if the pipe cannot be made.
  const WakePipe* wakePipe() {
    if (pipe.isOpen()) return &pipe;
    auto made = WakePipe::open();
    if (!made) return nullptr;
    pipe = std::move(*made);
    queue.reset(rd_kafka_queue_get_consumer(rk.get()));
    pipe.watch(queue.get());
    return &pipe;
  }

  // Runs on the thread in poll()/close(). librdkafka leaves the assignment to us once a
  // rebalance callback is set: eager protocols replace it, cooperative ones change it
  // incrementally. The user hears of new partitions after they are assigned and of revoked
  // ones before they go, so it can still commit for them.
  // `partitions` plus the same partitions of every companion topic.
  PartitionListPtr withCompanions(const rd_kafka_topic_partition_list_t* partitions) const {
    PartitionListPtr all(rd_kafka_topic_partition_list_copy(partitions));
    for (const auto& topic : companions) {
      for (int i = 0; i < partitions->cnt; ++i) {
        rd_kafka_topic_partition_list_add(all.get(), topic.c_str(), partitions->elems[i].partition)
            ->offset = RD_KAFKA_OFFSET_INVALID;   // the committed offset
      }
    }
    return all;
  }

  static void onRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* group_partitions, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    auto log = logger();
    PartitionListPtr all;
    if (group_partitions != nullptr) all = self->withCompanions(group_partitions);
    rd_kafka_topic_partition_list_t* partitions = all.get();
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      if (cooperative) {
        ErrorPtr error(rd_kafka_incremental_assign(rk, partitions));
        if (error)
          log->error("{} incremental assign: {}", rd_kafka_name(rk),
                     rd_kafka_error_string(error.get()));
      } else if (auto e = rd_kafka_assign(rk, partitions); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log->error("{} assign: {}", rd_kafka_name(rk), rd_kafka_err2str(e));
      }
      log->debug("{} assigned {} partitions ({})", rd_kafka_name(rk), partitions->cnt,
                 cooperative ? "cooperative" : "eager");
      if (!cooperative) self->hot.cleared();
      self->hot.assigned(fromPartitionList(partitions));
      if (self->on_rebalance) self->on_rebalance(true, fromPartitionList(group_partitions));
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      if (rd_kafka_assignment_lost(rk)) {
        log->warn("{} lost {} partitions (session timed out?)", rd_kafka_name(rk), partitions->cnt);
      }
      if (self->on_rebalance) self->on_rebalance(false, fromPartitionList(group_partitions));
      self->hot.revoked(fromPartitionList(partitions));
      if (cooperative) {
        ErrorPtr error(rd_kafka_incremental_unassign(rk, partitions));
        if (error)
          log->error("{} incremental unassign: {}", rd_kafka_name(rk),
                     rd_kafka_error_string(error.get()));
      } else {
        rd_kafka_assign(rk, nullptr);
      }
      log->debug("{} revoked {} partitions", rd_kafka_name(rk), partitions->cnt);
    } else {
      log->warn("{} rebalance failed: {}; clearing the assignment", rd_kafka_name(rk),
                rd_kafka_err2str(err));
      if (self->on_rebalance && group_partitions != nullptr && group_partitions->cnt > 0) {
        self->on_rebalance(false, fromPartitionList(group_partitions));
      }
      self->hot.cleared();
      rd_kafka_assign(rk, nullptr);
    }
  }

  // Result of an asynchronous commit (served from poll()).
  static void onCommit(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && offsets != nullptr) {
      for (int i = 0; i < offsets->cnt; ++i) {
        if (offsets->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          err = offsets->elems[i].err;
          break;
        }
      }
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    std::uint64_t suppressed = 0;
    if (self->commit_log.allow(&suppressed)) {
      logger()->warn("{} offset commit failed: {} ({} similar suppressed)", rd_kafka_name(rk),
                     rd_kafka_err2str(err), suppressed);
    }
  }
};

GroupConsumer::GroupConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GroupConsumer::~GroupConsumer() {
  if (impl_) close();
}

td::Result<std::unique_ptr<GroupConsumer>> GroupConsumer::create(
    const Properties& props, std::chrono::milliseconds hot_window) {
  auto impl = std::make_unique<Impl>();
  auto conf = makeConf({{"enable.auto.commit", "false"},
                        {"enable.auto.offset.store", "false"},
                        {"auto.offset.reset", "earliest"}},
                       props, impl.get());
  if (!conf) return td::unexpected(conf.error());
  auto group = confGet(conf->get(), "group.id");
  if (!group || group->empty()) {
    return makeError(Errc::kInvalidArg, "GroupConsumer: the property group.id is required");
  }
  rd_kafka_conf_set_rebalance_cb(conf->get(), &Impl::onRebalance);
  rd_kafka_conf_set_offset_commit_cb(conf->get(), &Impl::onCommit);
  auto rk = makeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
  if (!rk) return td::unexpected(rk.error());
  impl->rk = std::move(*rk);
  // Errors, rebalances and commit results all arrive through rd_kafka_consumer_poll.
  rd_kafka_poll_set_consumer(impl->rk.get());
  impl->hot = HotReading(hot_window, props);
  return std::unique_ptr<GroupConsumer>(new GroupConsumer(std::move(impl)));
}

td::Status GroupConsumer::subscribe(const std::vector<std::string>& topics) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& topic : topics) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  if (auto err = rd_kafka_subscribe(impl_->rk.get(), list.get()); err) {
    return rdKafkaError(err, "subscribe");
  }
  return {};
}

td::Result<std::vector<Message>> GroupConsumer::poll(std::size_t max,
                                                     std::chrono::milliseconds timeout) {
  if (impl_->closed) return std::vector<Message>{};
  if (impl_->hot.twin() != nullptr) {
    return readBoth(impl_->rk.get(), impl_->hot, impl_->pipe, max, timeout, impl_->poll_log, {});
  }
  auto batch = consume(impl_->rk.get(), max, timeout, impl_->poll_log);
  if (batch) impl_->hot.handedOut(*batch);
  return batch;
}

std::uint64_t GroupConsumer::hotRecords() const { return impl_->hot.hotRecords(); }

void GroupConsumer::heat() {
  if (impl_->closed) return;
  impl_->hot.heat(impl_->rk.get(), [this] { return impl_->wakePipe(); });
}

td::Status GroupConsumer::commit(const std::vector<TopicPartitionOffset>& next_offsets,
                                 bool async) {
  if (next_offsets.empty()) return {};
  if (impl_->closed) return makeError(Errc::kState, "commit: the consumer is closed");
  auto list = toPartitionList(next_offsets);
  if (auto err = rd_kafka_commit(impl_->rk.get(), list.get(), async ? 1 : 0); err) {
    return rdKafkaError(err, "commit");
  }
  if (!async) {
    for (int i = 0; i < list->cnt; ++i) {
      const auto& e = list->elems[i];
      if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return rdKafkaError(
            e.err, "commit of " + std::string(e.topic) + "[" + std::to_string(e.partition) + "]");
      }
    }
  }
  return {};
}

td::Status GroupConsumer::storeOffsets(const std::vector<TopicPartitionOffset>& next_offsets) {
  if (next_offsets.empty()) return {};
  if (impl_->closed) return makeError(Errc::kState, "storeOffsets: the consumer is closed");
  auto list = toPartitionList(next_offsets);
  if (auto err = rd_kafka_offsets_store(impl_->rk.get(), list.get()); err) {
    return rdKafkaError(err, "offsets_store");
  }
  return {};
}

void GroupConsumer::onRebalance(RebalanceCallback callback) {
  impl_->on_rebalance = std::move(callback);
}

struct GroupConsumer::GroupMetadata {
  GroupMetadataPtr metadata;
};

std::shared_ptr<const GroupConsumer::GroupMetadata> GroupConsumer::groupMetadata() const {
  auto out = std::make_shared<GroupMetadata>();
  out->metadata.reset(rd_kafka_consumer_group_metadata(impl_->rk.get()));
  return out;
}

rd_kafka_consumer_group_metadata_t* internal::rawGroupMetadata(
    const GroupConsumer::GroupMetadata& metadata) {
  return metadata.metadata.get();
}

void GroupConsumer::setCompanions(std::vector<std::string> topics) {
  impl_->companions = std::move(topics);
}

namespace {
// The assigned partitions with their positions (RD_KAFKA_OFFSET_INVALID where none is known
// yet), or null when the consumer cannot say.
PartitionListPtr assignedPositions(rd_kafka_t* rk) {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_assignment(rk, &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return nullptr;
  PartitionListPtr list(raw);
  if (rd_kafka_position(rk, list.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) return nullptr;
  return list;
}
}  // namespace

std::vector<GroupConsumer::PartitionLag> GroupConsumer::lag() const {
  std::vector<PartitionLag> out;
  if (impl_->closed) return out;
  const PartitionListPtr list = assignedPositions(impl_->rk.get());
  if (!list) return out;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    std::int64_t low = RD_KAFKA_OFFSET_INVALID;
    std::int64_t high = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_get_watermark_offsets(impl_->rk.get(), e.topic, e.partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    const std::int64_t position = impl_->hot.position(e.topic, e.partition, e.offset);
    if (position >= 0) {
      out.push_back({e.topic, e.partition, std::max<std::int64_t>(0, high - position)});
    } else if (low == high) {
      out.push_back({e.topic, e.partition, 0});
    }
  }
  return out;
}

std::vector<TopicPartitionOffset> GroupConsumer::positions() const {
  std::vector<TopicPartitionOffset> out;
  if (impl_->closed) return out;
  const PartitionListPtr list = assignedPositions(impl_->rk.get());
  if (!list) return out;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    // Past what a hot twin handed out, if the consumer has not fetched that far itself.
    const std::int64_t position = impl_->hot.position(e.topic, e.partition, e.offset);
    if (position >= 0) out.push_back({e.topic, e.partition, position});
  }
  return out;
}

void GroupConsumer::close() {
  if (impl_->closed) return;
  impl_->closed = true;
  impl_->hot.stop();
  if (auto err = rd_kafka_consumer_close(impl_->rk.get()); err) {
    logger()->warn("{} close: {}", rd_kafka_name(impl_->rk.get()), rd_kafka_err2str(err));
  }
}

}  // namespace td::kafka
