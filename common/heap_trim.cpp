#include "common/heap_trim.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace td {

bool trimDue(const HeapTrimPolicy& policy, std::int64_t settled, std::int64_t previous,
             std::int64_t resident) {
  if (settled < 0 || previous < 0 || resident < 0) return false;
  return resident - settled > std::max(policy.min_growth_bytes, settled / 4) &&
         resident - previous < policy.quiet_growth_bytes;
}

std::int64_t residentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long long size = 0;
  long long resident = 0;
  const int read = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (read != 2) return -1;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

std::optional<HeapTrimResult> HeapTrimmer::maybeTrim(Millis now) {
  if (next_check_ && now < *next_check_) return std::nullopt;
  next_check_ = now + policy_.check_interval;
  const std::int64_t resident = residentBytes();
  if (resident < 0) return std::nullopt;
  const std::int64_t previous = previous_;
  previous_ = resident;
  if (settled_ < 0 || resident < settled_) {
    settled_ = resident;
    return std::nullopt;
  }
  if (!trimDue(policy_, settled_, previous, resident)) return std::nullopt;
  malloc_trim(0);
  settled_ = residentBytes();
  if (settled_ < 0) settled_ = resident;
  previous_ = settled_;
  return HeapTrimResult{.resident_before = resident, .resident_after = settled_};
}

}  // namespace td
