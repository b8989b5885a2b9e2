#include "coordinator/kafka/flow_prober.h"

#include <utility>

namespace td::coordinator {

td::Result<std::unique_ptr<FlowProber>> FlowProber::create(const kafka::Properties& props,
                                                           std::string topic,
                                                           std::chrono::milliseconds timeout) {
  auto reader = kafka::PartitionReader::create(props);
  if (!reader) return td::unexpected(reader.error());
  return std::unique_ptr<FlowProber>(new FlowProber(std::move(*reader), std::move(topic),
                                                    timeout));
}

FlowProber::FlowProber(std::unique_ptr<kafka::PartitionReader> reader, std::string topic,
                       std::chrono::milliseconds timeout)
    : reader_(std::move(reader)),
      topic_(std::move(topic)),
      timeout_(timeout),
      thread_([this] { loop(); }) {}

FlowProber::~FlowProber() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void FlowProber::ask(std::int32_t partition) {
  {
    std::lock_guard lock(mu_);
    if (!open_.insert(partition).second) return;
    asked_.push_back(partition);
  }
  wake_.notify_all();
}

std::vector<FlowProber::Answer> FlowProber::answers() {
  std::lock_guard lock(mu_);
  return std::exchange(answers_, {});
}

void FlowProber::loop() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || !asked_.empty(); });
    if (stop_) return;
    const std::int32_t partition = asked_.front();
    asked_.pop_front();
    lock.unlock();
    Answer answer = query(partition);
    lock.lock();
    open_.erase(partition);
    answers_.push_back(std::move(answer));
  }
}

FlowProber::Answer FlowProber::query(std::int32_t partition) {
  Answer answer{.partition = partition};
  // The watermarks first: whatever the group commits later is at least what it had then.
  auto marks = reader_->watermarks(topic_, partition, timeout_);
  if (!marks) {
    answer.error = marks.error().message();
    return answer;
  }
  answer.low = marks->first;
  answer.high = marks->second;
  auto committed = reader_->committed(topic_, partition, timeout_);
  if (!committed) {
    answer.error = committed.error().message();
    return answer;
  }
  answer.committed = *committed;
  return answer;
}

}  // namespace td::coordinator
