#include "audit/render.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "protocol/protocol.h"

namespace td::audit {

namespace {

std::string outcomeOf(const Attempt& a) {
  if (a.outcome) return std::string(protocol::outcomeName(*a.outcome));
  if (a.aborted) return "abort_sent";
  if (a.started_ms >= 0) return "running";
  if (a.assigned_ms >= 0) return "assigned";
  return "queued";
}

std::string outcomeOf(const UniverseRun& u) {
  if (u.outcome) return std::string(protocol::outcomeName(*u.outcome));
  return "running";
}

// When a universe run started, by the coordinator's clock where it recorded the start, else
// its finish less the worker's duration; -1 if neither is known.
std::int64_t startOf(const UniverseRun& u) {
  if (u.started_ms >= 0) return u.started_ms;
  if (u.finished_ms >= 0) return u.finished_ms - static_cast<std::int64_t>(u.duration_ms);
  return -1;
}

// One line about a universe run: "succeeded (exit 0) in 1234 ms" and when.
std::string describeUniverse(const Timeline& t, const UniverseRun& u) {
  std::string out = u.started_ms >= 0 ? fmt::format("started +{}ms", t.relative(u.started_ms))
                                      : std::string("start not reported");
  if (!u.outcome) return out + " -> running (no finish reported)";
  return out + fmt::format(" finished +{}ms -> {} ({}) took {}ms", t.relative(u.finished_ms),
                           outcomeOf(u), protocol::describeExit(u.exit_code, u.signal),
                           u.duration_ms);
}

std::string htmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::size_t universesSucceeded(const Timeline& t) {
  return static_cast<std::size_t>(
      std::count_if(t.universes.begin(), t.universes.end(), [](const UniverseRun& u) {
        return u.outcome == td::v1::STEP_OUTCOME_SUCCEEDED;
      }));
}

struct Totals {
  std::size_t attempts = 0, successes = 0, failures = 0, lost = 0, retries = 0;
};
Totals totals(const Timeline& t) {
  Totals x;
  for (const auto& s : t.steps) {
    x.attempts += s.attempts.size();
    x.successes += s.successes;
    x.failures += s.failures;
    x.lost += s.lost;
    x.retries += s.retries;
  }
  return x;
}

}  // namespace

namespace {

// Objects keep their keys in insertion order: the order is part of the --json output.
using Json = nlohmann::ordered_json;

// Compact, UTF-8 kept as is; a byte that is not valid UTF-8 becomes U+FFFD instead of throwing.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json violationObject(const Violation& v) {
  return {{"kind", kindName(v.kind)}, {"group", v.group}, {"step", v.step}, {"message", v.message}};
}

Json summaryObject(const Timeline& t) {
  const Totals x = totals(t);
  std::size_t peers_lost = 0;
  for (const auto& p : t.peers) peers_lost += p.lost ? 1 : 0;
  return {{"group", t.group_id},
          {"status", protocol::statusName(t.status)},
          {"events", t.events},
          {"steps", t.steps.size()},
          {"attempts", x.attempts},
          {"successes", x.successes},
          {"failures", x.failures},
          {"lost", x.lost},
          {"retries", x.retries},
          {"peers", t.peers.size()},
          {"peers_lost", peers_lost},
          {"ignored", t.ignored.size()},
          {"wall_ms", t.ended_ms >= 0 ? t.relative(t.ended_ms) : -1},
          {"redelivered", t.redelivered},
          {"fenced", t.fenced},
          {"restores", t.restores.size()},
          {"epochs", t.epochs},
          {"universe_runs", t.universes.size()},
          {"universes_succeeded", universesSucceeded(t)},
          {"universes_unfinished", unfinishedUniverses(t)}};
}

}  // namespace

std::string jsonString(std::string_view s) { return dump(Json(std::string(s))); }

std::string violationJson(const Violation& v) { return dump(violationObject(v)); }

std::string timelineSummaryJson(const Timeline& t) { return dump(summaryObject(t)); }

