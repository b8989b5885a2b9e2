// The coordinator's shell: consumes td.registrations (in a consumer group, cooperative
// rebalancing) with td.completions co-partitioned, feeds the pure Core, and carries out its
// effects (td.joins, td.assign.<group>, td.events, td.dlq), keeping every group's state in
// the compacted changelog td.state so another coordinator can take the group over. It does all
// of that through a Port (coordinator/shell/port.h): KafkaPort (coordinator/kafka/) in
// td-coordinator, an in-memory bus under the deterministic simulation (simulation/).
//
// One cycle (a batch of input, or a tick that changed something):
//   1. snapshot every group the cycle changed, with the cycle's output for it as its outbox,
//      to td.state; wait for the broker's acknowledgement;
//   2. write the output itself; wait for the acknowledgement;
//   3. store the input offsets, which the port commits later (KafkaPort: librdkafka's timer,
//      within 200 ms, outside rebalances).
// A crash before 1 is acknowledged loses nothing (the input is replayed against the previous
// snapshot); after it, the next owner re-publishes the outbox (identical records) and the
// replayed input is recognised as duplicate by the core. On partition assignment the shell
// claims the partition in td.state with a higher epoch, restores its groups and only then
// reads its input (docs/architecture.md, "Fail-over").
//
// With exactly_once, all output is in the cycle's one transaction.
//
// Duration history (unless CoreConfig::step_stats is off): before its first poll the shell
// reads every partition of td.step-stats to its high watermark into the core, then keeps
// following the topic (polled without waiting, once per tick) for other coordinators'
// records. Each cycle's PublishStepStats effects (the latest per key) are produced after the
// cycle's output is acknowledged, and nothing waits for them: they are advisory.
//
// Assignment topics (ServiceOptions::assign_topics): with `create` set, a cycle has the port
// create the topics of groups new to it before step 2, and the topics of forgotten groups
// (also those restored as forgotten) are deleted on later ticks, without waiting.
//
// Thread safety: run() owns everything; stop() may be called from any thread or signal context.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/heap_trim.h"
#include "common/log.h"
#include "common/result.h"
#include "common/time.h"
#include "coordinator/core.h"
#include "coordinator/shell/assign_topic_options.h"
#include "coordinator/shell/port.h"
#include "coordinator/shell/service_probe.h"
#include "kafka/types.h"

namespace td::coordinator {

struct ServiceOptions {
  std::string bootstrap_servers;
  kafka::Properties kafka;                     // -X overrides, applied last
  std::string consumer_group = "td-coordinator";
  CoreConfig core;
  Millis tick_interval{100};                   // how often time-driven work runs
  std::size_t batch_max = 1000;                // records handled between commits
  Millis restore_timeout{60000};               // reading a partition's td.state on assignment
  // One Kafka transaction per cycle (state, output and input offsets together), for brokers
  // that implement transactions (Apache Kafka; the embedded broker accepts the calls but
  // isolates nothing and does not store offsets sent in a transaction).
  bool exactly_once = false;
  // group.instance.id = core.coordinator_id on the input consumer (KIP-345).
  bool static_membership = false;
  // Keep ServiceProbe's stats current (census, consumer lag, broker reachability, dispatch
  // latency) for a reader on another thread: td-coordinator's --metrics-listen. Off, the loop
  // spends nothing on them (no lag reads, no idle metadata requests).
  bool publish_stats = false;
  // Create and delete td.assign.<group> topics through the Admin API (Apache Kafka), or leave
  // them to the broker's auto-creation (the default; the embedded broker).
  AssignTopicOptions assign_topics;
  // Groups whose td.assign topics share one producer (AssignProducers): a new group's topic
  // goes to the newest producer until it has had this many, then a new producer is opened;
  // a full producer is closed once all its groups were forgotten. >= 1. Ignored with
  // exactly_once (one transactional producer). Chosen by measurement (docs/performance.md,
  // "Producer shards for td.assign (issue 7)").
  std::size_t assign_groups_per_producer = 256;
  // When freed heap is given back to the system (common/heap_trim.h), checked on each tick.
  HeapTrimPolicy heap_trim;
  // A cycle of input whose output nobody waits for (no td.joins or td.assign record: a
  // StepStarted, a heartbeat's event) waits up to this long for more input and is written with
  // it, in one cycle. Most such input is a StepStarted, and its StepFinished follows within a
  // millisecond when the step is quick: written together, the StepFinished's assignment does
  // not queue behind the StepStarted's two acknowledged writes. Nothing is lost by waiting:
  // offsets are stored only after the cycle is written. 0: every cycle is written at once.
  // Ignored with exactly_once.
  Millis quiet_cycle_wait{5};
};

// True for errors a restart would only repeat, which td-coordinator exits 2 on: refused
// credentials or ACLs (kafka::isAccessDenied), td::Errc::kInvalidArgument (input topics whose
// partition counts differ, bad options), a session.timeout.ms the broker refuses.
bool isConfigurationError(const std::error_code& code);

class Service {
 public:
  // Makes the port (its clients) with `make_port`; contacts no broker. Errors: checkOptions()'s
  // and the port's.
  using PortFactory = std::function<td::Result<std::unique_ptr<Port>>(const ServiceOptions&,
                                                                     ServiceProbe&)>;
  static td::Result<std::unique_ptr<Service>> create(ServiceOptions options, const Clock& clock,
                                                     const PortFactory& make_port);
  // The option values the shell itself needs (Errc::kInvalidArgument). KafkaPort::checkOptions
  // adds every librdkafka property.
  static td::Status checkOptions(const ServiceOptions& options);

