// The coordinator shell's port (coordinator/shell/port.h) on librdkafka: the input consumer
// (cooperative rebalancing, offsets stored and committed by librdkafka's timer), the main
// producer, the td.assign producer shards (AssignProducers), the state and step-stats readers,
// the flow prober and the Admin client of assignment topics.
//
// With exactly_once one transactional producer writes everything, td.assign included (a
// transaction belongs to one producer): there are no shards.
//
// Thread safety: the service thread only (FlowProber has its own thread inside).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordinator/kafka/assign_producers.h"
#include "coordinator/kafka/assign_topics.h"
#include "coordinator/kafka/flow_prober.h"
#include "coordinator/shell/port.h"
#include "coordinator/shell/service.h"
#include "kafka/client_settings.h"
#include "kafka/kafka.h"

namespace td::coordinator {

// The librdkafka properties td-coordinator's producers (the main one and the td.assign shards)
// set under `options`' -X overrides, which come last. Also used by td-topic-floor, so its
// floor is measured with the coordinator's own producer settings.
kafka::Properties producerOwnSettings(const ServiceOptions& options);

class KafkaPort final : public Port {
 public:
  // Makes the clients; contacts no broker. Errors: checkOptions()'s, making a client.
  // `probe` counts what happens to assignment topics; it outlives the port.
  static td::Result<std::unique_ptr<Port>> create(const ServiceOptions& options,
                                                  ServiceProbe& probe);
  // Service::checkOptions, then every librdkafka property of every client set on a real
  // configuration (Errc::kInvalidArg naming the property). For --print-config.
  static td::Status checkOptions(const ServiceOptions& options);

  td::Result<int> partitionCount(const std::string& topic, Millis timeout) override;
  td::Status brokerAnswered() override;
  void pause(Millis duration) override;

  void setRebalanceListener(RebalanceListener listener) override;
  td::Status subscribe() override;
  td::Result<std::vector<kafka::Message>> poll(std::size_t max, Millis wait) override;
  td::Status storeOffsets(const std::vector<kafka::TopicPartitionOffset>& offsets) override;
  std::vector<kafka::TopicPartitionOffset> positions() override;
  std::vector<PartitionLag> lag() override;
  void heat() override;
  void leaveGroup() override;

  td::Status produce(const std::string& topic, std::int32_t partition, const std::string& key,
                     const std::string& value, Delivery on_delivery) override;
  td::Status produceAssignment(const std::string& topic, const std::string& key,
                               const std::string& value, Delivery on_delivery) override;
  int outstanding() override;
  td::Status flush(Millis timeout) override;
  void forgetAssignTopic(const std::string& topic) override;
  td::Status renewProducers() override;
  std::pair<std::int64_t, std::uint64_t> assignProducers() override;

  td::Status initTransactions(Millis timeout) override;
  td::Status beginTransaction() override;
  td::Status sendOffsetsToTransaction(const std::vector<kafka::TopicPartitionOffset>& offsets,
                                      Millis timeout) override;
  td::Status commitTransaction(Millis timeout) override;
  td::Status abortTransaction(Millis timeout) override;

  LogReader& stateReader() override { return *state_reader_; }
  LogReader* statsReader() override { return stats_reader_.get(); }
  void dropStatsReader() override { stats_reader_.reset(); }

  void askFlow(std::int32_t partition) override;
  std::vector<FlowAnswer> flowAnswers() override;

  void ensureAssignTopics(const std::vector<std::string>& group_ids) override;
  void retireAssignTopic(const std::string& group_id, Millis now) override;
  void dropAssignTopic(const std::string& group_id) override;
  void pollAssignTopics(Millis now) override;

 private:
  explicit KafkaPort(const ServiceOptions& options);
  // (Re)makes producer_ and, unless exactly_once, the td.assign shards; the old ones are
  // destroyed first.
  td::Status makeProducers();
  // A consumer with these settings, the rebalance listener and companions.
  td::Result<std::unique_ptr<kafka::GroupConsumer>> makeConsumer();

  ServiceOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  // What the readers were made for: Apache Kafka until brokerAnswered() learns otherwise.
  kafka::BrokerKind broker_kind_ = kafka::BrokerKind::kApacheKafka;
  RebalanceListener listener_;
  std::unique_ptr<kafka::GroupConsumer> consumer_;
  bool consumer_closed_ = false;   // left the group: subscribe() makes a new one
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<AssignProducers> assign_;   // null with exactly_once
  std::unique_ptr<LogReader> state_reader_;
  std::unique_ptr<LogReader> stats_reader_;   // null: history off or unavailable
  std::unique_ptr<FlowProber> flow_prober_;
  std::unique_ptr<AssignTopics> assign_topics_;   // null: the broker auto-creates them
};

}  // namespace td::coordinator