std::string timelineJson(const Timeline& t) {
  Json peers = Json::array();
  for (const auto& p : t.peers) {
    peers.push_back({{"peer", p.peer_id},
                     {"session", p.session_id},
                     {"joined_ms", t.relative(p.joined_ms)},
                     {"gone_ms", t.relative(p.gone_ms)},
                     {"lost", p.lost},
                     {"reason", p.gone_reason}});
  }
  Json steps = Json::array();
  for (const auto& s : t.steps) {
    Json attempts = Json::array();
    for (const auto& a : s.attempts) {
      attempts.push_back({{"attempt", a.number},
                          {"peer", a.peer_id},
                          {"queued_reason", a.queued_reason},
                          {"backoff_ms", a.backoff_ms},
                          {"queued_ms", t.relative(a.queued_ms)},
                          {"assigned_ms", t.relative(a.assigned_ms)},
                          {"started_ms", t.relative(a.started_ms)},
                          {"finished_ms", t.relative(a.finished_ms)},
                          {"outcome", outcomeOf(a)},
                          {"exit_code", a.exit_code},
                          {"signal", a.signal},
                          {"duration_ms", a.duration_ms},
                          {"abort_reason", a.abort_reason},
                          {"detail", a.finish_detail},
                          {"speculative", a.speculative},
                          {"races", a.races},
                          {"won_by", a.won_by}});
    }
    steps.push_back({{"step", s.id},
                     {"max_attempts", s.spec.max_attempts()},
                     {"successes", s.successes},
                     {"failures", s.failures},
                     {"lost", s.lost},
                     {"retries", s.retries},
                     {"attempts", std::move(attempts)}});
  }
  Json restores = Json::array();
  for (const auto& r : t.restores) {
    restores.push_back({{"sequence", r.sequence},
                        {"at_ms", t.relative(r.at_ms)},
                        {"partition", r.partition},
                        {"previous_epoch", r.previous_epoch},
                        {"previous_coordinator", r.previous_coordinator},
                        {"epoch", r.epoch},
                        {"coordinator", r.coordinator},
                        {"republished", r.republished}});
  }
  Json universes = Json::array();
  for (const auto& u : t.universes) {
    universes.push_back({{"peer", u.peer_id},
                         {"session", u.session_id},
                         {"started_ms", t.relative(u.started_ms)},
                         {"finished_ms", t.relative(u.finished_ms)},
                         {"outcome", outcomeOf(u)},
                         {"exit_code", u.exit_code},
                         {"signal", u.signal},
                         {"duration_ms", u.duration_ms},
                         {"detail", u.output_tail}});
  }
  Json ignored = Json::array();
  for (const auto& i : t.ignored) {
    ignored.push_back({{"at_ms", t.relative(i.at_ms)},
                       {"reason", i.reason},
                       {"peer", i.peer_id},
                       {"step", i.step_id},
                       {"attempt", i.attempt},
                       {"detail", i.detail}});
  }
  return dump({{"group", t.group_id},
               {"schema", t.schema_name},
               {"status", protocol::statusName(t.status)},
               {"created_ms", t.created_ms},
               {"failed_step", t.failed_step},
               {"failure_reason", t.failure_reason},
               {"summary", summaryObject(t)},
               {"peers", std::move(peers)},
               {"steps", std::move(steps)},
               {"universes", std::move(universes)},
               {"ignored", std::move(ignored)},
               {"restores", std::move(restores)}});
}

std::string eventJson(const td::v1::Event& e) {
  const std::string description = protocol::describe(e);
  return dump({{"group", e.group_id()},
               {"sequence", e.sequence()},
               {"timestamp_ms", e.timestamp_ms()},
               {"kind", description.substr(0, description.find(' '))},
               {"description", description}});
}

std::string verifyJson(const VerifyTotals& totals, const std::vector<Timeline>& timelines,
                       const std::vector<Violation>& violations) {
  Json groups = Json::array();
  for (const auto& t : timelines) groups.push_back(summaryObject(t));
  Json found = Json::array();
  for (const auto& v : violations) found.push_back(violationObject(v));
  return dump({{"records", totals.records},
               {"unparsable", totals.unparsable},
               {"events", totals.events},
               {"groups", timelines.size()},
               {"redelivered", totals.redelivered},
               {"restores", totals.restores},
               {"unconfirmed_ends", totals.unconfirmed_ends},
               {"universe_runs", totals.universe_runs},
               {"universes_unfinished", totals.universes_unfinished},
               {"violation_count", violations.size()},
               {"group_summaries", std::move(groups)},
               {"violations", std::move(found)}});
}

