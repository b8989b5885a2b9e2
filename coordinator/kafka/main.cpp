// td-coordinator: consumes peers' registrations and completions, publishes assignments.
// Exit codes: 0 after SIGINT/SIGTERM; 2 for a configuration error (bad flags, refused
// credentials or ACLs, partition counts that differ, settings the broker refuses), which a
// restart would repeat; 1 for any other error. An unreachable broker is waited for.
#include <csignal>
#include <cstdio>

#include "common/log.h"
#include "coordinator/kafka/metrics_server.h"
#include "coordinator/kafka/options.h"
#include "coordinator/kafka/kafka_port.h"
#include "coordinator/shell/service.h"
#include "kafka/error.h"

namespace {
td::coordinator::Service* g_service = nullptr;
void onSignal(int) {
  if (g_service != nullptr) g_service->stop();
}

// After an error that says the broker refuses this principal (kafka/error.h).
const char* const kAccessHint =
    "the broker refused this principal's credentials or an operation it needs: what "
    "td-coordinator needs is in deploy/create-acls.sh and docs/configuration.md, \"Secure "
    "clusters\"";
}  // namespace

int main(int argc, char** argv) {
  auto line = td::coordinator::parseCommandLine(argc, argv);
  if (!line) return line.error();
  const std::string metrics_listen = line->metrics_listen;
  td::protocol::routeProtobufLogs();
  td::SystemClock clock;
  auto service = td::coordinator::Service::create(std::move(line->service), clock,
                                                  td::coordinator::KafkaPort::create);
  if (!service) {
    std::fprintf(stderr, "td-coordinator: %s\n", service.error().message().c_str());
    if (td::kafka::isAccessDenied(service.error().code())) {
      std::fprintf(stderr, "td-coordinator: %s\n", kAccessHint);
    }
    return 2;
  }
  // Metrics and health: started after the service exists, stopped before it goes.
  std::unique_ptr<td::coordinator::MetricsServer> metrics;
  if (!metrics_listen.empty()) {
    auto started =
        td::coordinator::MetricsServer::start(metrics_listen, (*service)->probe(), clock);
    if (!started) {
      std::fprintf(stderr, "td-coordinator: %s\n", started.error().message().c_str());
      return 2;
    }
    metrics = std::move(*started);
    td::log::get("coordinator")
        ->info("metrics on http://{}:{}/metrics (also /healthz, /readyz)",
               metrics_listen.substr(0, metrics_listen.rfind(':')), metrics->port());
  }
  g_service = service->get();
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  auto status = (*service)->run();
  g_service = nullptr;
  metrics.reset();
  if (!status) {
    td::log::get("coordinator")->critical("stopped: {}", status.error().message());
    // Configuration errors (credentials, ACLs, partition counts): a restart would repeat them.
    if (td::kafka::isAccessDenied(status.error().code())) {
      td::log::get("coordinator")->critical("{}", kAccessHint);
    }
    return td::coordinator::isConfigurationError(status.error().code()) ? 2 : 1;
  }
  return 0;
}