  // Waits for the broker (connect(): an unreachable broker is retried with backoff, logged
  // once and then every 30 s, and the probe stays not ready), then runs until stop() is called
  // or a fatal error occurs: isConfigurationError() for those a restart would repeat.
  td::Status run();
  void stop() { stopping_.store(true); }
  const ServiceProbe& probe() const { return probe_; }

 private:
  Service(ServiceOptions options, const Clock& clock);
  // Until the broker answers: the partition counts of the input topics and the changelog
  // (equal, or kInvalidArgument), the transactional producer's init (exactly_once), then the
  // subscription. Returns early (OK) on stop(); errors: configuration errors, kFatal.
  td::Status connect();
  td::Status checkPartitionCounts(Millis timeout);
  void onRebalance(bool assigned, const std::vector<kafka::TopicPartitionOffset>& partitions);
  td::Status restorePartition(std::int32_t partition);
  // Reads td.state[partition] over [from, to), calling `visit` for each record.
  td::Status readState(std::int32_t partition, std::int64_t from, std::int64_t to,
                       const std::function<void(const kafka::Message&)>& visit);
  LogReader& stateReader() { return port_->stateReader(); }
  // `polled_at`: Clock mono time the poll that returned `batch` came back (dispatch latency).
  td::Status handleBatch(const std::vector<kafka::Message>& batch, Millis polled_at);
  // Marks the loop as turning (liveness).
  void turned() { probe_.loop_turned_ms.store(clock_.now().mono.count()); }
  // Publishes the core's census (every cycle) and, at most once a second, the consumer lag
  // and the broker's reachability: output acknowledged within the last second, else a
  // metadata request (waiting up to 1 s while the broker is unreachable).
  void publishStats();
  // Observes this cycle's dispatch latencies once its output is acknowledged.
  void observeDispatch();
  // Reads td.step-stats (every partition) up to its high watermarks into the core, then keeps
  // the reader on it. A missing topic turns duration history off with a warning.
  td::Status loadStepStats();
  // What td.step-stats got since the last call (no waiting).
  void pollStepStats();
  void learnStepStats(const kafka::Message& msg);
  void produceStepStats();
  // Queues `effects` for the current cycle; dead letters are built from `source` at once.
  void collect(const kafka::Message* source, Effects effects);
  // Hands the core FlowProber's answers: PartitionCaughtUp for an owned td.registrations
  // partition whose leader's high watermark this coordinator has handled.
  void deliverFlowAnswers();
  // Gives heap freed after a burst back to the system when the policy says so (on a tick).
  void trimHeap();
  // Steps 1-3 of a cycle (see the top of this file) for what collect() queued.
  td::Status writeCycle(const std::vector<kafka::TopicPartitionOffset>& offsets);
  // True when the cycle in pending_ may wait (ServiceOptions::quiet_cycle_wait): no output a
  // worker or peer waits for, no dead letter.
  bool quietCycle() const;
  // Writes the cycle that waits (if any) with its input's offsets.
  td::Status writeDeferredCycle();
  // Creates the assignment topics of the groups this cycle's output goes to (admin mode).
  void ensureAssignTopics();
  void writeSnapshots();
  // Produces through the main producer; a failure (now or on delivery) fails the cycle.
  void produce(const std::string& topic, std::int32_t partition, const std::string& key,
               const std::string& value, Port::Delivery on_delivery = {});
  // The same for an assignment, through its group's shard (the main producer with exactly_once).
  // `bytes`: assignment.record serialized.
  void produceAssignment(const PublishAssignment& assignment, const std::string& bytes);
  // `on_delivery` wrapped to count and log a failed delivery of a record for `topic`.
  Port::Delivery tracked(const std::string& topic, Port::Delivery on_delivery);
  void produceFailed(const std::string& topic, const td::Error& error);
  // The group produces no more assignments here (forgotten, or its partition moved away).
  void forgetAssignTopic(const std::string& group_id);
  void publishAssignProbe();
  td::Status awaitAcknowledgements();
  td::Status writeTransaction(const std::vector<kafka::TopicPartitionOffset>& offsets);
  // exactly_once: after a transaction failed with `error`. True when it could be aborted (the
  // coordinator then drops this state and rejoins: rejoin_needed_); false for a fatal error
  // (fenced), a refused ACL, or a failed abort, which stop it.
  bool failedTransaction(const td::Error& error);
  // Leaves the consumer group (every partition revoked: the core forgets their groups) and
  // joins it again with a new consumer, so each partition it gets is claimed and restored
  // from td.state as committed, and its input read again from the committed offsets.
  td::Status rejoin();
  // Forgets what this cycle collected (output, dead letters, step stats, dispatch times)
  // without writing it.
  void dropCycle();
  void produceOutput();

