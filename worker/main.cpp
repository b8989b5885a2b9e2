// td-worker: one CI peer. Registers, runs the steps its group hands it, exits 0/1/2/3/130
// (worker/kafka/worker_app.h).
#include <csignal>
#include <cstdio>

#include "worker/kafka/worker_app.h"
#include "worker/options.h"
#include "worker/step_supervisor.h"

namespace {
td::worker::WorkerApp* g_app = nullptr;
void onSignal(int) {
  if (g_app != nullptr) g_app->stop();
}
}  // namespace

int main(int argc, char** argv) {
  // A step's supervisor: td-worker spawns itself (/proc/self/exe) as one per step.
  if (td::worker::isStepSupervisorInvocation(argc, argv)) {
    return td::worker::stepSupervisorMain(argc, argv);
  }
  auto parsed = td::worker::parseCommandLine(argc, argv);
  if (!parsed) return parsed.error();   // --help (0) or a usage error (2), already printed
  auto& [options, schema] = *parsed;
  td::protocol::routeProtobufLogs();
  auto app = td::worker::WorkerApp::create(std::move(options), schema);
  if (!app) {
    std::fprintf(stderr, "td-worker: %s\n", app.error().message().c_str());
    return td::worker::kExitUsage;
  }
  g_app = app->get();
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  const int code = (*app)->run();
  g_app = nullptr;
  return code;
}
