// Topic administration through Kafka's Admin API (CreateTopics, DeleteTopics): RAII over a
// librdkafka handle used for nothing else.
//
// The embedded broker (librdkafka's mock cluster) implements neither request: calls to it run
// out of time (docs/configuration.md, "Assignment topics").
//
// Thread safety: use from one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "kafka/error.h"
#include "kafka/types.h"

namespace td::kafka {

struct NewTopic {
  std::string name;
  int partitions = 1;
  int replication = -1;   // -1: the broker's default.replication.factor (Kafka 2.4 and later)
  Properties config;      // topic configuration entries (retention.ms=..., ...)
};

// What became of one topic of a request.
struct TopicOutcome {
  std::string topic;
  td::Status status;
};

class Admin {
 public:
  // `props` as for any client (bootstrap.servers, security settings...).
  // Errors: Errc::kInvalidArg naming an unknown or invalid property.
  static td::Result<std::unique_ptr<Admin>> create(const Properties& props);
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  // Creates `topics` with one CreateTopics request to the controller, waiting up to `timeout`
  // for its answer. Returns one outcome per topic, in order. A topic that already exists counts
  // as created. When the request as a whole fails (no controller within `timeout`, a broker
  // without the Admin API, an invalid argument), every topic gets that error.
  std::vector<TopicOutcome> createTopics(const std::vector<NewTopic>& topics,
                                         std::chrono::milliseconds timeout);

  // Sends one DeleteTopics request for `topics` and returns at once; takeDeleted() collects
  // the outcomes (within about `timeout`). A topic that does not exist counts as deleted.
  void deleteTopics(const std::vector<std::string>& topics, std::chrono::milliseconds timeout);
  // Outcomes of deleteTopics() requests answered since the last call (does not wait).
  std::vector<TopicOutcome> takeDeleted();
  // Topics sent by deleteTopics() whose outcome takeDeleted() has not returned yet.
  std::size_t deletesInFlight() const { return deletes_in_flight_; }

 private:
  struct Impl;
  explicit Admin(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::size_t deletes_in_flight_ = 0;
};

}  // namespace td::kafka