std::string reportWrittenJson(const std::string& out, std::size_t groups,
                              std::size_t violations) {
  return dump({{"out", out}, {"groups", groups}, {"violation_count", violations}});
}

std::string timelineText(const Timeline& t) {
  std::string out = fmt::format("group {}  schema={}  status={}  events={}", t.group_id,
                                t.schema_name, protocol::statusName(t.status), t.events);
  if (t.ended_ms >= 0) out += fmt::format("  wall={}ms", t.relative(t.ended_ms));
  if (t.redelivered > 0) out += fmt::format("  redelivered={}", t.redelivered);
  if (t.fenced > 0) out += fmt::format("  fenced={}", t.fenced);
  if (!t.restores.empty()) {
    out += fmt::format("  restores={} epochs={}", t.restores.size(), fmt::join(t.epochs, ","));
  }
  out += "\n";
  if (!t.failure_reason.empty()) {
    out += fmt::format("  failed at step {}: {}\n", t.failed_step, t.failure_reason);
  }
  if (!t.abandoned_reason.empty()) out += fmt::format("  abandoned: {}\n", t.abandoned_reason);
  if (t.status == td::v1::GROUP_STATUS_CANCELLED) {
    out += fmt::format("  cancelled by {}: {}\n", t.cancelled_by, t.cancel_reason);
  }
  out += "peers:\n";
  for (const auto& p : t.peers) {
    out += fmt::format("  {:<16} joined +{}ms", p.peer_id, t.relative(p.joined_ms));
    if (p.gone_ms >= 0) {
      out += fmt::format("  {} +{}ms ({})", p.lost ? "LOST" : "left", t.relative(p.gone_ms),
                         p.gone_reason);
    }
    out += "\n";
  }
  out += "steps:\n";
  for (const auto& s : t.steps) {
    out += fmt::format("  {}  attempts={} successes={} failures={} lost={} retries={}\n", s.id,
                       s.attempts.size(), s.successes, s.failures, s.lost, s.retries);
    for (const auto& a : s.attempts) {
      out += fmt::format("    #{} peer={} queued +{}ms ({}{}) assigned +{}ms started +{}ms "
                         "finished +{}ms -> {}",
                         a.number, a.peer_id.empty() ? "-" : a.peer_id, t.relative(a.queued_ms),
                         a.queued_reason,
                         a.backoff_ms > 0 ? fmt::format(", backoff {}ms", a.backoff_ms) : "",
                         t.relative(a.assigned_ms), t.relative(a.started_ms),
                         t.relative(a.finished_ms), outcomeOf(a));
      if (a.outcome && *a.outcome != td::v1::STEP_OUTCOME_LOST) {
        out += fmt::format(" exit={} took {}ms", a.exit_code, a.duration_ms);
      }
      if (a.speculative) out += fmt::format(" [speculative, races #{}]", a.races);
      if (a.aborted) out += fmt::format(" (abort: {})", a.abort_reason);
      if (a.outcome == td::v1::STEP_OUTCOME_LOST) out += fmt::format(" ({})", a.finish_detail);
      out += "\n";
    }
  }
  if (!t.universes.empty()) {
    out += "universe:\n";
    for (const auto& u : t.universes) {
      out += fmt::format("  {:<16} {}\n", u.peer_id, describeUniverse(t, u));
    }
  }
  if (!t.restores.empty()) {
    out += "restores:\n";
    for (const auto& r : t.restores) {
      out += fmt::format("  #{} +{}ms partition={} epoch {} ({}) -> {} ({}), republished {}\n",
                         r.sequence, t.relative(r.at_ms), r.partition, r.previous_epoch,
                         r.previous_coordinator.empty() ? "-" : r.previous_coordinator, r.epoch,
                         r.coordinator.empty() ? "-" : r.coordinator, r.republished);
    }
  }
  if (!t.ignored.empty()) {
    out += "ignored inputs:\n";
    for (const auto& i : t.ignored) {
      out += fmt::format("  +{}ms {} peer={} step={} attempt={} {}\n", t.relative(i.at_ms),
                         i.reason, i.peer_id, i.step_id, i.attempt, i.detail);
    }
  }
  return out;
}

