// td-ctl: operator commands for a running cluster (docs/operations.md, "td-ctl").
//   td-ctl groups [--state open|completed|failed|cancelled|all] [--json]
//   td-ctl cancel GROUP [--reason TEXT] [--requested-by WHO] [--timeout S]
// Everything is read from the cluster (td.state, td.events), never from one coordinator.
// Exit codes: 0 done; 1 the operation failed (unknown or finished group, the group ended
// otherwise first); 2 usage or configuration; 3 the broker unreachable, or no answer in time.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <random>

#include "common/log.h"
#include "common/time.h"
#include "config/layers.h"
#include "config/version.h"
#include "ctl/cluster.h"
#include "protocol/protocol.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

struct Options {
  std::string command;
  std::string group;
  std::string bootstrap;
  std::vector<std::string> properties;
  td::kafka::Properties kafka;
  std::string prefix = "td.";
  std::string log_level = "warn";
  std::string log_format = "text";
  int broker_timeout_s = 30;
  std::string state = "open";
  bool json = false;
  std::string reason;
  std::string requested_by;
  int timeout_s = 30;
};

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// user@host, with anything an id may not hold (coordinator/validate.cpp) replaced by '_'.
std::string defaultRequester() {
  std::string user;
  if (const char* env = ::getenv("USER"); env != nullptr && *env != '\0') user = env;
  if (user.empty()) {
    if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr) user = pw->pw_name;
  }
  if (user.empty()) user = "uid" + std::to_string(::getuid());
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::string who = user + "@" + (host[0] != '\0' ? host : "unknown-host");
  for (char& c : who) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) c = '_';
  }
  return who;
}

std::string newRequestId() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

int unreachable(const std::string& what, const td::Error& error) {
  std::cerr << fmt::format("td-ctl: {}: {}\n", what, error.message());
  return kExitUnreachable;
}

// td.state folded, its skipped records reported; on error, prints it and sets `exit_code`.
std::optional<td::ctl::GroupTable> readTable(td::ctl::Cluster& cluster, const Options& o,
                                             int* exit_code) {
  auto table = cluster.readGroups(std::chrono::seconds(o.broker_timeout_s));
  if (!table) {
    *exit_code = unreachable("reading " + td::protocol::Topics(o.prefix).state(), table.error());
    return std::nullopt;
  }
  for (const auto& problem : table->problems()) std::cerr << "td-ctl: skipped " << problem << "\n";
  return std::move(*table);
}

int runGroups(td::ctl::Cluster& cluster, const Options& o) {
  int exit_code = kExitOk;
  auto table = readTable(cluster, o, &exit_code);
  if (!table) return exit_code;
  std::vector<td::ctl::GroupRow> rows;
  const std::int64_t now = wallMs();
  for (const auto* g : table->groups()) {
    auto row = td::ctl::rowOf(*g, now);
    if (td::ctl::stateMatches(o.state, row.state)) rows.push_back(std::move(row));
  }
  std::cout << (o.json ? td::ctl::formatJson(rows) : td::ctl::formatTable(rows, o.state));
  return kExitOk;
}

