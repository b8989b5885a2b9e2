#include "ctl/cluster.h"

#include <fmt/format.h>

#include "kafka/read_to_end.h"

namespace td::ctl {

td::Result<std::unique_ptr<Cluster>> Cluster::open(const std::string& bootstrap,
                                                   const kafka::Properties& props,
                                                   protocol::Topics topics) {
  std::unique_ptr<Cluster> c(new Cluster());
  c->topics_ = std::move(topics);
  c->bootstrap_ = bootstrap;
  c->props_ = props;
  auto producer = kafka::Producer::create(kafka::producerSettings(bootstrap, "td-ctl", props));
  if (!producer) return td::unexpected(producer.error());
  c->producer_ = std::move(*producer);
  return c;
}

td::Result<kafka::PartitionReader*> Cluster::reader() {
  if (reader_) return reader_.get();
  // Asked after partitions(), so the cluster's id is known.
  const auto kind = kafka::brokerKindOf(producer_->clusterId(std::chrono::milliseconds(1000)));
  auto reader =
      kafka::PartitionReader::create(kafka::readerSettings(bootstrap_, "td-ctl", kind, props_));
  if (!reader) return td::unexpected(reader.error());
  reader_ = std::move(*reader);
  return reader_.get();
}

td::Result<std::int32_t> Cluster::partitions(const std::string& topic,
                                             std::chrono::milliseconds timeout) {
  return producer_->partitionCount(topic, timeout);
}

td::Result<GroupTable> Cluster::readGroups(std::chrono::milliseconds timeout) {
  const std::string topic = topics_.state();
  auto count = partitions(topic, timeout);
  if (!count) return td::unexpected(count.error());
  auto reader = this->reader();
  if (!reader) return td::unexpected(reader.error());
  GroupTable table;
  TD_RETURN_IF_ERROR(kafka::readToEnd(**reader, topic, *count, timeout, [&](const kafka::Message& m) {
    table.add(m.key, m.value, m.partition, m.offset);
  }));
  return table;
}

td::Result<std::map<std::int32_t, std::int64_t>> Cluster::eventsEnd(
    std::chrono::milliseconds timeout) {
  const std::string topic = topics_.events();
  auto count = partitions(topic, timeout);
  if (!count) return td::unexpected(count.error());
  auto reader = this->reader();
  if (!reader) return td::unexpected(reader.error());
  std::map<std::int32_t, std::int64_t> end;
  for (std::int32_t p = 0; p < *count; ++p) {
    auto marks = (*reader)->watermarks(topic, p, timeout);
    if (!marks) return td::unexpected(marks.error());
    end[p] = marks->second;
  }
  return end;
}

td::Status Cluster::sendCancel(const td::v1::GroupSnapshot& group,
                               const td::v1::CancelGroup& request,
                               std::chrono::milliseconds timeout) {
  td::v1::CompletionRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *record.mutable_cancel() = request;
  td::Status delivered = td::makeError(td::Errc::kTimeout, "no acknowledgement");
  TD_RETURN_IF_ERROR(producer_->produce(
      topics_.completions(), group.partition(), group.compatibility_key(),
      record.SerializeAsString(),
      [&](const td::Status& result, std::int32_t, std::int64_t) { delivered = result; }));
  TD_RETURN_IF_ERROR(producer_->flush(timeout));
  return delivered;
}

td::Result<td::v1::Event> Cluster::waitForEnd(const std::string& group_id,
                                              const std::string& request_id,
                                              const std::map<std::int32_t, std::int64_t>& from,
                                              std::chrono::steady_clock::time_point deadline) {
  const std::string topic = topics_.events();
  std::vector<kafka::TopicPartitionOffset> assignment;
  for (const auto& [p, offset] : from) assignment.push_back({topic, p, offset});
  auto reader = this->reader();
  if (!reader) return td::unexpected(reader.error());
  TD_RETURN_IF_ERROR((*reader)->assign(assignment));
  while (std::chrono::steady_clock::now() < deadline) {
    auto batch = (*reader)->poll(1000, std::chrono::milliseconds(200));
    if (!batch) return td::unexpected(batch.error());
    for (const auto& m : *batch) {
      if (m.key != group_id) continue;
      td::v1::Event e;
      if (!e.ParseFromString(m.value) || e.group_id() != group_id) continue;
      const bool ignored_request =
          e.has_input_ignored() && e.input_ignored().detail().find(request_id) != std::string::npos;
      if (e.has_group_cancelled() || e.has_group_completed() || e.has_group_failed() ||
          e.has_group_abandoned() || ignored_request) {
        return e;
      }
    }
  }
  return td::makeError(td::Errc::kTimeout, "no answer");
}

}  // namespace td::ctl
