// td-bench: latency and throughput of Task Director on one broker (docs/performance.md).
// Exit codes: 0 every phase completed, 1 a phase failed, 2 usage.
#include <cstdio>

#include "benchmarks/bench.h"
#include "benchmarks/child_process.h"
#include "benchmarks/options.h"
#include "benchmarks/report.h"
#include "protocol/protocol.h"

int main(int argc, char** argv) {
  auto line = td::bench::parseCommandLine(argc, argv);
  if (!line) return line.error();
  td::bench::stopChildrenOnTermination();
  td::protocol::routeProtobufLogs();
  auto report = td::bench::runBench(line->options);
  if (!report) {
    std::fprintf(stderr, "td-bench: %s\n", report.error().message().c_str());
    return 1;
  }
  const std::string out =
      line->json ? td::bench::formatJson(*report) : td::bench::formatTable(*report);
  std::fputs(out.c_str(), stdout);
  for (const auto& failure : report->failures) {
    std::fprintf(stderr, "td-bench: failed: %s\n", failure.c_str());
  }
  return report->failures.empty() ? 0 : 1;
}