int runCancel(td::ctl::Cluster& cluster, const Options& o) {
  const auto timeout = std::chrono::seconds(o.broker_timeout_s);
  int exit_code = kExitOk;
  auto table = readTable(cluster, o, &exit_code);
  if (!table) return exit_code;
  const td::v1::GroupSnapshot* group = table->find(o.group);
  if (group == nullptr) {
    std::cerr << fmt::format("td-ctl: no group {} (td-ctl groups lists the open ones)\n", o.group);
    return kExitFailed;
  }
  if (group->status() != td::v1::GROUP_STATUS_RUNNING) {
    std::cerr << fmt::format("td-ctl: group {} already {}\n", o.group,
                             td::protocol::statusName(group->status()));
    return kExitFailed;
  }
  auto from = cluster.eventsEnd(timeout);
  if (!from) {
    return unreachable("reading " + td::protocol::Topics(o.prefix).events(), from.error());
  }
  td::v1::CancelGroup request;
  request.set_group_id(o.group);
  request.set_reason(o.reason);
  request.set_requested_by(o.requested_by.empty() ? defaultRequester() : o.requested_by);
  request.set_request_id(newRequestId());
  request.set_sent_at_ms(wallMs());
  if (auto sent = cluster.sendCancel(*group, request, timeout); !sent) {
    return unreachable("sending the cancel request to " +
                           td::protocol::Topics(o.prefix).completions(),
                       sent.error());
  }
  std::cout << fmt::format("cancel request {} for group {} sent at {} (owner {}, epoch {})\n",
                           request.request_id(), o.group,
                           td::isoUtc(td::Millis(request.sent_at_ms())), group->coordinator_id(),
                           group->coordinator_epoch())
            << std::flush;
  auto end = cluster.waitForEnd(o.group, request.request_id(), *from,
                                std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_s));
  if (!end) {
    if (end.error().code() == td::Errc::kTimeout) {
      std::cerr << fmt::format(
          "td-ctl: group {}: no group_cancelled on {} within --timeout {} s; the request stays "
          "on {} and its owner will act on it when it reads it (td-ctl groups shows the group)\n",
          o.group, td::protocol::Topics(o.prefix).events(), o.timeout_s,
          td::protocol::Topics(o.prefix).completions());
      return kExitUnreachable;
    }
    return unreachable("reading " + td::protocol::Topics(o.prefix).events(), end.error());
  }
  if (end->has_group_cancelled()) {
    const auto& c = end->group_cancelled();
    std::cout << fmt::format("group {} CANCELLED by {} (request {}) on coordinator {}: {}\n",
                             o.group, c.requested_by(), c.request_id(), end->coordinator_id(),
                             c.reason().empty() ? "(no reason given)" : c.reason());
    return kExitOk;
  }
  if (end->has_input_ignored()) {
    std::cerr << fmt::format("td-ctl: group {} not cancelled: {}\n", o.group,
                             end->input_ignored().detail());
    return kExitFailed;
  }
  std::cerr << fmt::format("td-ctl: group {} ended before the request was acted on: {}\n", o.group,
                           td::protocol::describe(*end));
  return kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "td-ctl: operator commands for a Task Director cluster\n"
      "  td-ctl groups [--state open|completed|failed|cancelled|all] [--json]\n"
      "  td-ctl cancel GROUP [--reason TEXT]"};
  Options o;
  app.add_option("command", o.command, "groups or cancel")
      ->check(CLI::IsMember({"groups", "cancel"}));
  app.add_option("group", o.group, "cancel: the group id (td-ctl groups lists them)");
  app.add_option("--bootstrap-server", o.bootstrap,
                 "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]");
  app.add_option("-X", o.properties, "librdkafka property key=value (repeatable)");
  app.add_option("--topic-prefix", o.prefix, "prefix of every topic name")->capture_default_str();
  app.add_option("--broker-timeout", o.broker_timeout_s,
                 "seconds to wait for the broker's answers (then exit 3)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--state", o.state, "groups: which groups (open = running)")
      ->capture_default_str()
      ->check(CLI::IsMember({"open", "completed", "failed", "cancelled", "all"}));
  app.add_flag("--json", o.json, "groups: a JSON array instead of the table");
  app.add_option("--reason", o.reason, "cancel: why, shown to every member of the group");
  app.add_option("--requested-by", o.requested_by, "cancel: who asks (default: user@host)");
  app.add_option("--timeout", o.timeout_s,
                 "cancel: seconds to wait for the group_cancelled event (then exit 3)")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--log-format", o.log_format, "text (human-readable) or json (one object per line)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.footer(
      "Exit codes:\n"
      "  0  done (groups listed; the group was cancelled)\n"
      "  1  the operation failed: no such group, the group already finished, or it ended "
      "otherwise before the request was acted on\n"
      "  2  usage or configuration error\n"
      "  3  the broker unreachable, or no group_cancelled within --timeout\n");
  td::config::addVersionFlag(app, "td-ctl");
  td::config::Layers layers(app, "td-ctl");
  layers.addCheck([&]() -> td::Status {
    if (o.command.empty()) {
      return td::makeError(td::Errc::kInvalidArgument,
                           "which command? groups or cancel GROUP (td-ctl --help)");
    }
    if (o.bootstrap.empty()) {
      return td::makeError(td::Errc::kInvalidArgument,
                           "--bootstrap-server (or TD_BOOTSTRAP_SERVER) is required");
    }
    if (o.command == "cancel" && o.group.empty()) {
      return td::makeError(td::Errc::kInvalidArgument, "cancel: which GROUP? (td-ctl groups)");
    }
    if (o.command == "groups" && !o.group.empty()) {
      return td::makeError(td::Errc::kInvalidArgument,
                           "groups takes no group id (did you mean cancel " + o.group + "?)");
    }
    if (!o.requested_by.empty()) {
      for (char c : o.requested_by) {
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
          return td::makeError(td::Errc::kInvalidArgument,
                               "--requested-by: no spaces or control characters");
        }
      }
    }
    auto props = td::kafka::parseProperties(o.properties);
    if (!props) return td::makeError(td::Errc::kInvalidArgument, "-X: " + props.error().message());
    o.kafka = std::move(*props);
    for (const auto& settings : {td::kafka::producerSettings(o.bootstrap, "td-ctl", o.kafka),
                                 td::kafka::readerSettings(o.bootstrap, "td-ctl",
                                                           td::kafka::BrokerKind::kApacheKafka,
                                                           o.kafka)}) {
      TD_RETURN_IF_ERROR(td::kafka::checkProperties(settings));
    }
    return {};
  });
  if (auto exit = layers.parse(argc, argv, td::config::processEnvironment(), std::cout,
                               std::cerr)) {
    return *exit;
  }
  td::log::setFormat(o.log_format);
  (void)td::log::setLevel(o.log_level);
  td::protocol::routeProtobufLogs();
  auto cluster = td::ctl::Cluster::open(o.bootstrap, o.kafka, td::protocol::Topics(o.prefix));
  if (!cluster) {
    std::cerr << "td-ctl: " << cluster.error().message() << "\n";
    return kExitUsage;
  }
  if (o.command == "groups") return runGroups(**cluster, o);
  return runCancel(**cluster, o);
}
