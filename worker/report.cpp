#include "worker/report.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <map>

#include "protocol/protocol.h"

namespace td::worker {

std::string formatDuration(std::uint64_t ms) {
  if (ms < 60'000) return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000.0);
  const std::uint64_t s = (ms + 500) / 1000;
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

namespace {

// A step's outcome in the summary table: "not run" for a step the group ended before it ran.
std::string_view summaryOutcome(td::v1::StepOutcome outcome) {
  return outcome == td::v1::STEP_OUTCOME_UNSPECIFIED ? "not run" : protocol::outcomeName(outcome);
}

// "  failed: step bad, attempt 3 on w2 (this peer): exit 3; the last lines of its output:"
// and those lines, each indented and prefixed "| ".
std::string formatFailure(const td::v1::StepFailure& f, const std::string& own_peer_id,
                          const std::string& group, const std::string& audit_args) {
  std::string out = fmt::format("  failed: step {}, attempt {} on {}{}: ", f.step_id(),
                                f.attempt(), f.peer_id().empty() ? "-" : f.peer_id(),
                                f.peer_id() == own_peer_id ? " (this peer)" : "");
  if (f.outcome() == td::v1::STEP_OUTCOME_LOST) {
    out += "lost (its peer stopped heartbeating or left)\n";
    return out;
  }
  out += fmt::format("{}, {}", protocol::outcomeName(f.outcome()),
                     protocol::describeExit(f.exit_code(), f.signal()));
  if (f.output_tail().empty()) {
    out += "; no output\n";
  } else {
    out += "; the last lines of its output:\n";
    std::string_view rest = f.output_tail();
    while (!rest.empty()) {
      const std::size_t nl = rest.find('\n');
      out += fmt::format("    | {}\n", rest.substr(0, nl));
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
  if (!audit_args.empty()) {
    out += fmt::format("  full output: td-audit logs {} {} --attempt {} {}\n", group, f.step_id(),
                       f.attempt(), audit_args);
  }
  return out;
}

}  // namespace

std::string formatSummary(const td::v1::AssignmentRecord& record,
                          const std::string& own_peer_id, const std::string& audit_args) {
  if (!record.has_completed() && !record.has_failed() && !record.has_cancelled()) return {};
  const bool completed = record.has_completed();
  const bool cancelled = record.has_cancelled();
  const auto& steps = completed   ? record.completed().steps()
                      : cancelled ? record.cancelled().steps()
                                  : record.failed().steps();
  const std::string& group = completed   ? record.completed().group_id()
                             : cancelled ? record.cancelled().group_id()
                                         : record.failed().group_id();
  const std::uint64_t wall = completed   ? record.completed().wall_time_ms()
                             : cancelled ? record.cancelled().wall_time_ms()
                                         : record.failed().wall_time_ms();

  struct Totals {
    std::size_t steps = 0;
    std::uint64_t ms = 0;
  };
  Totals own, others;
  std::map<std::string, Totals> by_peer;
  std::size_t width = 4;   // "step"
  for (const auto& s : steps) {
    width = std::max(width, s.step_id().size());
    if (s.peer_id().empty()) continue;   // never ran
    Totals& t = s.peer_id() == own_peer_id ? own : others;
    ++t.steps;
    t.ms += s.duration_ms();
    ++by_peer[s.peer_id()].steps;
    by_peer[s.peer_id()].ms += s.duration_ms();
  }
  width = std::min<std::size_t>(width, 40);

  std::string out;
  if (cancelled) {
    out = fmt::format("group {} CANCELLED by {}: {} (after {})", group,
                      record.cancelled().requested_by(),
                      record.cancelled().reason().empty() ? "(no reason given)"
                                                          : record.cancelled().reason(),
                      formatDuration(wall));
  } else {
    out = fmt::format("group {} {} in {}", group, completed ? "COMPLETED" : "FAILED",
                      formatDuration(wall));
    if (!completed) out += ": " + record.failed().reason();   // the reason names the step
  }
  out += '\n';
  out += fmt::format("  {:<{}}  {:<10}  {:<20}  {:>8}  {:>9}\n", "step", width, "outcome",
                     "peer (* = this one)", "attempts", "duration");
  for (const auto& s : steps) {
    std::string peer = s.peer_id().empty() ? "-" : s.peer_id();
    if (!s.peer_id().empty() && s.peer_id() == own_peer_id) peer += " *";
    out += fmt::format("  {:<{}}  {:<10}  {:<20}  {:>8}  {:>9}\n", s.step_id(), width,
                       summaryOutcome(s.outcome()), peer, s.attempts(),
                       s.peer_id().empty() ? "-" : formatDuration(s.duration_ms()));
  }
  out += fmt::format("  this peer ({}): {} step{}, {}; other peers: {} step{}, {}\n", own_peer_id,
                     own.steps, own.steps == 1 ? "" : "s", formatDuration(own.ms), others.steps,
                     others.steps == 1 ? "" : "s", formatDuration(others.ms));
  if (!completed && !cancelled && record.failed().has_failure()) {
    out += formatFailure(record.failed().failure(), own_peer_id, group, audit_args);
  }
  if (by_peer.size() > 1) {
    out += "  by peer:";
    bool first = true;
    for (const auto& [peer, t] : by_peer) {
      out += fmt::format("{} {} {} step{} {}", first ? "" : ",", peer, t.steps,
                         t.steps == 1 ? "" : "s", formatDuration(t.ms));
      first = false;
    }
    out += '\n';
  }
  return out;
}

std::string formatProgress(const ProgressState& state, std::size_t width) {
  // Most useful first: a narrow terminal cuts the end (the group id is in the log lines).
  std::string line = fmt::format("td-worker {}: ", formatDuration(state.elapsed.count()));
  if (!state.running_step.empty()) {
    line += fmt::format("running {} (attempt {}, {})", state.running_step, state.running_attempt,
                        formatDuration(state.running_for.count()));
  } else {
    line += "waiting";
  }
  line += fmt::format(" | {}/{} steps handed out | {} finished here | group {}",
                      state.steps_assigned, state.steps_total, state.own_done, state.group_id);
  if (width > 0 && line.size() > width) line.resize(width);
  return line;
}

ProgressLine::ProgressLine(int fd) : fd_(fd) {
  const char* term = std::getenv("TERM");
  enabled_ = ::isatty(fd) == 1 && !(term != nullptr && std::strcmp(term, "dumb") == 0);
}

ProgressLine::~ProgressLine() { clear(); }

void ProgressLine::draw(const ProgressState& state) {
  if (!enabled_) return;
  winsize ws{};
  std::size_t width = 0;
  if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) width = ws.ws_col - 1;
  // "\r" + erase-line: a terminal, so an escape is fine here (never reached in a CI log).
  const std::string text = "\r\033[K" + formatProgress(state, width);
  [[maybe_unused]] auto n = ::write(fd_, text.data(), text.size());
  shown_ = true;
}

void ProgressLine::clear() {
  if (!enabled_ || !shown_) return;
  static constexpr char kErase[] = "\r\033[K";
  [[maybe_unused]] auto n = ::write(fd_, kErase, sizeof kErase - 1);
  shown_ = false;
}

}  // namespace td::worker
