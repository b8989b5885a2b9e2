// Renderings of audit results: JSON (hand-written, no dependency), readable text, and a
// self-contained HTML report (inline CSS and SVG, no scripts).
#pragma once

#include <string>
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

// A readable multi-line timeline (times relative to the group's creation).
std::string timelineText(const Timeline& t);

// The HTML report over `timelines` (one section per group).
std::string htmlReport(const std::vector<Timeline>& timelines,
                       const std::vector<Violation>& violations);

}  // namespace td::audit
