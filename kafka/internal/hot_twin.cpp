#include "kafka/internal/hot_twin.h"

#include <algorithm>
#include <set>
#include <string_view>

namespace td::kafka::internal {

bool NextOffsets::accept(const Message& m) {
  auto [it, first] = next_.try_emplace({m.topic, m.partition}, m.offset + 1);
  if (first) return true;
  if (m.offset < it->second) return false;
  it->second = m.offset + 1;
  return true;
}

void NextOffsets::set(const std::string& topic, std::int32_t partition, std::int64_t next) {
  next_[{topic, partition}] = next;
}

void NextOffsets::erase(const std::string& topic, std::int32_t partition) {
  next_.erase({topic, partition});
}

td::Result<std::unique_ptr<HotTwin>> HotTwin::create(const Properties& props,
                                                     const WakePipe& pipe,
                                                     std::chrono::milliseconds window) {
  std::unique_ptr<HotTwin> twin(new HotTwin());
  Properties own = props;
  // Its own placeholder group (never joined, never committed to), never a static member of
  // the owner's.
  std::erase_if(own, [](const auto& kv) {
    return kv.first == "group.id" || kv.first == "group.instance.id" ||
           kv.first == "enable.auto.commit" || kv.first == "enable.auto.offset.store";
  });
  own.emplace_back("group.id", placeholderGroup("td-hot"));
  own.emplace_back("fetch.wait.max.ms", "0");
  auto consumer = makeAssignOnlyConsumer({{"enable.auto.commit", "false"},
                                          {"enable.auto.offset.store", "false"},
                                          {"auto.offset.reset", "latest"}},
                                         own, twin.get(), pipe);
  if (!consumer) return td::unexpected(consumer.error());
  twin->rk_ = std::move(consumer->rk);
  twin->queue_ = std::move(consumer->queue);
  twin->window_ = window;
  return twin;
}

HotTwin::~HotTwin() {
  if (queue_) {
    WakePipe::unwatch(queue_.get());
    queue_.reset();
  }
  if (rk_) rd_kafka_consumer_close(rk_.get());
}

namespace {
PartitionListPtr listOf(const std::vector<std::pair<std::string, std::int32_t>>& partitions) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(
      static_cast<int>(std::max<std::size_t>(partitions.size(), 1))));
  for (const auto& [topic, partition] : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  }
  return list;
}
}  // namespace

void HotTwin::add(const std::vector<TopicPartitionOffset>& partitions) {
  std::vector<std::pair<std::string, std::int32_t>> added;
  for (const auto& tp : partitions) {
    std::pair key{tp.topic, tp.partition};
    if (std::find(held_.begin(), held_.end(), key) == held_.end()) added.push_back(key);
  }
  if (added.empty()) return;
  // Paused first, so it fetches nothing before heat() seeks it.
  PartitionListPtr list = listOf(added);
  for (int i = 0; i < list->cnt; ++i) list->elems[i].offset = RD_KAFKA_OFFSET_END;
  ErrorPtr error(rd_kafka_incremental_assign(rk_.get(), list.get()));
  if (error) {
    logger()->debug("hot twin: assign: {}", rd_kafka_error_string(error.get()));
    return;
  }
  rd_kafka_pause_partitions(rk_.get(), list.get());
  held_.insert(held_.end(), added.begin(), added.end());
  // The twin learns the leaders now, not at its next metadata refresh: a worker's new
  // td.assign topic otherwise stayed cold for its first half second (td-bench dispatch_w1).
  // After the assignment, not before it: warmed first, the twins of td-bench's floor stayed
  // cold in most runs (measured, not understood; docs/performance.md).
  std::set<std::string> topics;
  for (const auto& key : added) topics.insert(key.first);
  for (const auto& topic : topics) warmMetadata(rk_.get(), topic, kWarmupMs);
}

void HotTwin::remove(const std::vector<TopicPartitionOffset>& partitions) {
  std::vector<std::pair<std::string, std::int32_t>> gone;
  for (const auto& tp : partitions) {
    std::pair key{tp.topic, tp.partition};
    if (std::erase(held_, key) > 0) gone.push_back(key);
    std::erase(started_, key);
  }
  if (gone.empty()) return;
  PartitionListPtr list = listOf(gone);
  ErrorPtr error(rd_kafka_incremental_unassign(rk_.get(), list.get()));
  if (error) logger()->debug("hot twin: unassign: {}", rd_kafka_error_string(error.get()));
}

void HotTwin::clear() {
  rd_kafka_assign(rk_.get(), nullptr);
  held_.clear();
  started_.clear();
  hot_ = false;
}

void HotTwin::heat(const NextOffsets& next) {
  hot_until_ = std::chrono::steady_clock::now() + window_;
  // While hot, the partitions started already fetch in log order from where they were started
  // and are left alone; one whose next offset became known since (a record of it was handed
  // out) is started now. A cool twin starts every known partition afresh.
  // Called on every batch of a busy coordinator: nothing is allocated unless a partition starts.
  std::vector<std::pair<std::string, std::int32_t>> start;
  for (const auto& key : held_) {
    if (hot_ && std::find(started_.begin(), started_.end(), key) != started_.end()) continue;
    if (next.all().contains(key)) start.push_back(key);   // else where to start is not known yet
  }
  if (start.empty()) return;
  PartitionListPtr seek = listOf(start);
  for (int i = 0; i < seek->cnt; ++i) {
    seek->elems[i].offset = next.all().at({seek->elems[i].topic, seek->elems[i].partition});
  }
  // A seek moves the partition's fetch version on: what the twin fetched before is dropped.
  ErrorPtr error(rd_kafka_seek_partitions(rk_.get(), seek.get(), 0));
  if (error) {
    logger()->debug("hot twin: seek: {}", rd_kafka_error_string(error.get()));
    return;
  }
  rd_kafka_resume_partitions(rk_.get(), seek.get());
  for (auto& key : start) {
    if (std::find(started_.begin(), started_.end(), key) == started_.end()) {
      started_.push_back(std::move(key));
    }
  }
  hot_ = true;
}

