// Renderings of audit results: JSON (nlohmann-json; the keys and their order are td-audit's
// --json contract, docs/audit.md), readable text, and a self-contained HTML report (inline CSS
// and SVG, no scripts).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.h"

namespace td::audit {

// A JSON string literal (with quotes) for `s`.
std::string jsonString(std::string_view s);

// {"kind":...,"group":...,"step":...,"message":...}
std::string violationJson(const Violation& v);
// Counts of a timeline: steps, attempts, successes, failures, lost, retries, ignored, status,
// redelivered records, restores and the coordinator epochs seen.
std::string timelineSummaryJson(const Timeline& t);
// The whole timeline: peers, steps with every attempt, ignored inputs, restores.
std::string timelineJson(const Timeline& t);
// One event as JSON: group, sequence, timestamp, kind, description.
std::string eventJson(const td::v1::Event& e);

// What `td-audit verify --json` prints besides the groups and violations it is given.
struct VerifyTotals {
  std::size_t records = 0;      // read from td.events
  std::size_t unparsable = 0;   // of those, not an Event
  std::size_t events = 0;       // in the groups checked
  std::size_t redelivered = 0;
  std::size_t restores = 0;
  std::size_t unconfirmed_ends = 0;
  std::size_t universe_runs = 0;
  std::size_t universes_unfinished = 0;
};
// {"records":..,"unparsable":..,...,"violation_count":..,"group_summaries":[..],"violations":[..]}
std::string verifyJson(const VerifyTotals& totals, const std::vector<Timeline>& timelines,
                       const std::vector<Violation>& violations);
// `td-audit report --json`: {"out":..,"groups":..,"violation_count":..}
std::string reportWrittenJson(const std::string& out, std::size_t groups,
                              std::size_t violations);

// A readable multi-line timeline (times relative to the group's creation).
std::string timelineText(const Timeline& t);

// The HTML report over `timelines` (one section per group).
std::string htmlReport(const std::vector<Timeline>& timelines,
                       const std::vector<Violation>& violations);

}  // namespace td::audit
