// td-ctl's Kafka side: reads td.state and td.events, writes a cancel request to td.completions.
// Reads with a PartitionReader (no consumer group, nothing committed), so it never disturbs
// the coordinators.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"
#include "ctl/group_table.h"
#include "kafka/kafka.h"
#include "protocol/protocol.h"
#include "td/v1/completions.pb.h"
#include "td/v1/events.pb.h"

namespace td::ctl {

class Cluster {
 public:
  // Connects (lazily: nothing is sent before the first call). Errors: a bad property.
  static td::Result<std::unique_ptr<Cluster>> open(const std::string& bootstrap,
                                                   const kafka::Properties& props,
                                                   protocol::Topics topics);

  // td.state from its start to the high watermarks as they are now, folded.
  // Errors: the broker unreachable (kTimedOut, kTransport...), access denied.
  td::Result<GroupTable> readGroups(std::chrono::milliseconds timeout);

  // Where td.events ends now, per partition: waitForEnd() reads from here.
  td::Result<std::map<std::int32_t, std::int64_t>> eventsEnd(std::chrono::milliseconds timeout);

  // Writes `request` to td.completions on the group's partition with its compatibility key
  // (where the group's other input goes, so its owner reads it) and waits for the
  // acknowledgement.
  td::Status sendCancel(const td::v1::GroupSnapshot& group, const td::v1::CancelGroup& request,
                        std::chrono::milliseconds timeout);

  // The first event of `group_id` from `from` on that ends it (group_completed, group_failed,
  // group_abandoned, group_cancelled) or records that `request_id` was ignored (input_ignored naming it).
  // Errors: kTimeout at `deadline`.
  td::Result<td::v1::Event> waitForEnd(const std::string& group_id, const std::string& request_id,
                                       const std::map<std::int32_t, std::int64_t>& from,
                                       std::chrono::steady_clock::time_point deadline);

 private:
  Cluster() = default;
  td::Result<std::int32_t> partitions(const std::string& topic, std::chrono::milliseconds timeout);
  // Made on first use, after partitions() reached the broker: with its kind's fetch wait.
  td::Result<kafka::PartitionReader*> reader();

  protocol::Topics topics_;
  std::string bootstrap_;
  kafka::Properties props_;
  std::unique_ptr<kafka::PartitionReader> reader_;
  std::unique_ptr<kafka::Producer> producer_;
};

}  // namespace td::ctl
