// td-audit's source of events: td.events read over every partition with a TopicReader (no
// consumer group, nothing committed), each record decoded as an Event. Records that are not an
// Event are skipped, logged and counted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "audit/kafka/topic_reader.h"
#include "common/result.h"
#include "kafka/types.h"
#include "td/v1/events.pb.h"

namespace td::audit {

class EventSource {
 public:
  // Connects (the -X `props` apply to every client) and learns the partitions of `topic`.
  // Errors: TopicReader::open's.
  static td::Result<std::unique_ptr<EventSource>> open(const std::string& bootstrap,
                                                       const td::kafka::Properties& props,
                                                       std::string topic);

  // Every record up to the high watermarks as they are now.
  td::Result<std::vector<td::v1::Event>> readAll();
  // Calls `on_event` for each record from `since_ms` on (new records only when < 0) until
  // `stop` is set (checked at least every 200 ms).
  td::Status follow(std::int64_t since_ms, const std::atomic<bool>& stop,
                    const std::function<void(const td::v1::Event&)>& on_event);

  // Records skipped so far because they were not an Event.
  std::size_t unparsable() const { return unparsable_; }

 private:
  explicit EventSource(std::unique_ptr<TopicReader> reader) : reader_(std::move(reader)) {}
  void parse(const td::kafka::Message& m, std::vector<td::v1::Event>& out);

  std::unique_ptr<TopicReader> reader_;
  std::size_t unparsable_ = 0;
};

}  // namespace td::audit
