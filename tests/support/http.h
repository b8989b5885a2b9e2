// A minimal HTTP/1.1 client for tests of the coordinator's metrics endpoint: one GET over a
// plain socket to 127.0.0.1, and a reader for Prometheus' text format.
#pragma once

#include <optional>
#include <string>

namespace td::testing {

struct HttpReply {
  int status = -1;   // -1: no connection or no valid reply
  std::string body;
};

// GET http://127.0.0.1:<port><path> ("Connection: close"), with 5 s socket timeouts.
HttpReply httpGet(int port, const std::string& path);

// The value of the sample written exactly as `series` (name and labels, as the server orders
// them) at the start of a line of a /metrics page, if there is one.
std::optional<double> sampleOf(const std::string& page, const std::string& series);

// The port a td-coordinator logged it serves metrics on ("metrics on
// http://127.0.0.1:N/metrics ..."), if `output` has that line yet.
std::optional<int> loggedMetricsPort(const std::string& output);

}  // namespace td::testing
