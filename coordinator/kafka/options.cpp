#include "coordinator/kafka/options.h"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "common/log.h"
#include "config/bounds.h"
#include "config/layers.h"
#include "config/version.h"
#include "coordinator/kafka/kafka_port.h"
#include "coordinator/kafka/metrics_server.h"

namespace td::coordinator {

td::Expected<CommandLine, int> parseCommandLine(int argc, char** argv) {
  CLI::App app{"td-coordinator: groups CI peers and shards their schema's steps over Kafka"};
  CommandLine line;
  ServiceOptions& options = line.service;
  std::vector<std::string> properties;
  std::string prefix = "td.";
  std::string level = "info";
  std::string log_format = "text";
  int retention_s = 600;
  int abandoned_s = 300;
  int lease_ms = 5000;
  int heartbeat_ms = 1000;
  options.core.coordinator_id = "coordinator-" + std::to_string(::getpid());
  app.add_option("--bootstrap-server", options.bootstrap_servers,
                 "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]")->required();
  app.add_option("-X", properties, "librdkafka property key=value (repeatable)");
  app.add_option("--consumer-group", options.consumer_group, "consumer group of coordinators")
      ->capture_default_str();
  app.add_option("--coordinator-id", options.core.coordinator_id,
                 "name of this instance on td.events (default: coordinator-PID)");
  app.add_option("--topic-prefix", prefix, "prefix of every topic name")->capture_default_str();
  app.add_option("--finished-group-retention", retention_s,
                 "seconds a completed group stays joinable before it is forgotten")
      ->check(td::config::between(1, 7 * 24 * 3600, td::config::Unit::kSeconds))->capture_default_str();
  app.add_option("--abandoned-group-timeout", abandoned_s,
                 "seconds a running group may have no member (all left or were lost) before it "
                 "is ended as abandoned and forgotten; 0: never")
      ->check(td::config::between(0, 7 * 24 * 3600, td::config::Unit::kSeconds))->capture_default_str();
  app.add_option("--lease-ms", lease_ms,
                 "a peer silent this long is declared lost and its step re-queued")
      ->check(td::config::between(500, 3600 * 1000, td::config::Unit::kMilliseconds))->capture_default_str();
  app.add_option("--heartbeat-interval-ms", heartbeat_ms,
                 "how often workers heartbeat (told in their join reply); under half the lease")
      ->check(td::config::between(50, 600 * 1000, td::config::Unit::kMilliseconds))->capture_default_str();
  app.add_flag("--exactly-once", options.exactly_once,
               "one Kafka transaction per cycle (Apache Kafka only; the embedded broker does not "
               "isolate transactions)");
  app.add_flag("--static-membership", options.static_membership,
               "join the consumer group as a static member (group.instance.id = "
               "--coordinator-id, which must then be given): a restart within the session "
               "timeout takes its partitions back without a rebalance of the others, but a "
               "stopped instance's partitions wait out the session timeout (Apache Kafka; the "
               "embedded broker ignores it)");
  app.add_flag("!--no-step-stats", options.core.step_stats,
               "hand out steps in schema order, and neither read nor write the duration history "
               "on td.step-stats (default: longest expected step first)");
  app.add_flag("!--no-speculation", options.core.speculation,
               "never race a straggling step with a speculative attempt on an idle peer, for "
               "every group (default: a step that ran over twice its expected duration, and "
               "2 s over it, once nothing is queued; docs/architecture.md, \"Speculative "
               "attempts\")");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text (human-readable) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  // Assignment topics (docs/configuration.md, "Assignment topics").
  std::string assign_mode = "auto";
  std::vector<std::string> assign_config;
  std::vector<std::string> admin_properties;
  int admin_timeout_ms = 10000;
  app.add_option("--assign-topics", assign_mode,
                 "auto: the broker creates td.assign.<group> topics on first use (the embedded "
                 "broker; Kafka's auto.create.topics.enable); admin: create each through the "
                 "Admin API and delete it once the group is forgotten")
      ->check(CLI::IsMember({"auto", "admin"}))->capture_default_str();
  app.add_option("--assign-partitions", options.assign_topics.partitions,
                 "partitions of each td.assign topic created (admin; only partition 0 is used)")
      ->check(td::config::between(1, 1000))->capture_default_str();
  app.add_option("--assign-replication", options.assign_topics.replication,
                 "replication factor of each td.assign topic created (admin; -1: the broker's "
                 "default.replication.factor, Kafka 2.4 and later)")
      ->check(td::config::between(-1, 32))->capture_default_str();
  app.add_option("--assign-topic-config", assign_config,
                 "topic configuration KEY=VALUE of each td.assign topic created (admin; "
                 "repeatable), e.g. min.insync.replicas=2");
  app.add_option("--admin-property", admin_properties,
                 "librdkafka property KEY=VALUE for the admin client only, applied over -X "
                 "(repeatable): e.g. a principal allowed to create and delete topics");
  app.add_option("--admin-timeout-ms", admin_timeout_ms,
                 "how long an Admin API request may take (admin)")
      ->check(td::config::between(100, 600 * 1000, td::config::Unit::kMilliseconds))->capture_default_str();
  // Metrics and health (docs/operations.md, "Metrics and health").
  app.add_option("--metrics-listen", line.metrics_listen,
                 "serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT (IP address; "
                 "port 0 picks one, logged); default: off");
  app.footer(
      "Exit codes:\n"
      "  0    stopped by SIGINT/SIGTERM (also after --help, --version, --print-config)\n"
      "  1    stopped on a runtime error (a record it could not deliver, ...)\n"
      "  2    configuration error: bad flags or config, input topics whose partition counts "
      "differ, credentials, ACLs or settings the broker refuses\n"
      "An unreachable broker is not an error: it retries, and /readyz answers 503 meanwhile.\n");
  td::config::addVersionFlag(app, "td-coordinator");
  // Everything a start checks before it connects; --print-config runs the same (config/layers.h).
  td::config::Layers layers(app, "td-coordinator");   // --config, TD_* variables, --print-config
  layers.addCheck([&]() -> td::Status {
    auto parsed = td::kafka::parseProperties(properties);
    if (!parsed) return makeError(td::Errc::kInvalidArgument, "-X: " + parsed.error().message());
    options.kafka = std::move(*parsed);
    auto topic_config = td::kafka::parseProperties(assign_config);
    if (!topic_config) {
      return makeError(td::Errc::kInvalidArgument,
                       "--assign-topic-config: " + topic_config.error().message());
    }
    auto admin_kafka = td::kafka::parseProperties(admin_properties);
    if (!admin_kafka) {
      return makeError(td::Errc::kInvalidArgument,
                       "--admin-property: " + admin_kafka.error().message());
    }
    options.assign_topics.create = assign_mode == "admin";
    options.assign_topics.config = std::move(*topic_config);
    options.assign_topics.admin_kafka = std::move(*admin_kafka);
    options.assign_topics.timeout = std::chrono::milliseconds(admin_timeout_ms);
    if (heartbeat_ms * 2 > lease_ms) {
      return makeError(td::Errc::kInvalidArgument,
                       fmt::format("--heartbeat-interval-ms {} ({}) must be at most half of "
                                   "--lease-ms {} ({})",
                                   heartbeat_ms,
                                   td::config::describe(layers.origin("heartbeat-interval-ms")),
                                   lease_ms, td::config::describe(layers.origin("lease-ms"))));
    }
    if (options.static_membership &&
        layers.origin("coordinator-id").source == td::config::Source::kDefault) {
      return makeError(td::Errc::kInvalidArgument,
                       "--static-membership needs a stable --coordinator-id (it is the "
                       "consumer's group.instance.id; the default, coordinator-PID, changes "
                       "with every start)");
    }
    options.core.topics = td::protocol::Topics(prefix);
    // Every librdkafka property of every client, on a real configuration object.
    TD_RETURN_IF_ERROR(KafkaPort::checkOptions(options));
    if (!line.metrics_listen.empty()) {
      TD_RETURN_IF_ERROR(MetricsServer::checkAddress(line.metrics_listen));
    }
    return {};
  });
  const auto env = td::config::processEnvironment();
  if (auto exit = layers.parse(argc, argv, env, std::cout, std::cerr)) {
    return td::unexpected(*exit);   // --help, --version, --print-config: 0; errors: 2
  }
  td::log::setFormat(log_format);
  (void)td::log::setLevel(level);   // one of --log-level's IsMember values
  options.core.finished_group_retention = std::chrono::seconds(retention_s);
  options.core.abandoned_group_timeout = std::chrono::seconds(abandoned_s);
  options.core.lease = std::chrono::milliseconds(lease_ms);
  options.core.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);

  options.publish_stats = !line.metrics_listen.empty();
  return line;
}

}  // namespace td::coordinator