void HotTwin::coolIfDue() {
  if (!hot_ || std::chrono::steady_clock::now() < hot_until_) return;
  PartitionListPtr list = listOf(held_);
  rd_kafka_pause_partitions(rk_.get(), list.get());
  hot_ = false;
}

td::Result<std::vector<Message>> HotTwin::take(std::size_t max, PeriodicLog& limiter,
                                               const std::vector<rd_kafka_resp_err_t>& quiet) {
  auto batch = consume(rk_.get(), max, std::chrono::milliseconds(0), limiter, quiet);
  if (!batch) return batch;
  std::erase_if(*batch, [&](const Message& m) {
    return std::find(started_.begin(), started_.end(), std::pair{m.topic, m.partition}) ==
           started_.end();
  });
  return batch;
}

void HotReading::assigned(const std::vector<TopicPartitionOffset>& partitions) {
  if (window_.count() == 0) return;
  for (const auto& tp : partitions) {
    std::erase_if(assigned_, [&](const auto& a) {
      return a.topic == tp.topic && a.partition == tp.partition;
    });
    assigned_.push_back(tp);
    if (tp.offset >= 0) {
      next_.set(tp.topic, tp.partition, tp.offset);
    } else {
      next_.erase(tp.topic, tp.partition);   // known once a record of it is handed out
    }
  }
  if (twin_) twin_->add(partitions);
}

void HotReading::revoked(const std::vector<TopicPartitionOffset>& partitions) {
  if (window_.count() == 0) return;
  for (const auto& tp : partitions) {
    std::erase_if(assigned_, [&](const auto& a) {
      return a.topic == tp.topic && a.partition == tp.partition;
    });
    next_.erase(tp.topic, tp.partition);
  }
  if (twin_) twin_->remove(partitions);
}

void HotReading::cleared() {
  assigned_.clear();
  next_.clear();
  if (twin_) twin_->clear();
}

void HotReading::handedOut(const std::vector<Message>& batch) {
  if (window_.count() == 0 || mode_ == Mode::kOff) return;
  for (const auto& m : batch) next_.accept(m);
}

void HotReading::heat(rd_kafka_t* owner, const std::function<const WakePipe*()>& pipe) {
  if (!enabled()) return;
  if (mode_ == Mode::kUndecided) {
    // Only the embedded broker (librdkafka's mock cluster, "mockCluster<hex>") holds an
    // empty fetch for the whole fetch.wait.max.ms; Apache Kafka answers it when data arrives,
    // so there the owner alone is as quick. The id is known once metadata has arrived.
    char* id = rd_kafka_clusterid(owner, 0);
    if (id == nullptr) return;
    const bool mock = std::string_view(id).starts_with("mockCluster");
    rd_kafka_mem_free(owner, id);
    mode_ = Mode::kOff;
    if (!mock) return;
    const WakePipe* wake = pipe();
    if (wake == nullptr) return;
    auto twin = HotTwin::create(props_, *wake, window_);
    if (!twin) {
      logger()->warn("{}: no hot fetching: {}", rd_kafka_name(owner), twin.error().message());
      return;
    }
    twin_ = std::move(*twin);
    twin_->add(assigned_);
    mode_ = Mode::kOn;
  }
  twin_->heat(next_);
}

std::int64_t HotReading::position(const std::string& topic, std::int32_t partition,
                                  std::int64_t owner_position) const {
  if (!twin_) return owner_position;
  auto it = next_.all().find({topic, partition});
  return it == next_.all().end() ? owner_position : std::max(owner_position, it->second);
}

td::Result<std::vector<Message>> readBoth(rd_kafka_t* owner, HotReading& hot, const WakePipe& pipe,
                                          std::size_t max, std::chrono::milliseconds timeout,
                                          PeriodicLog& limiter,
                                          const std::vector<rd_kafka_resp_err_t>& quiet) {
  using Clock = std::chrono::steady_clock;
  HotTwin& twin = *hot.twin();
  const auto deadline = Clock::now() + timeout;
  std::vector<Message> out;
  pipe.drain();
  while (true) {
    twin.coolIfDue();
    auto mine = consume(owner, max - out.size(), std::chrono::milliseconds(0), limiter, quiet);
    if (!mine) return mine;
    for (auto& m : *mine) {
      if (hot.next().accept(m)) out.push_back(std::move(m));
    }
    if (out.size() < max) {
      auto theirs = twin.take(max - out.size(), limiter, quiet);
      if (!theirs) return theirs;
      for (auto& m : *theirs) {
        if (!hot.next().accept(m)) continue;
        out.push_back(std::move(m));
        hot.countHot(1);
      }
    }
    const auto now = Clock::now();
    if (!out.empty() || now >= deadline) break;
    // While hot, look again soon: the window may pass before anything arrives.
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (twin.hot()) wait = std::min(wait, std::chrono::milliseconds(5));
    pipe.wait(wait);
    pipe.drain();
  }
  // Stopped at `max`: more may be queued, and librdkafka signals only a queue that was empty.
  if (max > 0 && out.size() >= max) pipe.signal();
  return out;
}

}  // namespace td::kafka::internal
