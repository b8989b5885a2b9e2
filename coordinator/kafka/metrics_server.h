// The coordinator's HTTP endpoint for operators (docs/operations.md, "Metrics and health"):
//   GET /metrics  the ServiceProbe in Prometheus' text exposition format (version 0.0.4)
//   GET /healthz  200 while the service loop turns (within `stall_after`), else 503
//   GET /readyz   200 once ServiceProbe::ready() (joined, restored, broker reachable), else 503
// The only code that links prometheus-cpp and civetweb. It reads the probe when scraped and
// never touches the Service or its Core.
//
// Thread safety: the HTTP server runs on its own threads (civetweb's), which only read the
// probe (atomics and ServiceProbe::stats(), a copy under its mutex). The destructor stops the
// server and joins those threads.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "common/time.h"
#include "coordinator/shell/service_probe.h"

namespace td::coordinator {

class MetricsServer {
 public:
  // Listens on `listen`, "HOST:PORT" with HOST an IPv4 address, or "[IPv6]:PORT"; port 0
  // picks a free port (see port()). `probe` and `clock` must outlive the server.
  // Errors: kInvalidArgument for a malformed address, kUnavailable if it cannot listen.
  static td::Result<std::unique_ptr<MetricsServer>> start(const std::string& listen,
                                                         const ServiceProbe& probe,
                                                         const Clock& clock,
                                                         Millis stall_after = Millis(30000));
  // The checks start() makes of `listen` before it listens (kInvalidArgument), for
  // --print-config.
  static td::Status checkAddress(const std::string& listen);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port it listens on (the chosen one when asked for port 0).
  int port() const;
  // The /metrics page as it would be served now.
  std::string renderForTest() const;

  struct Impl;

 private:
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace td::coordinator
