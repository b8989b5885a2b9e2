// td-audit: reads the audit stream (td.events) and checks, shows, follows or reports it.
// It reads through audit/kafka/ (EventSource, TopicReader: a td_kafka PartitionReader over
// every partition; no consumer group is joined and nothing is committed, so it never disturbs
// the coordinators) and hands the events to the pure model (audit.h) and renderers (render.h).
// This file is the command line and the SIGINT/SIGTERM flag that `tail` and `logs` stop on.
// Exit codes: 0 fine, 1 violations found (verify) or a runtime error, 2 bad flags; `logs`:
// 0 output printed, 1 none on td.logs, 2 bad flags, 3 the broker unreachable.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include "audit/audit.h"
#include "audit/kafka/event_source.h"
#include "audit/kafka/logs_command.h"
#include "audit/render.h"
#include "audit/time_arg.h"
#include "common/log.h"
#include "common/time.h"
#include "config/version.h"
#include "kafka/kafka.h"
#include "protocol/protocol.h"

namespace {

using td::audit::Replay;
using td::audit::Timeline;
using td::audit::Violation;

// Set by SIGINT and SIGTERM (tail, logs): the readers stop at their next poll.
std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop = true; }

struct Common {
  std::string bootstrap;
  std::vector<std::string> props;
  std::string prefix = "td.";
  bool json = false;
  std::string log_level = "warn";
  std::string log_format = "text";
  td::kafka::Properties properties;   // `props` parsed and checked
};

std::string eventsTopic(const Common& c) { return td::protocol::Topics(c.prefix).events(); }

int fail(const std::string& what, const td::Error& e) {
  std::cerr << "td-audit: " << what << ": " << e.message() << "\n";
  return 1;
}

// Loads everything, keeps the groups that match `group` and were created in [since, until].
struct Loaded {
  Replay replay;
  std::size_t records = 0;
  std::size_t unparsable = 0;
};
std::optional<Loaded> load(const Common& c, const std::string& group, std::int64_t since,
                           std::int64_t until, int& rc) {
  auto source = td::audit::EventSource::open(c.bootstrap, c.properties, eventsTopic(c));
  if (!source) {
    rc = fail("connecting", source.error());
    return std::nullopt;
  }
  auto events = (*source)->readAll();
  if (!events) {
    rc = fail("reading", events.error());
    return std::nullopt;
  }
  Loaded all;
  all.records = events->size();
  all.unparsable = (*source)->unparsable();
  for (auto& e : *events) {
    if (!group.empty() && e.group_id() != group) continue;
    all.replay.add(std::move(e));
  }
  if (since < 0 && until < 0) return all;
  // Time filter: whole groups by their start (group_created, else first event), so every
  // check still sees complete groups.
  Loaded kept;
  kept.records = all.records;
  kept.unparsable = all.unparsable;
  for (const auto& t : all.replay.timelines()) {
    const std::int64_t start = t.created_ms >= 0 ? t.created_ms : t.first_ms;
    if (since >= 0 && start < since) continue;
    if (until >= 0 && start > until) continue;
    for (const auto& e : all.replay.eventsByGroup().at(t.group_id)) kept.replay.add(e);
  }
  return kept;
}

void addCommon(CLI::App* app, Common& c) {
  app->add_option("--bootstrap-server", c.bootstrap,
                  "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...] (or TD_BOOTSTRAP_SERVER)")
      ->envname("TD_BOOTSTRAP_SERVER")
      ->required();
  app->add_option("-X", c.props, "librdkafka property key=value (repeatable)");
  app->add_option("--topic-prefix", c.prefix, "topic name prefix")->capture_default_str();
  app->add_flag("--json", c.json, "machine-readable output");
  app->add_option("--log-level", c.log_level, "trace..off")->capture_default_str();
  app->add_option("--log-format", c.log_format, "text or json (log lines on stderr)")
      ->check(CLI::IsMember({"text", "json"}))->capture_default_str();
}

std::int64_t timeOrDie(const std::string& s, const char* flag) {
  if (s.empty()) return -1;
  auto t = td::audit::parseTimeArg(s);
  if (!t) throw CLI::ValidationError(flag, "not a time (ISO-8601 or unix ms): " + s);
  return *t;
}

