// What td-coordinator's service thread publishes for readers on other threads: counters,
// health flags and a consistent copy of its stats (the census, consumer lag, dispatch latency).
// The metrics server (metrics_server.h) reads it and nothing else of the Service.
//
// Thread safety: the service thread is the only writer. Atomics may be read from any thread;
// ServiceProbe::stats() returns a copy taken under a mutex.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "common/time.h"
#include "coordinator/core_types.h"
#include "coordinator/shell/assign_topic_options.h"
#include "coordinator/shell/port.h"

namespace td::coordinator {

// A latency histogram with fixed bucket bounds (seconds), in the shape Prometheus wants.
struct LatencyHistogram {
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1,    2.5,   5,
                                                     10,    30};
  std::array<std::uint64_t, kBounds.size()> buckets{};   // observations <= bound (not above
                                                         // the previous one); more: count only
  std::uint64_t count = 0;
  double sum = 0;   // seconds
  void observe(double seconds);
};

// What the service thread publishes once per cycle for readers on other threads (the metrics
// server): a consistent copy, taken under ServiceProbe's mutex.
struct ProbeStats {
  Census census;   // the core's counts after the cycle
  // Per assigned input partition (td.registrations and td.completions), refreshed at most
  // once a second (Port::lag).
  std::vector<Port::PartitionLag> lag;
  // Coordinator dispatch latency: from the poll that returned a StepFinished to the broker's
  // acknowledgement of the StepAssigned it caused for the same peer (in the same cycle; a peer
  // left idle for want of queued work is not observed). Covers decoding, the core, the
  // td.state snapshot and the output with both acknowledgements; not the time the record
  // spent in the broker or in librdkafka's fetch queue before the poll.
  LatencyHistogram dispatch;
};

// Counters a test or an operator can read (the probe). Atomics may be read from any thread;
// stats() returns a copy taken under a mutex. The service thread is the only writer.
struct ServiceProbe {
  std::atomic<std::uint64_t> records_in{0};
  std::atomic<std::uint64_t> dead_letters{0};
  // Probes of quiet td.registrations partitions (FlowProber), by answer: everything below
  // the leader's high watermark was handled; records were still to be read (reading them
  // shows the flow); no answer in time.
  std::atomic<std::uint64_t> flow_probes_caught_up{0};
  std::atomic<std::uint64_t> flow_probes_behind{0};
  std::atomic<std::uint64_t> flow_probes_failed{0};
  std::atomic<std::uint64_t> records_out{0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> snapshots{0};
  std::atomic<std::uint64_t> partitions_restored{0};
  std::atomic<std::uint64_t> groups_restored{0};
  std::atomic<std::uint64_t> step_stats_read{0};       // records taken from td.step-stats
  std::atomic<std::uint64_t> step_stats_written{0};    // records produced to it
  std::atomic<std::uint64_t> step_stats_failures{0};   // of those, not delivered
  std::atomic<std::uint64_t> ticks{0};                 // cycles run by the timer (batches:
                                                       // those run by input)
  std::atomic<std::uint64_t> rebalances_assigned{0};   // rebalance callbacks that assigned
  std::atomic<std::uint64_t> rebalances_revoked{0};    // ... and that revoked partitions
  // Consumer-group rejoins: after an aborted transaction (exactly_once), undeliverable output,
  // or a partition claimed by another coordinator at the same time (restorePartition()).
  std::atomic<std::uint64_t> rejoins{0};
  std::atomic<std::int64_t> partitions_owned{0};       // td.registrations partitions held now
  AssignTopicCounters assign_topics;                   // with ServiceOptions::assign_topics
  std::atomic<std::int64_t> assign_producers_open{0};     // AssignProducers shards open now
  std::atomic<std::uint64_t> assign_producers_closed{0};  // ... and closed (all groups gone)

  // Health (docs/operations.md, "Metrics and health").
  std::atomic<std::int64_t> loop_turned_ms{0};   // Clock mono ms when the loop last turned
  std::atomic<bool> joined{false};               // a first assignment arrived from the group
  std::atomic<bool> restoring{false};            // restoring assigned partitions right now
  std::atomic<bool> broker_reachable{false};     // the last metadata request or flush worked
  // Joined the consumer group, restored what it was assigned, and reaches the broker.
  bool ready() const { return joined.load() && !restoring.load() && broker_reachable.load(); }
  // The loop turned within `stall_after` of `now_mono`.
  bool alive(Millis now_mono, Millis stall_after) const {
    return now_mono.count() - loop_turned_ms.load() <= stall_after.count();
  }

  ProbeStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  // Runs `update` on the published stats under the mutex (service thread only).
  template <typename F>
  void updateStats(F&& update) {
    std::lock_guard lock(mutex_);
    update(stats_);
  }

 private:
  mutable std::mutex mutex_;
  ProbeStats stats_;
};

}  // namespace td::coordinator
