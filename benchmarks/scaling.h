// Scaling: what one open group costs td-coordinator in memory, and what one input event costs
// it in CPU, with 10, 1 000 or 10 000 groups open. Read from the coordinator's /proc entries.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "benchmarks/cases.h"
#include "benchmarks/fleet.h"
#include "benchmarks/proc_usage.h"

namespace td::bench {

struct ScalingCase {
  int groups = 10;
  int steps_per_group = 10;        // each group stays open: the window never finishes them all
  int window_completions = 20000;  // spread evenly; at most steps_per_group - 1 per group
  FleetSource source = FleetSource::kEvents;
  // Compatibility families the groups are spread over (see fleetPeers): one family puts every
  // registration and snapshot on one partition, and the embedded broker keeps only ~5 MiB of
  // each (10 000 registrations of ~760 bytes do not fit).
  int families = 16;
  std::chrono::milliseconds idle{1000};  // the idle measurement before the window
};

// td-topic-floor's figures for one size: librdkafka alone, td-coordinator's producer pool
// writing one record to each of `topics` topics (benchmarks/topic_floor_main.cpp).
struct TopicFloor {
  int topics = 0;
  int partitions = 0;                        // 0: created by the broker on first use
  double rss_bytes_per_topic = 0;            // resident growth per topic
  double trimmed_rss_bytes_per_topic = 0;    // the same after malloc_trim(0)
  double heap_bytes_per_topic = 0;           // heap in use (mallinfo2) per topic
};

struct ScalingResult {
  int groups = 0;
  int steps_per_group = 0;
  std::string reads;                   // where the fleet read assignments
  std::size_t schema_bytes = 0;        // the serialized steps of one registration
  std::size_t registration_bytes = 0;  // one serialized RegistrationRecord
  double join_s = 0;                   // first registration -> every group assigned
  int groups_joined = 0;               // groups with their first StepAssigned at the end of it
  double add_s = 0;                    // of which the fleet spent adding td.assign partitions
  std::int64_t rss_before = 0;         // coordinator RSS before the registrations
  std::int64_t rss_after = 0;          // ... after every group's first StepAssigned
  std::int64_t rss_after_window = 0;
  double rss_bytes_per_group = 0;     // (after - before) / groups_joined
  // After the idle period: the coordinator has given the join burst's freed heap back
  // (common/heap_trim.h), so this is what the open groups keep resident.
  std::int64_t rss_after_idle = 0;
  double rss_bytes_per_group_settled = 0;   // (after_idle - before) / groups_joined
  // The coordinator core's own share, measured in td-bench: heap bytes in use (mallinfo2) per
  // group after the same registrations go into an in-process Core and each group's td.state
  // record is encoded once. No librdkafka, no transient cycle buffers.
  double core_bytes_per_group = 0;
  double idle_cpu_ms_per_s = 0;       // coordinator CPU while every group is open and idle
  int quota_per_group = 0;            // completions per group in the window
  std::uint64_t window_started = 0;   // StepStarted produced in the window
  std::uint64_t window_finished = 0;  // StepFinished produced in the window
  std::uint64_t window_heartbeats = 0;
  std::uint64_t window_inputs = 0;  // the three above together
  double window_s = 0;              // first answer -> every group's next StepAssigned
  double cpu_window_ms = 0;         // schedstat (or stat if schedstat is missing)
  double cpu_window_stat_ms = 0;    // utime + stime
  double cpu_us_per_event = 0;      // cpu_window_ms / window_inputs
  double events_per_s = 0;          // window_inputs / window_s
  // Set when a step after the registrations failed (e.g. the window timed out): the fields
  // measured before it are kept, the later ones are 0.
  std::string error;
  // td-topic-floor beside this size (td-bench --no-topic-floor skips it), or why it failed.
  std::optional<TopicFloor> topic_floor;
  std::string topic_floor_error;
};

struct TopicFloorSpec {
  std::string bin;
  std::string bootstrap;
  kafka::Properties kafka;   // -X
  int topics = 0;
  int partitions = 0;
  std::string prefix;
  std::filesystem::path log;   // its stdout and stderr
  std::chrono::milliseconds time_limit{300000};
};
// Runs td-topic-floor and reads its JSON line. Errors: kIo (spawn), kInternal (it failed, or
// printed no figures), kTimeout.
td::Result<TopicFloor> measureTopicFloor(const TopicFloorSpec& spec);

// One peer per group, `groups` groups on one fresh, ready coordinator (env.coordinator):
//  1. RSS; register every peer (Fleet::join: each group's first assignment held); RSS;
//  2. `idle` with every group open: the coordinator's CPU per second;
//  3. the window: the fleet answers up to quota = min(steps - 1, window / groups) assignments
//     per group and stops when every group received the assignment after its quota; the
//     coordinator's CPU over that window / the StepStarted, StepFinished and heartbeats the
//     fleet produced in it.
// Errors: setting up the fleet, and kIo (/proc). A failure after that (the registrations or
// the window timed out, the coordinator exited) is returned in ScalingResult::error, with
// what was measured before it (a join that timed out still gives the RSS per joined group).
td::Result<ScalingResult> runScalingCase(const ScalingCase& spec, const CaseEnv& env);

}  // namespace td::bench