int runVerify(const Common& c, const std::string& group, std::int64_t since, std::int64_t until) {
  int rc = 0;
  auto loaded = load(c, group, since, until, rc);
  if (!loaded) return rc;
  const auto timelines = loaded->replay.timelines();
  std::vector<Violation> violations;
  for (const auto& t : timelines) {
    auto v = td::audit::verify(t);
    violations.insert(violations.end(), v.begin(), v.end());
  }
  // Byte-identical repeats (redeliveries, e.g. an outbox re-published after a fail-over) are
  // counted, not violations; a repeated sequence with other content is duplicate_sequence.
  std::size_t redelivered = 0, restores = 0, unconfirmed = 0, universes = 0, unfinished = 0;
  for (const auto& t : timelines) {
    redelivered += t.redelivered;
    restores += t.restores.size();
    unconfirmed += td::audit::unconfirmedEnds(t);
    universes += t.universes.size();
    unfinished += td::audit::unfinishedUniverses(t);
  }
  if (c.json) {
    const td::audit::VerifyTotals totals{.records = loaded->records,
                                         .unparsable = loaded->unparsable,
                                         .events = loaded->replay.eventCount(),
                                         .redelivered = redelivered,
                                         .restores = restores,
                                         .unconfirmed_ends = unconfirmed,
                                         .universe_runs = universes,
                                         .universes_unfinished = unfinished};
    std::cout << td::audit::verifyJson(totals, timelines, violations) << "\n";
  } else {
    std::cout << fmt::format("{} group(s), {} event(s), {} redelivered, {} restore(s), {} violation(s)\n",
                             timelines.size(), loaded->replay.eventCount(), redelivered, restores,
                             violations.size());
    if (unconfirmed > 0) {
      std::cout << fmt::format("{} lost attempt(s) never reported ended by their worker: taken "
                               "to have ended with it (docs/audit.md, \"overlapping_attempts\")\n",
                               unconfirmed);
    }
    if (universes > 0) {
      std::cout << fmt::format("{} universe run(s), {} never reported finished (its worker died "
                               "or lost the broker, or it still runs)\n",
                               universes, unfinished);
    }
    for (const auto& t : timelines) {
      std::cout << fmt::format("  {}  {}  events={}{}{}\n", t.group_id, td::protocol::statusName(t.status), t.events,
                               t.redelivered > 0 ? fmt::format(" redelivered={}", t.redelivered) : "",
                               t.restores.empty() ? "" : fmt::format(" restores={}", t.restores.size()));
    }
    for (const auto& v : violations) {
      std::cout << fmt::format("VIOLATION {}: {}\n", td::audit::kindName(v.kind), v.message);
    }
  }
  return violations.empty() ? 0 : 1;
}

int runShow(const Common& c, const std::string& group) {
  int rc = 0;
  auto loaded = load(c, group, -1, -1, rc);
  if (!loaded) return rc;
  auto t = loaded->replay.timeline(group);
  if (!t) {
    std::cerr << "td-audit: no events of group " << group << "\n";
    return 1;
  }
  std::cout << (c.json ? td::audit::timelineJson(*t) + "\n" : td::audit::timelineText(*t));
  return 0;
}

int runReport(const Common& c, const std::string& group, const std::string& out) {
  int rc = 0;
  auto loaded = load(c, group, -1, -1, rc);
  if (!loaded) return rc;
  const auto timelines = loaded->replay.timelines();
  const auto violations = td::audit::verify(loaded->replay);
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  file << td::audit::htmlReport(timelines, violations);
  file.close();
  if (!file) {
    std::cerr << "td-audit: cannot write " << out << "\n";
    return 1;
  }
  if (c.json) {
    std::cout << td::audit::reportWrittenJson(out, timelines.size(), violations.size()) << "\n";
  } else {
    std::cout << fmt::format("wrote {} ({} group(s), {} violation(s))\n", out, timelines.size(), violations.size());
  }
  return 0;
}

