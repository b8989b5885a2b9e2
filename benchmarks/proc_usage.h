// The CPU time and resident memory of a process (td-coordinator), read from /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "common/result.h"

namespace td::bench {

// What /proc says about a process at one moment.
struct ProcessUsage {
  std::int64_t rss_bytes = 0;  // /proc/<pid>/status VmRSS
  double cpu_stat_s = 0;       // /proc/<pid>/stat utime + stime (clock ticks, 10 ms here)
  // Sum over /proc/<pid>/task/*/schedstat of the time on CPU (ns resolution); threads that
  // exited are not counted. 0 when the kernel has no schedstat.
  double cpu_sched_s = 0;
};
// Errors: td::Errc::kIo naming the file that could not be read.
td::Result<ProcessUsage> readUsage(pid_t pid);
// cpu_sched_s, or cpu_stat_s when schedstat is missing.
inline double cpuSeconds(const ProcessUsage& u) {
  return u.cpu_sched_s > 0 ? u.cpu_sched_s : u.cpu_stat_s;
}

}  // namespace td::bench