namespace {

std::string colourOf(std::optional<td::v1::StepOutcome> outcome) {
  if (!outcome) return "#64b5f6";
  switch (*outcome) {
    case td::v1::STEP_OUTCOME_SUCCEEDED: return "#43a047";
    case td::v1::STEP_OUTCOME_FAILED: return "#e53935";
    case td::v1::STEP_OUTCOME_TIMED_OUT: return "#fb8c00";
    case td::v1::STEP_OUTCOME_ABORTED: return "#757575";
    case td::v1::STEP_OUTCOME_LOST: return "#8e24aa";
    case td::v1::STEP_OUTCOME_REJECTED: return "#6d4c41";
    default: return "#bdbdbd";
  }
}

std::string colourOf(const Attempt& a) {
  if (!a.outcome && a.aborted) return "#9e9e9e";
  return colourOf(a.outcome);
}

// Where the Gantt chart puts things: `label` px of peer names, then `scale` px per ms up to
// `end` ms after the group's start; rows of `row_h` px.
struct Axis {
  int label = 140;
  int width = 900;
  int row_h = 28;
  int top = 20;
  std::int64_t end = 1;
  double scale = 1.0;
  double x(const Timeline& t, std::int64_t ms) const {
    return label + scale * static_cast<double>(t.relative(ms));
  }
};

// One bar on the row at `y` from `from` to `to` (coordinator ms), with its tooltip `title`,
// and `text` on it when it is wider than `text_px`.
std::string bar(const Timeline& t, const Axis& axis, int y, std::int64_t from, std::int64_t to,
                const std::string& fill, std::string_view css_class, const std::string& title,
                const std::string& text, double text_px) {
  const double x = axis.x(t, from);
  const double w = std::max(2.0, axis.scale * static_cast<double>(to - from));
  std::string svg = fmt::format(
      R"(<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" rx="3" fill="{}"{}><title>{} ({} ms)</title></rect>)",
      x, y + 4, w, axis.row_h - 8, fill,
      css_class.empty() ? std::string() : fmt::format(R"( class="{}")", css_class), title,
      to - from);
  if (w > text_px) {
    svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="bar">{}</text>)", x + 3, y + 18, text);
  }
  return svg;
}

// The attempts `peer` ran, on its row at `y`.
std::string attemptBars(const Timeline& t, const std::string& peer, int y, const Axis& axis) {
  std::string svg;
  for (const auto& s : t.steps) {
    for (const auto& a : s.attempts) {
      if (a.peer_id != peer) continue;
      const std::int64_t from = a.started_ms >= 0 ? a.started_ms : a.assigned_ms;
      if (from < 0) continue;
      const std::int64_t to = a.finished_ms >= 0 ? a.finished_ms
                              : a.aborted_ms >= 0 ? a.aborted_ms
                              : (t.ended_ms >= 0 ? t.ended_ms : t.first_ms + axis.end);
      // A speculative attempt is outlined, and says which attempt it raced.
      svg += bar(t, axis, y, from, to, colourOf(a), a.speculative ? "speculative" : "",
                 fmt::format("{} #{} on {}: {}{}", htmlEscape(s.id), a.number, htmlEscape(peer),
                             outcomeOf(a),
                             a.speculative ? fmt::format(", speculative, races #{}", a.races)
                                           : std::string()),
                 fmt::format("{}#{}", htmlEscape(s.id), a.number), 30);
    }
  }
  return svg;
}

// The universe runs of `peer` on its row at `y`: outlined bars coloured by outcome, up to the
// chart's end while one still runs.
std::string universeBars(const Timeline& t, const std::string& peer, int y, const Axis& axis) {
  std::string svg;
  for (const auto& u : t.universes) {
    const std::int64_t from = startOf(u);
    if (u.peer_id != peer || from < 0) continue;
    const std::int64_t to = u.finished_ms >= 0 ? u.finished_ms : t.first_ms + axis.end;
    svg += bar(t, axis, y, from, to, colourOf(u.outcome), "universe",
               fmt::format("universe on {}: {}", htmlEscape(peer), outcomeOf(u)), "universe", 60);
  }
  return svg;
}

