#include "audit/kafka/event_source.h"

#include <chrono>
#include <utility>

#include "common/log.h"

namespace td::audit {

td::Result<std::unique_ptr<EventSource>> EventSource::open(const std::string& bootstrap,
                                                           const td::kafka::Properties& props,
                                                           std::string topic) {
  auto reader = TopicReader::open(bootstrap, props, std::move(topic), std::chrono::seconds(10));
  if (!reader) return td::unexpected(reader.error());
  return std::unique_ptr<EventSource>(new EventSource(std::move(*reader)));
}

td::Result<std::vector<td::v1::Event>> EventSource::readAll() {
  std::vector<td::v1::Event> out;
  TD_RETURN_IF_ERROR(reader_->readToEnd([&](const td::kafka::Message& m) { parse(m, out); }));
  return out;
}

td::Status EventSource::follow(std::int64_t since_ms, const std::atomic<bool>& stop,
                               const std::function<void(const td::v1::Event&)>& on_event) {
  TD_RETURN_IF_ERROR(reader_->assignAll(since_ms >= 0));
  while (!stop.load()) {
    std::vector<td::v1::Event> events;
    TD_RETURN_IF_ERROR(reader_->poll(std::chrono::milliseconds(200),
                                     [&](const td::kafka::Message& m) { parse(m, events); }));
    for (const auto& e : events) {
      if (since_ms >= 0 && e.timestamp_ms() < since_ms) continue;
      on_event(e);
    }
  }
  return {};
}

void EventSource::parse(const td::kafka::Message& m, std::vector<td::v1::Event>& out) {
  td::v1::Event e;
  if (!e.ParseFromString(m.value)) {
    ++unparsable_;
    td::log::get("audit")->warn("{}[{}]@{}: not an Event; skipped", m.topic, m.partition,
                                m.offset);
    return;
  }
  out.push_back(std::move(e));
}

}  // namespace td::audit