int runTail(const Common& c, const std::string& group, const std::string& peer,
            const std::string& step, const std::string& outcome, std::int64_t since) {
  auto source = td::audit::EventSource::open(c.bootstrap, c.properties, eventsTopic(c));
  if (!source) return fail("connecting", source.error());
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  auto matches = [&](const td::v1::Event& e) {
    if (!group.empty() && e.group_id() != group) return false;
    const std::string d = td::protocol::describe(e);
    auto has = [&](const std::string& key, const std::string& value) {
      return value.empty() || d.find(" " + key + "=" + value + " ") != std::string::npos ||
             (d.size() >= key.size() + value.size() + 2 &&
              d.ends_with(" " + key + "=" + value));
    };
    return has("peer", peer) && has("step", step) && has("outcome", outcome) &&
           (outcome.empty() || e.has_step_finished());
  };
  auto status = (*source)->follow(since, g_stop, [&](const td::v1::Event& e) {
    if (!matches(e)) return;
    if (c.json) {
      std::cout << td::audit::eventJson(e) << std::endl;
    } else {
      std::cout << fmt::format("{} {} #{} {}", td::isoUtc(td::Millis(e.timestamp_ms())),
                               e.group_id(), e.sequence(), td::protocol::describe(e))
                << std::endl;
    }
  });
  if (!status) return fail("reading", status.error());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"td-audit: check and show Task Director's audit stream (td.events)"};
  app.require_subcommand(1);
  td::config::addVersionFlag(app, "td-audit");
  Common c;
  std::string group, peer, step, outcome, since, until, out;

  auto* verify = app.add_subcommand("verify", "check every group's events; exit 1 on any violation");
  addCommon(verify, c);
  verify->add_option("--group", group, "only this group");
  verify->add_option("--since", since, "only groups started at/after this time (ISO-8601 or unix ms)");
  verify->add_option("--until", until, "only groups started at/before this time");

  auto* show = app.add_subcommand("show", "one group's timeline");
  addCommon(show, c);
  show->add_option("group", group, "group id")->required();

  auto* tail = app.add_subcommand("tail", "follow events live until SIGINT");
  addCommon(tail, c);
  tail->add_option("--group", group);
  tail->add_option("--peer", peer);
  tail->add_option("--step", step);
  tail->add_option("--outcome", outcome, "only step_finished with this outcome")
      ->check(CLI::IsMember({"succeeded", "failed", "timed_out", "aborted", "lost", "rejected"}));
  tail->add_option("--since", since, "start from this time instead of now");

  auto* report = app.add_subcommand("report", "write a self-contained HTML report");
  addCommon(report, c);
  report->add_option("--out", out, "output .html file")->required();
  report->add_option("--group", group, "only this group");

  td::audit::LogsCommand logs_command;
  std::uint32_t logs_attempt = 0;
  auto* logs = app.add_subcommand(
      "logs", "print a step attempt's whole output from td.logs (exit 1 if there is none)");
  addCommon(logs, c);
  logs->add_option("group", logs_command.query.group_id, "group id")->required();
  logs->add_option("step", logs_command.query.step_id, "step id")->required();
  auto* attempt_opt = logs->add_option("--attempt", logs_attempt,
                                       "this attempt (default: the last one found)")
                          ->check(CLI::Range(1u, td::protocol::kMaxAttemptLimit));
  logs->add_option("--peer", logs_command.query.peer_id, "only output shipped by this peer");
  logs->add_flag("--follow", logs_command.follow,
                 "keep reading until the attempt ends (or SIGINT)");

  std::int64_t since_ms = -1, until_ms = -1;
  try {
    app.parse(argc, argv);
    since_ms = timeOrDie(since, "--since");
    until_ms = timeOrDie(until, "--until");
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  td::log::setFormat(c.log_format);
  if (!td::log::setLevel(c.log_level)) {
    std::cerr << "td-audit: unknown --log-level " << c.log_level << "\n";
    return 2;
  }
  // Each -X set on a real librdkafka configuration, as the clients will be: an unknown
  // property or a bad value is a bad flag (exit 2), not a failure to connect.
  auto p = td::kafka::parseProperties(c.props);
  if (p) {
    if (auto checked = td::kafka::checkProperties(*p); !checked) p = td::unexpected(checked.error());
  }
  if (!p) {
    std::cerr << "td-audit: -X: " << p.error().message() << "\n";   // secrets redacted
    return 2;
  }
  c.properties = *p;
  td::protocol::routeProtobufLogs();
  if (*verify) return runVerify(c, group, since_ms, until_ms);
  if (*show) return runShow(c, group);
  if (*tail) return runTail(c, group, peer, step, outcome, since_ms);
  if (*report) return runReport(c, group, out);
  if (*logs) {
    if (attempt_opt->count() > 0) logs_command.query.attempt = logs_attempt;
    logs_command.bootstrap = c.bootstrap;
    logs_command.props = *p;
    logs_command.topic = td::protocol::Topics(c.prefix).logs();
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    return td::audit::runLogs(logs_command, g_stop);
  }
  return 2;
}
