#include "coordinator/kafka/service.h"

#include <fmt/format.h>

#include <map>
#include <thread>

#include "common/log.h"
#include "coordinator/codec.h"
#include "td/v1/dlq.pb.h"

namespace td::coordinator {

Service::Service(ServiceOptions options, const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      core_(options_.core),
      log_(td::log::get("coordinator")) {}

td::Result<std::unique_ptr<Service>> Service::create(ServiceOptions options, const Clock& clock) {
  std::unique_ptr<Service> service(new Service(std::move(options), clock));
  const auto& o = service->options_;
  // session.timeout.ms 6 s (librdkafka's default is 45 s; 6 s is Apache Kafka's lowest accepted
  // by default): a dead coordinator's partitions move sooner, and a join the embedded broker
  // sometimes holds for a whole session timeout (seen: 47 s before the first assignment on a
  // fresh td-broker) resolves in seconds.
  kafka::Properties consumer_own{{"group.id", o.consumer_group},
                                 {"session.timeout.ms", "6000"},
                                 {"heartbeat.interval.ms", "2000"}};
  // Output is never dropped: through an outage it waits (and the batch's offsets stay
  // uncommitted) until the broker is back.
  kafka::Properties producer_own{{"message.timeout.ms", "0"}};
  consumer_own.insert(consumer_own.end(), o.kafka.begin(), o.kafka.end());
  producer_own.insert(producer_own.end(), o.kafka.begin(), o.kafka.end());
  const auto consumer_props =
      kafka::readerSettings(o.bootstrap_servers, o.core.coordinator_id, consumer_own);
  const auto producer_props =
      kafka::producerSettings(o.bootstrap_servers, o.core.coordinator_id, producer_own);
  auto consumer = kafka::GroupConsumer::create(consumer_props);
  if (!consumer) return std::unexpected(consumer.error());
  auto producer = kafka::Producer::create(producer_props);
  if (!producer) return std::unexpected(producer.error());
  service->consumer_ = std::move(*consumer);
  service->producer_ = std::move(*producer);
  TD_RETURN_IF_ERROR(service->consumer_->subscribe(
      {o.core.topics.registrations(), o.core.topics.completions()}));
  return service;
}

td::Status Service::run() {
  log_->info("coordinator {} epoch {} consuming {} and {} as group {} (lease {} ms, heartbeat {} ms)",
             options_.core.coordinator_id, options_.core.epoch,
             options_.core.topics.registrations(), options_.core.topics.completions(),
             options_.consumer_group, options_.core.lease.count(),
             options_.core.heartbeat_interval.count());
  Millis next_tick = clock_.now().mono;
  while (!stopping_.load()) {
    const Instant now = clock_.now();
    const auto wait = std::max(Millis(0), std::min(options_.tick_interval, next_tick - now.mono));
    auto batch = consumer_->poll(options_.batch_max, wait);
    if (!batch) return std::unexpected(batch.error());
    if (!batch->empty()) TD_RETURN_IF_ERROR(handleBatch(*batch));
    if (clock_.now().mono >= next_tick) {
      apply(nullptr, core_.handle(Tick{}, clock_.now()));
      next_tick = clock_.now().mono + options_.tick_interval;
      producer_->poll(0);
    }
  }
  log_->info("coordinator stopping: flushing");
  TD_RETURN_IF_ERROR(producer_->flush(std::chrono::seconds(10)));
  consumer_->close();
  return {};
}

td::Status Service::handleBatch(const std::vector<kafka::Message>& batch) {
  for (const auto& msg : batch) {
    probe_.records_in.fetch_add(1);
    td::Result<Input> input = msg.topic == options_.core.topics.registrations()
                                  ? decodeRegistrationRecord(msg.value, msg.partition)
                                  : decodeCompletionRecord(msg.value);
    if (!input) {
      apply(&msg, Effects{DeadLetter{.reason = input.error().message()}});
      continue;
    }
    apply(&msg, core_.handle(*input, clock_.now()));
  }
  probe_.batches.fetch_add(1);
  return flushAndCommit(batch);
}

void Service::produce(const std::string& topic, std::int32_t partition, const std::string& key,
                      const std::string& value) {
  probe_.records_out.fetch_add(1);
  auto status = producer_->produce(
      topic, partition, key, value,
      [this, topic](const td::Status& result, std::int32_t, std::int64_t) {
        if (!result) {
          delivery_failures_.fetch_add(1);
          log_->error("delivery to {} failed: {}", topic, result.error().message());
        }
      },
      /*block_ms=*/10000);
  if (!status) {
    delivery_failures_.fetch_add(1);
    log_->error("produce to {} failed: {}", topic, status.error().message());
  }
}

void Service::apply(const kafka::Message* source, const Effects& effects) {
  const auto& topics = options_.core.topics;
  for (const auto& effect : effects) {
    if (const auto* join = std::get_if<PublishJoin>(&effect)) {
      produce(topics.joins(), join->partition, join->key, join->record.SerializeAsString());
      if (join->record.has_rejected()) {
        log_->warn("rejected registration peer={} reason={}", join->record.rejected().peer_id(),
                   join->record.rejected().reason());
      }
    } else if (const auto* assignment = std::get_if<PublishAssignment>(&effect)) {
      produce(topics.assign(assignment->group_id), 0, assignment->group_id,
              assignment->record.SerializeAsString());
    } else if (const auto* event = std::get_if<PublishEvent>(&effect)) {
      log_->info("group={} seq={} {}", event->event.group_id(), event->event.sequence(),
                 protocol::describe(event->event));
      produce(topics.events(), -1, event->event.group_id(), event->event.SerializeAsString());
    } else if (const auto* dead = std::get_if<DeadLetter>(&effect)) {
      probe_.dead_letters.fetch_add(1);
      td::v1::DeadLetter record;
      record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
      record.set_reason(dead->reason);
      record.set_coordinator_id(options_.core.coordinator_id);
      record.set_timestamp_ms(clock_.now().wall.count());
      if (source != nullptr) {
        record.set_source_topic(source->topic);
        record.set_source_partition(source->partition);
        record.set_source_offset(source->offset);
        record.set_key(source->key.substr(0, protocol::kMaxDeadLetterValueBytes));
        record.set_value(source->value.substr(0, protocol::kMaxDeadLetterValueBytes));
        record.set_value_truncated(source->value.size() > protocol::kMaxDeadLetterValueBytes);
        record.set_value_size(source->value.size());
        log_->warn("dead letter {}[{}]@{}: {}", source->topic, source->partition, source->offset,
                   dead->reason);
      }
      produce(topics.dlq(), -1, source != nullptr ? source->key : "",
              record.SerializeAsString());
    }
  }
}

td::Status Service::flushAndCommit(const std::vector<kafka::Message>& batch) {
  // Durable first: wait until the broker acknowledged everything this batch produced.
  while (true) {
    auto flushed = producer_->flush(std::chrono::seconds(5));
    if (flushed) break;
    if (stopping_.load()) return flushed;
    log_->warn("waiting for the broker to acknowledge output: {}", flushed.error().message());
  }
  if (auto failures = delivery_failures_.load(); failures != 0) {
    // Something this batch decided was not written: do not commit, so a restart replays it.
    return makeError(td::Errc::kUnavailable,
                     fmt::format("{} output records could not be delivered", failures));
  }
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> next;
  for (const auto& msg : batch) {
    auto& offset = next[{msg.topic, msg.partition}];
    offset = std::max(offset, msg.offset + 1);
  }
  std::vector<kafka::TopicPartitionOffset> offsets;
  for (const auto& [tp, offset] : next) offsets.push_back({tp.first, tp.second, offset});
  auto committed = consumer_->commit(offsets, /*async=*/true);
  if (!committed) log_->warn("offset commit failed: {}", committed.error().message());
  return {};
}

}  // namespace td::coordinator
