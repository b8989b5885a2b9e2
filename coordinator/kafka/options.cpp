#include "coordinator/kafka/options.h"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "common/log.h"
#include "config/layers.h"

namespace td::coordinator {

std::expected<CommandLine, int> parseCommandLine(int argc, char** argv) {
  CLI::App app{"td-coordinator: groups CI peers and shards their schema's steps over Kafka"};
  CommandLine line;
  ServiceOptions& options = line.service;
  std::vector<std::string> properties;
  std::string prefix = "td.";
  std::string level = "info";
  std::string log_format = "text";
  int retention_s = 600;
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
      ->check(CLI::Range(1, 7 * 24 * 3600))->capture_default_str();
  app.add_option("--lease-ms", lease_ms,
                 "a peer silent this long is declared lost and its step re-queued")
      ->check(CLI::Range(500, 3600 * 1000))->capture_default_str();
  app.add_option("--heartbeat-interval-ms", heartbeat_ms,
                 "how often workers heartbeat (told in their join reply); under half the lease")
      ->check(CLI::Range(50, 600 * 1000))->capture_default_str();
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
      ->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--assign-replication", options.assign_topics.replication,
                 "replication factor of each td.assign topic created (admin; -1: the broker's "
                 "default.replication.factor, Kafka 2.4 and later)")
      ->check(CLI::Range(-1, 32))->capture_default_str();
  app.add_option("--assign-topic-config", assign_config,
                 "topic configuration KEY=VALUE of each td.assign topic created (admin; "
                 "repeatable), e.g. min.insync.replicas=2");
  app.add_option("--admin-property", admin_properties,
                 "librdkafka property KEY=VALUE for the admin client only, applied over -X "
                 "(repeatable): e.g. a principal allowed to create and delete topics");
  app.add_option("--admin-timeout-ms", admin_timeout_ms,
                 "how long an Admin API request may take (admin)")
      ->check(CLI::Range(100, 600 * 1000))->capture_default_str();
  // Metrics and health (docs/operations.md, "Metrics and health").
  app.add_option("--metrics-listen", line.metrics_listen,
                 "serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT (IP address; "
                 "port 0 picks one, logged); default: off");
  td::config::Layers layers(app, "td-coordinator");   // --config, TD_* variables, --print-config
  const auto env = td::config::processEnvironment();
  if (auto exit = layers.parse(argc, argv, env, std::cout, std::cerr)) {
    return std::unexpected(*exit);   // --help, --print-config: 0; errors: 2
  }
  td::log::setFormat(log_format);
  if (!td::log::setLevel(level)) {
    std::fprintf(stderr, "td-coordinator: --log-level: unknown level '%s'\n", level.c_str());
    return std::unexpected(2);
  }
  auto parsed = td::kafka::parseProperties(properties);
  if (!parsed) {
    std::fprintf(stderr, "td-coordinator: -X: %s\n", parsed.error().message().c_str());
    return std::unexpected(2);
  }
  options.kafka = std::move(*parsed);
  auto topic_config = td::kafka::parseProperties(assign_config);
  auto admin_kafka = td::kafka::parseProperties(admin_properties);
  if (!topic_config || !admin_kafka) {
    std::fprintf(stderr, "td-coordinator: %s: %s\n",
                 topic_config ? "--admin-property" : "--assign-topic-config",
                 (topic_config ? admin_kafka : topic_config).error().message().c_str());
    return std::unexpected(2);
  }
  options.assign_topics.create = assign_mode == "admin";
  options.assign_topics.config = std::move(*topic_config);
  options.assign_topics.admin_kafka = std::move(*admin_kafka);
  options.assign_topics.timeout = std::chrono::milliseconds(admin_timeout_ms);
  options.core.topics = td::protocol::Topics(prefix);
  options.core.finished_group_retention = std::chrono::seconds(retention_s);
  if (heartbeat_ms * 2 > lease_ms) {
    std::fprintf(stderr,
                 "td-coordinator: --heartbeat-interval-ms %d (%s) must be at most half of "
                 "--lease-ms %d (%s)\n",
                 heartbeat_ms, td::config::describe(layers.origin("heartbeat-interval-ms")).c_str(),
                 lease_ms, td::config::describe(layers.origin("lease-ms")).c_str());
    return std::unexpected(2);
  }
  if (options.static_membership &&
      layers.origin("coordinator-id").source == td::config::Source::kDefault) {
    std::fprintf(stderr,
                 "td-coordinator: --static-membership needs a stable --coordinator-id (it is "
                 "the consumer's group.instance.id; the default, coordinator-PID, changes with "
                 "every start)\n");
    return std::unexpected(2);
  }
  options.core.lease = std::chrono::milliseconds(lease_ms);
  options.core.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);

  options.publish_stats = !line.metrics_listen.empty();
  return line;
}

}  // namespace td::coordinator
