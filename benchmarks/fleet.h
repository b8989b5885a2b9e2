// A fleet: many simulated peers multiplexed on the calling thread, with one Producer and one
// PartitionReader for all of them. 64 or 10 000 peers cannot each have a thread and two
// librdkafka clients on a small machine; a fleet can. It speaks td-worker's protocol for every
// peer (worker::buildRegistration, protocol::partitionFor, GroupJoined, worker::Session,
// heartbeats) but publishes without waiting for acknowledgements: it loads the coordinator,
// it does not measure a worker's own publish.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "benchmarks/sim_worker.h"
#include "common/result.h"
#include "kafka/client_settings.h"
#include "kafka/types.h"
#include "protocol/protocol.h"
#include "schema/schema.h"
#include "worker/identity.h"

namespace td::bench {

// Where the fleet learns its peers' assignments and group results.
enum class FleetSource {
  // td.assign.<group>, partition 0 from offset 0, one partition per group added to the reader
  // when the group's first GroupJoined arrives: what td-worker reads.
  kAssignTopics,
  // td.events (every partition, from its end at start): step_assigned, group_completed and
  // group_failed events carry the same messages. Used where thousands of td.assign partitions
  // in one reader would load the embedded broker more than the coordinator does.
  kEvents,
};
std::string_view sourceName(FleetSource source);

struct FleetConfig {
  std::string bootstrap;
  kafka::Properties kafka;  // -X overrides, applied last
  kafka::BrokerKind broker_kind = kafka::BrokerKind::kEmbedded;   // readers' fetch wait
  protocol::Topics topics;
  FleetSource source = FleetSource::kAssignTopics;
  // Peers in groups: all peers of one group share its change ref (peers[g][w]).
  std::vector<std::vector<worker::PeerInfo>> groups;
  const schema::Schema* schema = nullptr;  // not owned; outlives the fleet
  bool report_started = true;              // publish StepStarted before StepFinished
  // Completions per group after which the fleet stops answering that group's assignments (the
  // group then stays open, its last assignment held). Unlimited by default.
  int quota_per_group = std::numeric_limits<int>::max();
  // Called about every 200 ms while the fleet waits (e.g. "is the coordinator alive"); an
  // error ends the wait with that error.
  std::function<td::Status()> check;
};

// What the fleet did, summed over its peers.
struct FleetCounters {
  std::uint64_t started = 0;     // StepStarted produced
  std::uint64_t finished = 0;    // StepFinished produced
  std::uint64_t heartbeats = 0;  // PeerHeartbeat produced
  std::uint64_t registrations = 0;
  std::uint64_t inputs() const { return started + finished + heartbeats; }
};

// Thread safety: none; everything runs on the caller's thread. Peers act only inside join(),
// drive() and idle().
class Fleet {
 public:
  // Opens the clients and reads the reply partitions (td.joins, and td.events for kEvents)
  // from their ends. Errors: Kafka errors (setup), td::Errc::kInvalidArgument (no peers).
  static td::Result<std::unique_ptr<Fleet>> create(const FleetConfig& config);
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Publishes every peer's registration (produce, no flush per record) and waits until every
  // peer has its GroupJoined and its group its first StepAssigned. Assignments are held, not
  // answered; heartbeats are sent. Errors: rejection, a group that is not running,
  // kTimeout after `deadline`, Kafka errors.
  td::Status join(SteadyTime deadline);

  enum class Goal {
    kAllCompleted,  // every group completed (or failed: an error)
    kQuotaReached,  // every group finished its quota and received its next StepAssigned
  };
  // Answers assignments (the held ones first) until `goal`; returns when reached.
  // Errors: kUnavailable (a group failed), kInvalidArgument (an unknown step), kTimeout,
  // Kafka errors (also a failed delivery).
  td::Status drive(Goal goal, SteadyTime deadline);
  // Keeps heartbeating and reading (answering nothing) until `until`.
  td::Status idle(SteadyTime until);

  const FleetCounters& counters() const;
  // Dispatch samples of all peers: a StepFinished produced -> that peer's next StepAssigned.
  const std::vector<double>& dispatchMs() const;
  // When drive() first answered an assignment, and when the last GroupCompleted arrived.
  std::optional<SteadyTime> firstAnswer() const;
  SteadyTime lastCompletion() const;
  // Checks every group completed, each step finished exactly once, and each GroupCompleted
  // listed every step. Errors: kInternal naming the first group that does not add up.
  td::Status checkCompleted() const;
  std::size_t groupCount() const;
  // Groups that have received their first StepAssigned.
  std::size_t groupsAssigned() const;
  std::size_t peerCount() const;
  // Time spent in PartitionReader::add() (kAssignTopics), the reader's metadata warm-up.
  double addSeconds() const;

  struct State;

 private:
  explicit Fleet(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace td::bench