  ServiceOptions options_;
  const Clock& clock_;
  Core core_;
  // Declared before the port: a producer destroyed with records outstanding runs their
  // delivery callbacks (purged), which use these.
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> delivery_failures_{0};
  ServiceProbe probe_;
  std::unique_ptr<Port> port_;
  // Per owned td.registrations partition: the offset after the last record handled since it
  // was assigned (absent before one was).
  std::map<std::int32_t, std::int64_t> handled_next_;
  std::set<std::int32_t> owned_;   // td.registrations partitions assigned now
  bool stats_writable_ = false;
  // This cycle's PublishStepStats, the latest per key.
  std::map<std::string, td::v1::StepStats> stats_out_;
  HeapTrimmer heap_trimmer_{options_.heap_trim};
  // The current cycle's output, in order, and its dead letters (serialized td.dlq records).
  Effects pending_;
  // The next input offset per (topic, partition) of the input handled but not yet written:
  // handleBatch() adds each batch's, writeDeferredCycle() stores and clears them; and until when
  // a quiet cycle waits (quiet_cycle_wait).
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> deferred_offsets_;
  std::optional<Millis> deferred_until_;
  // pending_[i]'s record serialized by writeSnapshots() (empty: none), reused by
  // produceOutput().
  std::vector<std::string> encoded_;
  struct DeadLetterRecord {
    std::string key;
    std::string value;
  };
  std::vector<DeadLetterRecord> dead_letters_;
  // exactly_once: a transaction is open (begun by the cycle's first produce()).
  bool in_transaction_ = false;
  // A transaction was aborted (exactly_once), or output could not be delivered: nothing is
  // written until run() has rejoined (with new producers if renew_producers_).
  bool rejoin_needed_ = false;
  bool renew_producers_ = false;
  std::string rejoin_reason_;
  std::optional<td::Error> last_delivery_error_;   // this cycle's, for the rejoin's reason
  std::optional<td::Status> fatal_;            // an error inside a rebalance callback
  // Poll times of this cycle's StepFinished records that caused an assignment to their peer,
  // observed in ProbeStats::dispatch once the output is acknowledged.
  std::vector<Millis> dispatch_started_;
  Millis next_slow_stats_{0};   // when publishStats() next refreshes lag and reachability
  Millis acknowledged_at_{-1000000};   // when the broker last acknowledged output (mono)
  Millis next_wait_log_{0};   // awaitAcknowledgements(): when an outage is next logged
};

}  // namespace td::coordinator
