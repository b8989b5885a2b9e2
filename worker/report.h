// What td-worker prints for people reading a CI log: the final summary table of its group and
// the live progress line shown on a terminal. Formatting is pure (tests call it directly);
// ProgressLine only decides whether and where to draw.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "td/v1/assignments.pb.h"

namespace td::worker {

// "0.4 s", "12.0 s", "2m05s", "1h02m".
std::string formatDuration(std::uint64_t ms);

// The table printed when the group ends, for a GroupCompleted or GroupFailed `record` (any
// other record gives ""): one line per step in the coordinator's order with outcome, the peer
// of its last attempt (marked "*" when it is `own_peer_id`), attempts and the last attempt's
// duration ("not run" for a step the group ended before it ran); for a failed group, the
// attempt that failed it (step, peer, how it ended, the last lines of its output, which the
// coordinator puts in GroupFailed.failure), so every peer's log says it; then totals of steps
// and time by this peer and by the others. Plain text, no escape sequences, lines end in '\n'.
// With `audit_args` (e.g. "--bootstrap-server host:9092"), the failure ends with the command
// that prints the failing attempt's whole output from td.logs:
// "  full output: td-audit logs GROUP STEP --attempt N <audit_args>".
std::string formatSummary(const td::v1::AssignmentRecord& record, const std::string& own_peer_id,
                          const std::string& audit_args = {});

// What the progress line says at one moment.
struct ProgressState {
  std::string group_id;
  std::size_t steps_total = 0;       // in the schema
  std::size_t steps_assigned = 0;    // distinct steps handed to any peer so far
  std::size_t own_done = 0;          // attempts this peer finished (any outcome)
  std::string running_step;          // this peer's running step, "" if idle
  std::uint32_t running_attempt = 0;
  std::chrono::milliseconds running_for{0};
  std::chrono::milliseconds elapsed{0};  // since the worker joined
};
// One line, no newline, at most `width` columns (0 = no limit).
std::string formatProgress(const ProgressState& state, std::size_t width = 0);

// The live line on a terminal: redraws in place with '\r' and clears itself before anything
// else is written, so log lines and step output never mix with it. Disabled (every call a
// no-op) when `out` is not a terminal, so CI logs get only whole lines. One thread.
class ProgressLine {
 public:
  // Enabled when `fd` is a terminal and TERM is not "dumb".
  explicit ProgressLine(int fd);
  ~ProgressLine();
  bool enabled() const { return enabled_; }
  void draw(const ProgressState& state);
  // Erases the line if it is shown (call before writing anything else to the terminal).
  void clear();

 private:
  int fd_;
  bool enabled_ = false;
  bool shown_ = false;
};

}  // namespace td::worker
