// Latency samples -> percentiles, and the facts about the machine a run was made on.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace td::bench {

// Percentiles use the nearest-rank method on the sorted samples (p50 of 1..100 is 50).
struct LatencySummary {
  std::size_t samples = 0;
  double mean_ms = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// Summarizes `samples_ms` (taken by value: it is sorted). All zero when there are none.
LatencySummary summarize(std::vector<double> samples_ms);

struct MachineFacts {
  unsigned nproc = 0;           // online CPUs
  std::size_t memory_mib = 0;   // physical memory
  std::string cpu_model;        // /proc/cpuinfo "model name", empty if unknown
  std::string kernel;           // uname -sr
  double load_average_1m = -1;  // at the start of the run; -1 if unknown
};

// Reads the facts above; fields it cannot read keep their defaults.
MachineFacts readMachineFacts();

}  // namespace td::bench
