// Asks the broker, off the coordinator's thread, how far a td.registrations partition goes:
// its leader's high watermark and the consumer group's committed offset. The coordinator
// compares the answer with what it has handled (Service::deliverFlowAnswers): when it has
// handled everything below the watermark, the partition flows, and its peers' silence counts
// (architecture.md, "Leases and lost peers"). Nothing is written: probing needs no ACL beyond
// the coordinator's own (Describe on the topic and its consumer group).
//
// Thread safety: ask() and answers() from any one thread; the queries run on the prober's
// own thread with its own client. Not copyable or movable.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "kafka/partition_reader.h"
#include "kafka/types.h"

namespace td::coordinator {

class FlowProber {
 public:
  struct Answer {
    std::int32_t partition = 0;
    std::int64_t low = 0;         // the leader's watermarks when asked
    std::int64_t high = 0;
    std::int64_t committed = -1;  // the consumer group's committed offset, -1 if none
    std::string error;            // set when the broker did not answer: nothing is known
  };

  // `props`: a reader's properties with the coordinator's consumer group as group.id (the
  // prober never joins it). Each query waits at most `timeout`.
  static td::Result<std::unique_ptr<FlowProber>> create(const kafka::Properties& props,
                                                        std::string topic,
                                                        std::chrono::milliseconds timeout);
  ~FlowProber();   // stops the thread, after the query it may be in (at most 2 × timeout)
  FlowProber(const FlowProber&) = delete;
  FlowProber& operator=(const FlowProber&) = delete;

  // Queues a question about `partition`, unless one is queued or being answered.
  void ask(std::int32_t partition);
  // The answers that arrived since the last call, oldest first.
  std::vector<Answer> answers();

 private:
  FlowProber(std::unique_ptr<kafka::PartitionReader> reader, std::string topic,
             std::chrono::milliseconds timeout);
  void loop();
  Answer query(std::int32_t partition);

  std::unique_ptr<kafka::PartitionReader> reader_;   // the thread's only
  const std::string topic_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::int32_t> asked_;
  std::set<std::int32_t> open_;   // asked and not answered yet
  std::vector<Answer> answers_;
  bool stop_ = false;
  std::thread thread_;   // last: started once everything above exists
};

}  // namespace td::coordinator
