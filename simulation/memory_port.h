// The coordinator shell's Port (coordinator/shell/port.h) over the MemoryBus, for one
// coordinator incarnation. Every call that would be a network round trip is an await point
// (Scheduler::hop), so the scheduler interleaves coordinators there and may crash one there.
//
// Output: produce() queues; flush() waits a round trip, appends everything queued (unless the
// broker is down: then it waits for it, up to its timeout), waits another, and only then runs
// the delivery callbacks. A coordinator that crashes with records queued leaves a random prefix
// of each partition's records written (the broker had them; the acknowledgement was lost) and
// the rest lost. Transactions are not modelled (the simulation runs at-least-once).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/shell/port.h"
#include "simulation/memory_bus.h"

namespace td::sim {

class MemoryPort final : public coordinator::Port {
 public:
  explicit MemoryPort(MemoryBus& bus);
  ~MemoryPort() override;   // a crash: see above

  td::Result<int> partitionCount(const std::string& topic, Millis timeout) override;
  td::Status brokerAnswered() override { return {}; }
  void pause(Millis duration) override;

  void setRebalanceListener(RebalanceListener listener) override {
    listener_ = std::move(listener);
  }
  td::Status subscribe() override;
  td::Result<std::vector<kafka::Message>> poll(std::size_t max, Millis wait) override;
  td::Status storeOffsets(const std::vector<kafka::TopicPartitionOffset>& offsets) override;
  std::vector<kafka::TopicPartitionOffset> positions() override;
  std::vector<PartitionLag> lag() override { return {}; }
  void heat() override {}
  void leaveGroup() override;

  td::Status produce(const std::string& topic, std::int32_t partition, const std::string& key,
                     const std::string& value, Delivery on_delivery) override;
  td::Status produceAssignment(const std::string& topic, const std::string& key,
                               const std::string& value, Delivery on_delivery) override {
    return produce(topic, 0, key, value, std::move(on_delivery));
  }
  int outstanding() override { return static_cast<int>(queued_.size()); }
  td::Status flush(Millis timeout) override;
  void forgetAssignTopic(const std::string&) override {}
  td::Status renewProducers() override;
  std::pair<std::int64_t, std::uint64_t> assignProducers() override { return {0, 0}; }

  td::Status initTransactions(Millis) override { return unsupported(); }
  td::Status beginTransaction() override { return unsupported(); }
  td::Status sendOffsetsToTransaction(const std::vector<kafka::TopicPartitionOffset>&,
                                      Millis) override {
    return unsupported();
  }
  td::Status commitTransaction(Millis) override { return unsupported(); }
  td::Status abortTransaction(Millis) override { return unsupported(); }

  coordinator::LogReader& stateReader() override { return *state_reader_; }
  coordinator::LogReader* statsReader() override { return nullptr; }
  void dropStatsReader() override {}

  void askFlow(std::int32_t partition) override;
  std::vector<FlowAnswer> flowAnswers() override;

  void ensureAssignTopics(const std::vector<std::string>&) override {}
  void retireAssignTopic(const std::string&, Millis) override {}
  void dropAssignTopic(const std::string&) override {}
  void pollAssignTopics(Millis) override {}

 private:
  struct Queued {
    std::string topic;
    std::int32_t partition;
    std::string key;
    std::string value;
    Delivery on_delivery;
  };
  static td::Status unsupported();
  // Waits until the broker is up or `deadline`; false if it is still down.
  bool awaitBroker(Millis deadline);
  // The partitions of both input topics whose records this member may read now.
  std::vector<std::pair<std::string, std::int32_t>> inputs() const;
  bool inputAvailable();
  void applyRebalance();

  MemoryBus& bus_;
  Scheduler& scheduler_;
  int member_ = -1;
  RebalanceListener listener_;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> positions_;
  std::vector<Queued> queued_;
  std::unique_ptr<coordinator::LogReader> state_reader_;
  std::map<std::int32_t, Millis> flow_asks_;   // partition -> when its answer is due
};

}  // namespace td::sim
