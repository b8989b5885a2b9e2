#include "audit/render.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "common/json.h"
#include "protocol/protocol.h"

namespace td::audit {

std::string jsonString(std::string_view s) { return td::jsonQuoted(s); }

namespace {

std::string outcomeOf(const Attempt& a) {
  if (a.outcome) return std::string(protocol::outcomeName(*a.outcome));
  if (a.aborted) return "abort_sent";
  if (a.started_ms >= 0) return "running";
  if (a.assigned_ms >= 0) return "assigned";
  return "queued";
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

std::string violationJson(const Violation& v) {
  return fmt::format(R"({{"kind":{},"group":{},"step":{},"message":{}}})",
                     jsonString(kindName(v.kind)), jsonString(v.group), jsonString(v.step),
                     jsonString(v.message));
}

std::string timelineSummaryJson(const Timeline& t) {
  const Totals x = totals(t);
  std::size_t peers_lost = 0;
  for (const auto& p : t.peers) peers_lost += p.lost ? 1 : 0;
  return fmt::format(
      R"({{"group":{},"status":{},"events":{},"steps":{},"attempts":{},"successes":{},)"
      R"("failures":{},"lost":{},"retries":{},"peers":{},"peers_lost":{},"ignored":{},)"
      R"("wall_ms":{},"redelivered":{},"restores":{},"epochs":[{}]}})",
      jsonString(t.group_id), jsonString(protocol::statusName(t.status)), t.events,
      t.steps.size(), x.attempts, x.successes, x.failures, x.lost, x.retries, t.peers.size(),
      peers_lost, t.ignored.size(),
      t.ended_ms >= 0 ? t.relative(t.ended_ms) : -1, t.redelivered, t.restores.size(),
      fmt::join(t.epochs, ","));
}

std::string timelineJson(const Timeline& t) {
  std::string peers, steps, ignored;
  for (const auto& p : t.peers) {
    if (!peers.empty()) peers += ",";
    peers += fmt::format(R"({{"peer":{},"session":{},"joined_ms":{},"gone_ms":{},"lost":{},"reason":{}}})",
                         jsonString(p.peer_id), jsonString(p.session_id), t.relative(p.joined_ms),
                         t.relative(p.gone_ms), p.lost ? "true" : "false",
                         jsonString(p.gone_reason));
  }
  for (const auto& s : t.steps) {
    std::string attempts;
    for (const auto& a : s.attempts) {
      if (!attempts.empty()) attempts += ",";
      attempts += fmt::format(
          R"({{"attempt":{},"peer":{},"queued_reason":{},"backoff_ms":{},"queued_ms":{},)"
          R"("assigned_ms":{},"started_ms":{},"finished_ms":{},"outcome":{},"exit_code":{},)"
          R"("signal":{},"duration_ms":{},"abort_reason":{},"detail":{}}})",
          a.number, jsonString(a.peer_id), jsonString(a.queued_reason), a.backoff_ms,
          t.relative(a.queued_ms), t.relative(a.assigned_ms), t.relative(a.started_ms),
          t.relative(a.finished_ms), jsonString(outcomeOf(a)), a.exit_code, a.signal,
          a.duration_ms, jsonString(a.abort_reason), jsonString(a.finish_detail));
    }
    steps += fmt::format(
        R"({}{{"step":{},"max_attempts":{},"successes":{},"failures":{},"lost":{},"retries":{},"attempts":[{}]}})",
        steps.empty() ? "" : ",", jsonString(s.id), s.spec.max_attempts(), s.successes,
        s.failures, s.lost, s.retries, attempts);
  }
  std::string restores;
  for (const auto& r : t.restores) {
    if (!restores.empty()) restores += ",";
    restores += fmt::format(
        R"({{"sequence":{},"at_ms":{},"partition":{},"previous_epoch":{},)"
        R"("previous_coordinator":{},"epoch":{},"coordinator":{},"republished":{}}})",
        r.sequence, t.relative(r.at_ms), r.partition, r.previous_epoch,
        jsonString(r.previous_coordinator), r.epoch, jsonString(r.coordinator), r.republished);
  }
  for (const auto& i : t.ignored) {
    if (!ignored.empty()) ignored += ",";
    ignored += fmt::format(R"({{"at_ms":{},"reason":{},"peer":{},"step":{},"attempt":{},"detail":{}}})",
                           t.relative(i.at_ms), jsonString(i.reason), jsonString(i.peer_id),
                           jsonString(i.step_id), i.attempt, jsonString(i.detail));
  }
  return fmt::format(
      R"({{"group":{},"schema":{},"status":{},"created_ms":{},"failed_step":{},"failure_reason":{},)"
      R"("summary":{},"peers":[{}],"steps":[{}],"ignored":[{}],"restores":[{}]}})",
      jsonString(t.group_id), jsonString(t.schema_name), jsonString(protocol::statusName(t.status)),
      t.created_ms, jsonString(t.failed_step), jsonString(t.failure_reason),
      timelineSummaryJson(t), peers, steps, ignored, restores);
}

std::string eventJson(const td::v1::Event& e) {
  std::string kind = protocol::describe(e);
  kind = kind.substr(0, kind.find(' '));
  return fmt::format(R"({{"group":{},"sequence":{},"timestamp_ms":{},"kind":{},"description":{}}})",
                     jsonString(e.group_id()), e.sequence(), e.timestamp_ms(), jsonString(kind),
                     jsonString(protocol::describe(e)));
}

std::string timelineText(const Timeline& t) {
  std::string out = fmt::format("group {}  schema={}  status={}  events={}", t.group_id,
                                t.schema_name, protocol::statusName(t.status), t.events);
  if (t.ended_ms >= 0) out += fmt::format("  wall={}ms", t.relative(t.ended_ms));
  if (t.redelivered > 0) out += fmt::format("  redelivered={}", t.redelivered);
  if (!t.restores.empty()) {
    out += fmt::format("  restores={} epochs={}", t.restores.size(), fmt::join(t.epochs, ","));
  }
  out += "\n";
  if (!t.failure_reason.empty()) {
    out += fmt::format("  failed at step {}: {}\n", t.failed_step, t.failure_reason);
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
      if (a.aborted) out += fmt::format(" (abort: {})", a.abort_reason);
      if (a.outcome == td::v1::STEP_OUTCOME_LOST) out += fmt::format(" ({})", a.finish_detail);
      out += "\n";
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

std::string colourOf(const Attempt& a) {
  if (!a.outcome) return a.aborted ? "#9e9e9e" : "#64b5f6";
  switch (*a.outcome) {
    case td::v1::STEP_OUTCOME_SUCCEEDED: return "#43a047";
    case td::v1::STEP_OUTCOME_FAILED: return "#e53935";
    case td::v1::STEP_OUTCOME_TIMED_OUT: return "#fb8c00";
    case td::v1::STEP_OUTCOME_ABORTED: return "#757575";
    case td::v1::STEP_OUTCOME_LOST: return "#8e24aa";
    case td::v1::STEP_OUTCOME_REJECTED: return "#6d4c41";
    default: return "#bdbdbd";
  }
}

std::string gantt(const Timeline& t) {
  std::vector<std::string> rows;
  for (const auto& p : t.peers) {
    if (std::find(rows.begin(), rows.end(), p.peer_id) == rows.end()) rows.push_back(p.peer_id);
  }
  for (const auto& s : t.steps) {
    for (const auto& a : s.attempts) {
      if (!a.peer_id.empty() && std::find(rows.begin(), rows.end(), a.peer_id) == rows.end()) {
        rows.push_back(a.peer_id);
      }
    }
  }
  std::int64_t end = 1;
  auto extend = [&](std::int64_t ms) { if (ms >= 0) end = std::max(end, t.relative(ms)); };
  extend(t.ended_ms);
  for (const auto& p : t.peers) { extend(p.joined_ms); extend(p.gone_ms); }
  for (const auto& s : t.steps) {
    for (const auto& a : s.attempts) { extend(a.finished_ms); extend(a.aborted_ms); extend(a.started_ms); }
  }
  const int label = 140, width = 900, row_h = 28, top = 20;
  const double scale = static_cast<double>(width) / static_cast<double>(end);
  const int height = top + row_h * static_cast<int>(rows.size()) + 20;
  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" class="gantt">)",
      label + width + 20, height);
  svg += fmt::format(R"(<text x="{}" y="14" class="axis">0 ms</text><text x="{}" y="14" class="axis" text-anchor="end">{} ms</text>)",
                     label, label + width, end);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const int y = top + static_cast<int>(r) * row_h;
    svg += fmt::format(R"(<text x="4" y="{}" class="peer">{}</text><line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>)",
                       y + 18, htmlEscape(rows[r]), label, label + width, y + row_h, y + row_h);
    for (const auto& p : t.peers) {
      if (p.peer_id == rows[r] && p.gone_ms >= 0) {
        const double x = label + scale * static_cast<double>(t.relative(p.gone_ms));
        svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" class="{}"><title>{} {}</title></line>)",
                           x, x, y + 2, y + row_h - 2, p.lost ? "lostmark" : "leftmark",
                           p.lost ? "lost" : "left", htmlEscape(p.gone_reason));
      }
    }
    for (const auto& s : t.steps) {
      for (const auto& a : s.attempts) {
        if (a.peer_id != rows[r]) continue;
        std::int64_t from = a.started_ms >= 0 ? a.started_ms : a.assigned_ms;
        if (from < 0) continue;
        std::int64_t to = a.finished_ms >= 0 ? a.finished_ms
                          : a.aborted_ms >= 0 ? a.aborted_ms
                          : (t.ended_ms >= 0 ? t.ended_ms : t.first_ms + end);
        const double x = label + scale * static_cast<double>(t.relative(from));
        const double w = std::max(2.0, scale * static_cast<double>(to - from));
        svg += fmt::format(
            R"(<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" rx="3" fill="{}"><title>{} #{} on {}: {} ({} ms)</title></rect>)",
            x, y + 4, w, row_h - 8, colourOf(a), htmlEscape(s.id), a.number, htmlEscape(a.peer_id),
            outcomeOf(a), to - from);
        if (w > 30) {
          svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="bar">{}#{}</text>)", x + 3, y + 18,
                             htmlEscape(s.id), a.number);
        }
      }
    }
  }
  return svg + "</svg>";
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
.grid{stroke:#e0e0e0}.lostmark{stroke:#8e24aa;stroke-width:3}.leftmark{stroke:#555;stroke-width:2;stroke-dasharray:3 2}
.ok{color:#2e7d32}.bad{color:#c62828}.legend span{display:inline-block;padding:2px 8px;margin-right:6px;color:#fff;border-radius:3px}
</style></head><body>
<h1>Task Director audit report</h1>
)";
  html += fmt::format("<p>{} group(s), {} violation(s).</p>\n", timelines.size(), violations.size());
  html += R"(<p class="legend"><span style="background:#43a047">succeeded</span><span style="background:#e53935">failed</span><span style="background:#fb8c00">timed_out</span><span style="background:#8e24aa">lost</span><span style="background:#757575">aborted</span><span style="background:#6d4c41">rejected</span><span style="background:#64b5f6">running</span></p>)";
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
                        t.status == td::v1::GROUP_STATUS_FAILED ? "bad" : "ok",
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
  }
  return html + "</body></html>\n";
}

}  // namespace td::audit
