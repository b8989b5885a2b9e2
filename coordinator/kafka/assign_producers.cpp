#include "coordinator/kafka/assign_producers.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/check.h"
#include "common/log.h"

namespace td::coordinator {

AssignProducers::AssignProducers(std::size_t topics_per_producer, Factory factory)
    : topics_per_producer_(topics_per_producer), factory_(std::move(factory)) {
  TD_CHECK(topics_per_producer_ >= 1);
  TD_CHECK(factory_ != nullptr);
}

AssignProducers::~AssignProducers() = default;

td::Result<std::uint64_t> AssignProducers::place(const std::string& topic) {
  if (!current_) {
    auto producer = factory_(next_index_);
    if (!producer) return td::unexpected(producer.error());
    current_ = next_index_++;
    shards_.emplace(*current_, Shard{.producer = std::move(*producer)});
    td::log::get("coordinator")
        ->info("assign producer {} opened ({} shards open, up to {} groups each)", *current_,
               shards_.size(), topics_per_producer_);
  }
  const std::uint64_t index = *current_;
  Shard& shard = shards_.at(index);
  ++shard.placed;
  ++shard.live;
  shard_of_.emplace(topic, index);
  // Full: the next new topic opens a shard. Its own topics stay with it until forgotten.
  if (shard.placed >= topics_per_producer_) current_.reset();
  return index;
}

td::Status AssignProducers::produce(const std::string& topic, std::int32_t partition,
                                    std::string_view key, std::string_view value,
                                    kafka::Producer::DeliveryCallback on_delivery, int block_ms) {
  auto it = shard_of_.find(topic);
  std::uint64_t index = 0;
  if (it != shard_of_.end()) {
    index = it->second;
  } else {
    auto placed = place(topic);
    if (!placed) return td::unexpected(placed.error());
    index = *placed;
  }
  return shards_.at(index).producer->produce(topic, partition, key, value,
                                             std::move(on_delivery), block_ms);
}

void AssignProducers::forget(const std::string& topic, std::chrono::milliseconds close_timeout) {
  auto it = shard_of_.find(topic);
  if (it == shard_of_.end()) return;
  const std::uint64_t index = it->second;
  shard_of_.erase(it);
  Shard& shard = shards_.at(index);
  TD_DCHECK(shard.live > 0);
  --shard.live;
  if (shard.live > 0 || current_ == index) {
    shard.producer->forgetTopic(topic);   // its handle; librdkafka keeps the topic itself
    return;
  }
  // Full and empty: nothing will be produced through it again. Its records were normally
  // acknowledged long ago (a group is forgotten only after its retention).
  auto flushed = shard.producer->flush(close_timeout);
  if (!flushed) {
    td::log::get("coordinator")
        ->warn("assign producer {} closing with records unacknowledged: {}", index,
               flushed.error().message());
  }
  shards_.erase(index);   // destroys it (purging whatever is left)
  ++closed_;
  td::log::get("coordinator")
      ->info("assign producer {} closed: all its {} groups are gone ({} shards open)", index,
             topics_per_producer_, shards_.size());
}

int AssignProducers::outstanding() const {
  int total = 0;
  for (const auto& [index, shard] : shards_) total += shard.producer->outstanding();
  return total;
}

td::Status AssignProducers::flush(std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  td::Status result;
  for (auto& [index, shard] : shards_) {
    if (shard.producer->outstanding() == 0) continue;
    // One deadline for all: the shards' records travel in parallel, so waiting for one lets
    // the others finish too; a broker outage costs `timeout` once, not once per shard.
    const auto left = std::max(std::chrono::milliseconds(0),
                               std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
    auto flushed = shard.producer->flush(left);
    if (!flushed && result) {
      result = makeError(flushed.error().code(),
                         fmt::format("assign producer {}: {}", index, flushed.error().context()));
    }
  }
  return result;
}

}  // namespace td::coordinator