// The chart's rows: every peer that joined, ran an attempt or a universe, in that order.
std::vector<std::string> ganttRows(const Timeline& t) {
  std::vector<std::string> rows;
  auto add = [&](const std::string& peer) {
    if (!peer.empty() && std::find(rows.begin(), rows.end(), peer) == rows.end()) {
      rows.push_back(peer);
    }
  };
  for (const auto& p : t.peers) add(p.peer_id);
  for (const auto& s : t.steps) {
    for (const auto& a : s.attempts) add(a.peer_id);
  }
  for (const auto& u : t.universes) add(u.peer_id);
  return rows;
}

// Milliseconds from the group's start to its last recorded moment (at least 1).
std::int64_t ganttEnd(const Timeline& t) {
  std::int64_t end = 1;
  auto extend = [&](std::int64_t ms) { if (ms >= 0) end = std::max(end, t.relative(ms)); };
  extend(t.ended_ms);
  for (const auto& p : t.peers) { extend(p.joined_ms); extend(p.gone_ms); }
  for (const auto& s : t.steps) {
    for (const auto& a : s.attempts) { extend(a.finished_ms); extend(a.aborted_ms); extend(a.started_ms); }
  }
  for (const auto& u : t.universes) { extend(startOf(u)); extend(u.finished_ms); }
  return end;
}

std::string gantt(const Timeline& t) {
  const std::vector<std::string> rows = ganttRows(t);
  Axis axis;
  axis.end = ganttEnd(t);
  axis.scale = static_cast<double>(axis.width) / static_cast<double>(axis.end);
  const int label = axis.label, width = axis.width, row_h = axis.row_h;
  const int height = axis.top + row_h * static_cast<int>(rows.size()) + 20;
  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" class="gantt">)",
      label + width + 20, height);
  svg += fmt::format(R"(<text x="{}" y="14" class="axis">0 ms</text><text x="{}" y="14" class="axis" text-anchor="end">{} ms</text>)",
                     label, label + width, axis.end);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const int y = axis.top + static_cast<int>(r) * row_h;
    svg += fmt::format(R"(<text x="4" y="{}" class="peer">{}</text><line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>)",
                       y + 18, htmlEscape(rows[r]), label, label + width, y + row_h, y + row_h);
    for (const auto& p : t.peers) {
      if (p.peer_id == rows[r] && p.gone_ms >= 0) {
        const double x = axis.x(t, p.gone_ms);
        svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" class="{}"><title>{} {}</title></line>)",
                           x, x, y + 2, y + row_h - 2, p.lost ? "lostmark" : "leftmark",
                           p.lost ? "lost" : "left", htmlEscape(p.gone_reason));
      }
    }
    svg += attemptBars(t, rows[r], y, axis);
    svg += universeBars(t, rows[r], y, axis);
  }
  return svg + "</svg>";
}

// Each peer's universe run after the group completed (nothing when there is none).
std::string universeTable(const Timeline& t) {
  if (t.universes.empty()) return {};
  std::string html = "<table><tr><th>universe of</th><th>started</th><th>duration</th>"
                     "<th>outcome</th><th>exit</th></tr>\n";
  for (const auto& u : t.universes) {
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                        htmlEscape(u.peer_id),
                        u.started_ms >= 0 ? fmt::format("+{} ms", t.relative(u.started_ms))
                                          : std::string("not reported"),
                        u.outcome ? fmt::format("{} ms", u.duration_ms) : std::string("-"),
                        outcomeOf(u),
                        u.outcome ? protocol::describeExit(u.exit_code, u.signal) : "-");
  }
  return html + "</table>\n";
}

}  // namespace

