#include "kafka/read_to_end.h"

#include <map>
#include <vector>

namespace td::kafka {

td::Status readToEnd(PartitionReader& reader, const std::string& topic, std::int32_t partitions,
                     std::chrono::milliseconds timeout,
                     const std::function<void(const Message&)>& on_message,
                     const std::function<void(const Message&)>& on_past) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<std::int32_t, std::int64_t> high;
  std::vector<TopicPartitionOffset> assignment;
  for (std::int32_t p = 0; p < partitions; ++p) {
    auto marks = reader.watermarks(topic, p, timeout);
    if (!marks) return td::unexpected(marks.error());
    if (marks->second <= marks->first) {
      if (on_past) assignment.push_back({topic, p, marks->second});
      continue;
    }
    high[p] = marks->second;
    assignment.push_back({topic, p, marks->first});
  }
  if (assignment.empty()) return {};
  TD_RETURN_IF_ERROR(reader.assign(assignment));
  std::map<std::int32_t, std::int64_t> next;
  // Or the reader's position past it: a log written in transactions (--exactly-once) ends
  // with a marker that is never handed out.
  auto done = [&] {
    for (const auto& [p, h] : high) {
      if (next[p] < h && reader.position(topic, p) < h) return false;
    }
    return true;
  };
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return td::makeError(td::Errc::kTimeout,
                           "could not read " + topic + " up to its high watermarks within " +
                               std::to_string(timeout.count()) + " ms");
    }
    auto batch = reader.poll(1000, std::chrono::milliseconds(200));
    if (!batch) return td::unexpected(batch.error());
    for (const auto& m : *batch) {
      next[m.partition] = std::max(next[m.partition], m.offset + 1);
      const auto h = high.find(m.partition);
      if (h != high.end() && m.offset < h->second) {
        on_message(m);
      } else if (on_past) {
        on_past(m);
      }
    }
  }
  return {};
}

}  // namespace td::kafka
