// td-bench's output: a table for people, or one JSON object for tools.
#pragma once

#include <string>

#include "benchmarks/bench.h"

namespace td::bench {

// The human table (several lines, ending in '\n').
std::string formatTable(const BenchReport& report);

// One JSON object on one line. Keys (times in ms, rates per second):
//   floor_rtt_p50_ms, floor_rtt_p90_ms, floor_rtt_p99_ms, floor_rtt_max_ms, floor_round_trips,
//   dispatch_p50_ms, dispatch_p99_ms, dispatch_p99_over_floor_p99 -- from the "one_group" case
//     (null if it did not run), dispatch_case,
//   completions_per_s: {case name: steps/s},
//   cases: {case name: {kind, groups, workers, steps, wall_s, completions_per_s, window,
//           join_s and reads (fleet cases), dispatch_{samples,mean,p50,p90,p99,max}_ms and
//           dispatch_p99_over_floor_p99 (simulated and fleet cases)}},
//   floor_produce_per_s, floor_produce: {records, record_bytes, seconds},
//   cpu_us_per_event: {open groups: us}, rss_bytes_per_group: {open groups: bytes},
//   core_bytes_per_group, rss_bytes_per_group_settled (after the idle period, once the
//   coordinator gave the join burst's freed heap back), topic_floor_bytes_per_topic
//   (td-topic-floor's RSS per topic after malloc_trim: librdkafka alone) and
//   rss_over_topic_floor_bytes_per_group (settled minus that floor): {open groups: bytes},
//   scaling: {open groups: {every field of ScalingResult, topic_floor: {...} or null}},
//   failures: [phase: error],
//   coordinator_ready_s, broker, settings: {...}, machine: {nproc, memory_mib, cpu_model,
//   kernel, load_average_1m},
//   makespan_over_bound (null with --no-makespan), makespan: {...} (makespan.h, MAKESPAN).
std::string formatJson(const BenchReport& report);

}  // namespace td::bench
