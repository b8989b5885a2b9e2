// The life of the per-group assignment topics (td.assign.<group-id>) on a cluster that does not
// create topics on first use: with --assign-topics admin the coordinator creates each group's
// topic through the Admin API before its first output to it, and deletes it once the group is
// forgotten (finished_group_retention after it finished). With --assign-topics auto (the
// default, and the only mode the embedded broker serves) it does neither: the broker
// auto-creates topics on first use and keeps them. docs/configuration.md, "Assignment topics".
//
// Creation waits for the controller's answer (one request for all of a cycle's new groups), so
// a worker that reads its join reply finds the topic there. Deletion does not wait: requests go
// out on the coordinator's tick and their answers are read on later ticks; a failed deletion is
// retried with a backoff. A deletion lost to a crash is repeated by the partition's next owner,
// which deletes the topics of the forgotten groups it restores (deleting a missing topic counts
// as done).
//
// Thread safety: one thread (the service's).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "common/time.h"
#include "coordinator/shell/assign_topic_options.h"
#include "kafka/kafka.h"
#include "protocol/protocol.h"

namespace td::coordinator {

class AssignTopics {
 public:
  // `client` holds the settings of every client (bootstrap.servers, -X); options.admin_kafka
  // is applied over them. Errors: an invalid property.
  static td::Result<std::unique_ptr<AssignTopics>> create(const AssignTopicOptions& options,
                                                          const kafka::Properties& client,
                                                          protocol::Topics topics,
                                                          AssignTopicCounters& counters);

  // Creates the topics of the groups among `group_ids` this instance has not tried to create
  // yet, waiting for the answer. One try per group: a failure is logged and counted, not
  // returned or retried, and the output goes ahead (a cluster that auto-creates topics still
  // takes it; otherwise its delivery fails, and with it the cycle: the coordinator stops, and
  // whoever replays the input tries the creation again).
  void ensure(const std::vector<std::string>& group_ids);
  // The group is done with: its topic is deleted from the next poll() on.
  void retire(const std::string& group_id, Millis now);
  // The group moved to another coordinator: forget that its creation was tried (if it comes
  // back, ensure() asks again; an existing topic counts as created). Nothing is deleted.
  void forget(const std::string& group_id) { attempted_.erase(group_id); }
  // Sends the deletions that are due (one request), reads the answers that arrived, and
  // schedules failed deletions again. Does not wait.
  void poll(Millis now);

  // Topics per DeleteTopics request.
  static constexpr std::size_t kDeleteBatch = 100;

 private:
  AssignTopics(const AssignTopicOptions& options, protocol::Topics topics,
               AssignTopicCounters& counters);

  struct Deletion {
    std::string topic;
    int attempts = 0;   // made so far
  };

  AssignTopicOptions options_;
  protocol::Topics topics_;
  AssignTopicCounters& counters_;
  std::unique_ptr<kafka::Admin> admin_;
  std::unordered_set<std::string> attempted_;   // group ids whose topic creation was tried
  std::multimap<Millis, Deletion> due_;       // by when they are due (mono)
  std::unordered_map<std::string, int> in_flight_;   // topic -> attempts so far
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace td::coordinator
