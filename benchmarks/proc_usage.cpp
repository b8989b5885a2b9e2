#include "benchmarks/proc_usage.h"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace td::bench {

namespace {
td::Result<std::string> readText(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return makeError(td::Errc::kIo, "cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

td::Result<std::int64_t> rssBytes(pid_t pid) {
  const auto path = fmt::format("/proc/{}/status", pid);
  auto text = readText(path);
  if (!text) return td::unexpected(text.error());
  const auto at = text->find("VmRSS:");
  if (at == std::string::npos) return makeError(td::Errc::kIo, path + " has no VmRSS");
  return std::stoll(text->substr(at + 6)) * 1024;  // "VmRSS:    1234 kB"
}

// utime + stime, fields 14 and 15 of /proc/<pid>/stat (counted after the ')' of the name).
td::Result<double> statCpuSeconds(pid_t pid) {
  const auto path = fmt::format("/proc/{}/stat", pid);
  auto text = readText(path);
  if (!text) return td::unexpected(text.error());
  std::istringstream fields(text->substr(text->rfind(')') + 1));
  std::string field;
  long long utime = 0;
  long long stime = 0;
  for (int n = 3; n <= 15 && fields >> field; ++n) {
    if (n == 14) utime = std::stoll(field);
    if (n == 15) stime = std::stoll(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double schedCpuSeconds(pid_t pid) {
  std::error_code error;
  std::int64_t ns = 0;
  for (const auto& task :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), error)) {
    std::ifstream in(task.path() / "schedstat");
    std::int64_t on_cpu = 0;
    if (in >> on_cpu) ns += on_cpu;
  }
  return static_cast<double>(ns) / 1e9;
}
}  // namespace

td::Result<ProcessUsage> readUsage(pid_t pid) {
  auto rss = rssBytes(pid);
  if (!rss) return td::unexpected(rss.error());
  auto cpu = statCpuSeconds(pid);
  if (!cpu) return td::unexpected(cpu.error());
  return ProcessUsage{.rss_bytes = *rss, .cpu_stat_s = *cpu, .cpu_sched_s = schedCpuSeconds(pid)};
}

}  // namespace td::bench
