// The embedded broker: librdkafka's mock Kafka cluster, hosted in this process. Other processes
// reach it at bootstrapServers() like any Kafka. It has no Admin API, keeps about 5 MiB per
// partition, and auto-creates unknown topics with 4 partitions (see KAFKA-NOTES.md).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "kafka/error.h"

namespace td::kafka {

// Thread safety: every method may be called from any thread (the cluster runs on its own
// thread and these calls are posted to it). Destroying it closes the listeners; that can take
// about 1 s in librdkafka 2.0.2 once clients have connected (destroy clients first).
class EmbeddedBroker {
 public:
  struct Options {
    int brokers = 1;  // broker ids are 1..brokers, each on its own random 127.0.0.1 port
    // Topics created at start, with their partition counts (replication min(brokers, 3)).
    std::vector<std::pair<std::string, int>> topics;
  };
  // Errors: Errc::kInvalidArg (brokers < 1, partitions < 1), Errc::kFail if the cluster
  // could not start, or the error of creating a topic.
  static td::Result<std::unique_ptr<EmbeddedBroker>> start(const Options& options);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // "127.0.0.1:PORT[,127.0.0.1:PORT...]".
  const std::string& bootstrapServers() const;
  int brokerCount() const;

  // Fault injection. A broker that is down drops its connections and refuses new ones; its
  // partitions keep it as leader (no fail-over). Errors: kInvalidArg for an unknown broker id.
  td::Status setBrokerDown(int broker_id);
  td::Status setBrokerUp(int broker_id);
  // Adds rtt_ms of latency to every response of the broker (0 removes it).
  td::Status setRtt(int broker_id, int rtt_ms);
  // The next requests with this API key (0 Produce, 1 Fetch, 3 Metadata, 8 OffsetCommit, 10
  // FindCoordinator, 11 JoinGroup, 14 SyncGroup, ...) fail with these errors, one each, in order.
  void pushRequestErrors(int api_key, const std::vector<int>& errors);
  // Moves the leadership of a partition. Errors: kInvalidArg, kUnknownTopicOrPart.
  td::Status setPartitionLeader(const std::string& topic, int partition, int broker_id);
  // Errors: kInvalidArg (partitions < 1), kTopicAlreadyExists.
  td::Status createTopic(const std::string& topic, int partitions);

  struct Impl;

 private:
  explicit EmbeddedBroker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace td::kafka
