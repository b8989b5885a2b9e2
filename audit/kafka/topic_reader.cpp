#include "audit/kafka/topic_reader.h"

#include "kafka/read_to_end.h"

namespace td::audit {

td::Result<std::unique_ptr<TopicReader>> TopicReader::open(const std::string& bootstrap,
                                                           const td::kafka::Properties& props,
                                                           std::string topic,
                                                           std::chrono::milliseconds timeout) {
  std::unique_ptr<TopicReader> r(new TopicReader());
  r->topic_ = std::move(topic);
  // For partition counts and the cluster's id; with the -X properties like every client (a
  // secured cluster's credentials).
  td::kafka::Properties producer_props{{"bootstrap.servers", bootstrap},
                                       {"client.id", "td-audit"}};
  producer_props.insert(producer_props.end(), props.begin(), props.end());
  auto producer = td::kafka::Producer::create(producer_props);
  if (!producer) return td::unexpected(producer.error());
  auto count = (*producer)->partitionCount(r->topic_, timeout);
  if (!count) return td::unexpected(count.error());
  const auto kind =
      td::kafka::brokerKindOf((*producer)->clusterId(std::chrono::milliseconds(1000)));
  auto reader = td::kafka::PartitionReader::create(
      td::kafka::readerSettings(bootstrap, "td-audit", kind, props));
  if (!reader) return td::unexpected(reader.error());
  r->reader_ = std::move(*reader);
  r->partitions_ = *count;
  return r;
}

td::Status TopicReader::readToEnd(const OnMessage& on_message) {
  // Records past the watermarks are not part of this snapshot, but the first of poll()'s.
  return td::kafka::readToEnd(*reader_, topic_, partitions_, std::chrono::seconds(60), on_message,
                              [&](const td::kafka::Message& m) { later_.push_back(m); });
}

td::Status TopicReader::assignAll(bool from_beginning) {
  later_.clear();
  std::vector<td::kafka::TopicPartitionOffset> assignment;
  for (std::int32_t p = 0; p < partitions_; ++p) {
    assignment.push_back(
        {topic_, p, from_beginning ? td::kafka::kOffsetBeginning : td::kafka::kOffsetEnd});
  }
  return reader_->assign(assignment);
}

td::Status TopicReader::poll(std::chrono::milliseconds timeout, const OnMessage& on_message) {
  if (!later_.empty()) {
    for (const auto& m : later_) on_message(m);
    later_.clear();
    return {};
  }
  auto batch = reader_->poll(1000, timeout);
  if (!batch) return td::unexpected(batch.error());
  for (const auto& m : *batch) on_message(m);
  return {};
}

}  // namespace td::audit
