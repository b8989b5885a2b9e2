#include "audit/topic_reader.h"

#include <map>
#include <vector>

namespace td::audit {

td::Result<std::unique_ptr<TopicReader>> TopicReader::open(const std::string& bootstrap,
                                                           const td::kafka::Properties& props,
                                                           std::string topic,
                                                           std::chrono::milliseconds timeout) {
  std::unique_ptr<TopicReader> r(new TopicReader());
  r->topic_ = std::move(topic);
  auto reader =
      td::kafka::PartitionReader::create(td::kafka::readerSettings(bootstrap, "td-audit", props));
  if (!reader) return std::unexpected(reader.error());
  r->reader_ = std::move(*reader);
  // For partition counts only; with the -X properties like every client (a secured
  // cluster's credentials).
  td::kafka::Properties producer_props{{"bootstrap.servers", bootstrap},
                                       {"client.id", "td-audit"}};
  producer_props.insert(producer_props.end(), props.begin(), props.end());
  auto producer = td::kafka::Producer::create(producer_props);
  if (!producer) return std::unexpected(producer.error());
  auto count = (*producer)->partitionCount(r->topic_, timeout);
  if (!count) return std::unexpected(count.error());
  r->partitions_ = *count;
  return r;
}

td::Status TopicReader::readToEnd(const OnMessage& on_message) {
  std::map<std::int32_t, std::int64_t> high;
  std::vector<td::kafka::TopicPartitionOffset> assignment;
  for (std::int32_t p = 0; p < partitions_; ++p) {
    auto marks = reader_->watermarks(topic_, p, std::chrono::seconds(10));
    if (!marks) return std::unexpected(marks.error());
    // Empty partitions are assigned too (at their end), so that poll() sees what arrives there.
    if (marks->second <= marks->first) {
      assignment.push_back({topic_, p, marks->second});
      continue;
    }
    high[p] = marks->second;
    assignment.push_back({topic_, p, marks->first});
  }
  if (assignment.empty()) return {};
  TD_RETURN_IF_ERROR(reader_->assign(assignment));
  std::map<std::int32_t, std::int64_t> next;
  // Or the reader's position past it: a log written in transactions (--exactly-once) ends
  // with a marker that is never handed out.
  auto done = [&] {
    for (const auto& [p, h] : high) {
      if (next[p] < h && reader_->position(topic_, p) < h) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return td::makeError(td::Errc::kTimeout,
                           "could not read " + topic_ + " up to its high watermarks");
    }
    auto batch = reader_->poll(1000, std::chrono::milliseconds(200));
    if (!batch) return std::unexpected(batch.error());
    for (auto& m : *batch) {
      next[m.partition] = std::max(next[m.partition], m.offset + 1);
      // Past the watermarks read: not part of this snapshot, but the first of poll()'s.
      const auto h = high.find(m.partition);
      if (h == high.end() || m.offset >= h->second) {
        later_.push_back(std::move(m));
      } else {
        on_message(m);
      }
    }
  }
  return {};
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
  if (!batch) return std::unexpected(batch.error());
  for (const auto& m : *batch) on_message(m);
  return {};
}

}  // namespace td::audit
