#include "benchmarks/stats.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <numeric>

namespace td::bench {

namespace {
double nearestRank(const std::vector<double>& sorted, double percent) {
  const auto rank = static_cast<std::size_t>(std::ceil(percent / 100.0 * sorted.size()));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) return {};
    const auto start = line.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return {};
}
}  // namespace

LatencySummary summarize(std::vector<double> samples_ms) {
  LatencySummary summary;
  if (samples_ms.empty()) return summary;
  std::sort(samples_ms.begin(), samples_ms.end());
  summary.samples = samples_ms.size();
  summary.mean_ms = std::accumulate(samples_ms.begin(), samples_ms.end(), 0.0) / samples_ms.size();
  summary.p50_ms = nearestRank(samples_ms, 50);
  summary.p90_ms = nearestRank(samples_ms, 90);
  summary.p99_ms = nearestRank(samples_ms, 99);
  summary.max_ms = samples_ms.back();
  return summary;
}

MachineFacts readMachineFacts() {
  MachineFacts facts;
  if (long n = ::sysconf(_SC_NPROCESSORS_ONLN); n > 0) facts.nproc = static_cast<unsigned>(n);
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    facts.memory_mib = static_cast<std::size_t>(pages) * static_cast<std::size_t>(page_size) >> 20;
  }
  facts.cpu_model = cpuModel();
  if (utsname name{}; ::uname(&name) == 0) {
    facts.kernel = std::string(name.sysname) + " " + name.release;
  }
  if (double load[1]; ::getloadavg(load, 1) == 1) facts.load_average_1m = load[0];
  return facts;
}

}  // namespace td::bench
