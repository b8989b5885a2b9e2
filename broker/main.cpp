// td-broker: Task Director's embedded Kafka broker (librdkafka's mock cluster) as a process.
// Creates td.registrations, td.completions, td.joins, td.events, td.dlq, td.state,
// td.step-stats and td.logs, publishes its address through --bootstrap-file, and runs until SIGINT/SIGTERM
// (then exits 0).
// The --control socket's line protocol is documented in broker/server.h.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "broker/server.h"
#include "common/log.h"
#include "config/bounds.h"
#include "config/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "td-broker: an embedded Kafka-protocol broker (librdkafka's mock cluster) for "
      "Task Director on one machine"};
  td::broker::ServerOptions options;
  std::string level = "info";
  std::string log_format = "text";
  app.add_option("--bootstrap-file", options.bootstrap_file,
                 "file that receives HOST:PORT[,...] once the broker is up (written atomically)")
      ->required();
  app.add_option("--partitions", options.partitions,
                 "partitions of each td.* topic (td.joins always matches td.registrations)")
      ->check(td::config::between(1, 1000))
      ->capture_default_str();
  app.add_option("--brokers", options.brokers, "brokers in the cluster (ids 1..N)")
      ->check(td::config::between(1, 16))
      ->capture_default_str();
  app.add_option("--control,--control-file", options.control_path,
                 "Unix socket path for fault-control commands (down/up/rtt/errors/leader/topic; "
                 "one per line, each answered 'ok' or 'error: ...'; see broker/server.h)");
  app.add_option("--log-level", level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text (human-readable) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  td::config::addVersionFlag(app, "td-broker");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  td::log::setFormat(log_format);
  if (!td::log::setLevel(level)) {
    std::fprintf(stderr, "td-broker: --log-level: unknown level '%s'\n", level.c_str());
    return 2;
  }
  // Before the cluster starts its threads, so they inherit the blocked signals.
  auto signals = td::broker::blockTerminationSignals();
  if (!signals) {
    std::fprintf(stderr, "td-broker: %s\n", signals.error().message().c_str());
    return 1;
  }
  auto server = td::broker::Server::start(options);
  if (!server) {
    std::fprintf(stderr, "td-broker: %s\n", server.error().message().c_str());
    return 1;
  }
  std::printf("%s\n", (*server)->bootstrapServers().c_str());
  std::fflush(stdout);
  td::log::get("broker")->info("listening on {} ({} brokers, {} partitions per topic{}{})",
                               (*server)->bootstrapServers(), options.brokers, options.partitions,
                               options.control_path.empty() ? "" : ", control ",
                               options.control_path);
  auto status = (*server)->run(*signals);
  ::close(*signals);
  if (!status) {
    std::fprintf(stderr, "td-broker: %s\n", status.error().message().c_str());
    return 1;
  }
  return 0;
}