std::string htmlReport(const std::vector<Timeline>& timelines,
                       const std::vector<Violation>& violations) {
  std::string html = R"(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Task Director audit report</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}.gantt{border:1px solid #ddd;background:#fafafa}
.axis{font-size:11px;fill:#666}.peer{font-size:13px}.bar{font-size:11px;fill:#fff}
.grid{stroke:#e0e0e0}.universe{stroke:#1a237e;stroke-width:2;stroke-dasharray:5 2}.speculative{stroke:#ff6f00;stroke-width:2;stroke-dasharray:2 2}.lostmark{stroke:#8e24aa;stroke-width:3}.leftmark{stroke:#555;stroke-width:2;stroke-dasharray:3 2}
.ok{color:#2e7d32}.bad{color:#c62828}.legend span{display:inline-block;padding:2px 8px;margin-right:6px;color:#fff;border-radius:3px}
</style></head><body>
<h1>Task Director audit report</h1>
)";
  html += fmt::format("<p>{} group(s), {} violation(s).</p>\n", timelines.size(), violations.size());
  html += R"(<p class="legend"><span style="background:#43a047">succeeded</span><span style="background:#e53935">failed</span><span style="background:#fb8c00">timed_out</span><span style="background:#8e24aa">lost</span><span style="background:#757575">aborted</span><span style="background:#6d4c41">rejected</span><span style="background:#64b5f6">running</span><span style="background:#43a047;outline:2px dashed #1a237e">universe (outlined)</span><span style="background:#43a047;outline:2px dotted #ff6f00">speculative attempt (outlined)</span></p>)";
  if (!violations.empty()) {
    html += "<h2 class=\"bad\">Violations</h2><table><tr><th>kind</th><th>group</th><th>step</th><th>message</th></tr>\n";
    for (const auto& v : violations) {
      html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", kindName(v.kind),
                          htmlEscape(v.group), htmlEscape(v.step), htmlEscape(v.message));
    }
    html += "</table>\n";
  }
  for (const auto& t : timelines) {
    const Totals x = totals(t);
    html += fmt::format("<h2>Group {}</h2>\n<p>schema <b>{}</b>, status <b class=\"{}\">{}</b>, {} events, "
                        "{} peers, {} steps, {} attempts ({} retries, {} lost, {} counted failures), {} ignored inputs{}{}</p>\n",
                        htmlEscape(t.group_id), htmlEscape(t.schema_name),
                        t.status == td::v1::GROUP_STATUS_FAILED ||
                                t.status == td::v1::GROUP_STATUS_ABANDONED
                            ? "bad"
                            : "ok",
                        protocol::statusName(t.status), t.events, t.peers.size(), t.steps.size(),
                        x.attempts, x.retries, x.lost, x.failures, t.ignored.size(),
                        t.ended_ms >= 0 ? fmt::format(", wall time {} ms", t.relative(t.ended_ms)) : "",
                        t.restores.empty() && t.redelivered == 0
                            ? std::string()
                            : fmt::format(", {} restore(s), {} redelivered event(s)",
                                          t.restores.size(), t.redelivered));
    if (!t.failure_reason.empty()) {
      html += fmt::format("<p class=\"bad\">Failed at step {}: {}</p>\n", htmlEscape(t.failed_step),
                          htmlEscape(t.failure_reason));
    }
    if (!t.abandoned_reason.empty()) {
      html += fmt::format("<p class=\"bad\">Abandoned: {}</p>\n", htmlEscape(t.abandoned_reason));
    }
    html += gantt(t) + "\n";
    html += "<table><tr><th>step</th><th>attempt</th><th>peer</th><th>queued (reason, backoff)</th>"
            "<th>started</th><th>duration</th><th>outcome</th><th>exit</th></tr>\n";
    for (const auto& s : t.steps) {
      for (const auto& a : s.attempts) {
        html += fmt::format(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>+{} ms ({}{})</td><td>+{} ms</td><td>{} ms</td>"
            "<td>{}</td><td>{}</td></tr>\n",
            htmlEscape(s.id), a.number, htmlEscape(a.peer_id), t.relative(a.queued_ms),
            htmlEscape(a.queued_reason),
            a.backoff_ms > 0 ? fmt::format(", backoff {} ms", a.backoff_ms) : "",
            t.relative(a.started_ms), a.duration_ms, outcomeOf(a), a.outcome ? a.exit_code : 0);
      }
    }
    html += "</table>\n";
    html += universeTable(t);
  }
  return html + "</body></html>\n";
}

}  // namespace td::audit
