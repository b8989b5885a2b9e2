// td-audit's reading of one topic (td.events, td.logs) over all its partitions, with a td_kafka
// PartitionReader: no consumer group is joined and nothing is committed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "kafka/kafka.h"

namespace td::audit {

class TopicReader {
 public:
  using OnMessage = std::function<void(const td::kafka::Message&)>;

  // Connects (the -X `props` apply to both clients) and learns the topic's partition count,
  // waiting up to `timeout`. Errors: those of Producer::partitionCount (kUnknownTopicOrPart
  // for a topic that does not exist, kTimedOut/kTransport when the broker does not answer).
  static td::Result<std::unique_ptr<TopicReader>> open(const std::string& bootstrap,
                                                       const td::kafka::Properties& props,
                                                       std::string topic,
                                                       std::chrono::milliseconds timeout);

  // Every record below the high watermarks as they are when called, partition by partition in
  // offset order. Afterwards the reader stays assigned where it stopped, for poll(), which
  // hands out first the records past those watermarks that came with the last batch.
  td::Status readToEnd(const OnMessage& on_message);
  // Reads all partitions from their start (`from_beginning`) or end, for poll().
  td::Status assignAll(bool from_beginning);
  // Records that arrived, waiting up to `timeout` for the first.
  td::Status poll(std::chrono::milliseconds timeout, const OnMessage& on_message);

  const std::string& topic() const { return topic_; }

 private:
  TopicReader() = default;
  std::string topic_;
  std::unique_ptr<td::kafka::PartitionReader> reader_;
  int partitions_ = 0;
  std::vector<td::kafka::Message> later_;  // read by readToEnd() past its watermarks
};

}  // namespace td::audit
