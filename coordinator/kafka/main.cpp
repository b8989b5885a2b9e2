// td-coordinator: consumes peers' registrations and completions, publishes assignments.
#include <csignal>
#include <cstdio>

#include "common/log.h"
#include "coordinator/kafka/metrics_server.h"
#include "coordinator/kafka/options.h"
#include "coordinator/kafka/service.h"

namespace {
td::coordinator::Service* g_service = nullptr;
void onSignal(int) {
  if (g_service != nullptr) g_service->stop();
}
}  // namespace

int main(int argc, char** argv) {
  auto line = td::coordinator::parseCommandLine(argc, argv);
  if (!line) return line.error();
  const std::string metrics_listen = line->metrics_listen;
  td::protocol::routeProtobufLogs();
  td::SystemClock clock;
  auto service = td::coordinator::Service::create(std::move(line->service), clock);
  if (!service) {
    std::fprintf(stderr, "td-coordinator: %s\n", service.error().message().c_str());
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
    return 1;
  }
  return 0;
}
