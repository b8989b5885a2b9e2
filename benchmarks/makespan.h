// td-bench's makespan case (issue 7): how close one group's makespan gets to the lower bound
// max(total / peers, longest step) when step durations are known from history (td.step-stats),
// and how close it gets without (the documented fallback: schema order).
//
// The schema has 40 steps s1..s40; s(i+1) sleeps d_i = 10 + round(188 * i / 39) ms, i = 0..39:
//   10 15 20 24 29 34 39 44 49 53 58 63 68 73 77 82 87 92 97 102
//   106 111 116 121 126 131 135 140 145 150 155 159 164 169 174 179 184 188 193 198
// (total 4160 ms, so the bound for 4 peers is 1040 ms). Four simulated peers (sim_worker.h,
// step_duration) form one group and run it; then four more, with another change ref, form a
// second group of the same schema on the same td-coordinator, which by then has every step's
// duration (learned from the first group, and on td.step-stats); then a third group whose peers
// take one step ahead (--prefetch 1), so a peer's next step is there when its current one ends.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "benchmarks/cases.h"
#include "common/result.h"

namespace td::bench {

struct MakespanCase {
  int peers = 4;
  std::vector<std::chrono::milliseconds> durations;  // step i+1 sleeps durations[i]
};

// The 40 durations above.
std::vector<std::chrono::milliseconds> makespanDurations();

// One group's run, measured from the workers' side.
struct MakespanRun {
  std::string group_id;
  // First StepAssigned any peer received -> the end of the last step (just before its
  // StepFinished was produced). GroupCompleted's delivery is not part of it.
  double makespan_ms = 0;
  double over_bound = 0;        // makespan_ms / lower bound
  // The largest total of step time one peer ran: the schedule's makespan had every dispatch
  // been instant. busy_over_bound = busy_makespan_ms / lower bound (scheduling quality alone).
  double busy_makespan_ms = 0;
  double busy_over_bound = 0;
  // The peer whose last step ended last: the sum of its gaps between a step's end and its next
  // StepAssigned (dispatch overhead inside the makespan), and how long after the group's first
  // assignment its own first one arrived.
  double critical_gaps_ms = 0;
  double critical_start_ms = 0;
  int critical_dispatches = 0;
  double mean_gap_ms = 0;       // over every peer's gaps
  std::vector<std::string> first_steps;  // each peer's first step, sorted
};

struct MakespanResult {
  int peers = 0;
  int steps = 0;
  double total_ms = 0;
  double shortest_ms = 0;
  double longest_ms = 0;
  double lower_bound_ms = 0;    // max(total / peers, longest)
  // Greedy list schedules with instant dispatch, for reference: schema order, longest first.
  double ideal_schema_order_ms = 0;
  double ideal_longest_first_ms = 0;
  MakespanRun fallback;          // first group: no history
  MakespanRun history;           // second group: durations known
  MakespanRun prefetch;          // third group: durations known, peers take a step ahead
                                 // (td-worker --prefetch 1: slots = 2)
  double makespanOverBound() const { return history.over_bound; }
};

// Runs both groups against env's td-coordinator. Errors: as runSimulatedCase, and
// td::Errc::kInternal if a group did not finish every step exactly once.
td::Result<MakespanResult> runMakespanCase(const MakespanCase& spec, const CaseEnv& env);

// The report's pieces: a JSON object (the "makespan" key's value) and table lines.
std::string makespanJson(const MakespanResult& result);
std::string makespanTable(const MakespanResult& result);

}  // namespace td::bench
