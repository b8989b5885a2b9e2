// Gives freed heap memory back to the system after a burst. glibc's malloc returns memory to
// the kernel only from the top of an arena, so after a burst (a coordinator taking over a
// thousand groups: registrations, snapshots and records in flight, all freed a moment later)
// the process keeps its peak resident. Measured on Apache Kafka at 1 000 open groups:
// td-coordinator 50.4 MB resident with 11.8 MB of heap in use; malloc_trim(0) took it to
// 35.3 MB (docs/performance.md, "Issue 16, third step").
//
// The rule (HeapTrimPolicy): look at the resident size at most once per `check_interval`.
// Trim when it has grown by more than max(min_growth, settled / 4) over the settled size (what
// it was after the last trim, or its lowest since) and has stopped growing: it grew by less
// than `quiet_growth` since the previous look. The size after the trim is the new settled
// size. So a burst is given back once it is over (within two looks), a process whose memory
// is all in use trims at most once per margin of growth, and a steady one never does. Reading
// the resident size is one small read of /proc/self/statm; a trim walks every free chunk
// (0.24 s for a test heap of a million scattered free chunks), which is why it waits for the
// burst to end rather than running on every look.
//
// Thread safety: HeapTrimmer is used from one thread; malloc_trim itself is thread-safe.
#pragma once

#include <cstdint>
#include <optional>

#include "common/time.h"

namespace td {

struct HeapTrimPolicy {
  Millis check_interval{500};
  std::int64_t min_growth_bytes = 8 << 20;
  std::int64_t quiet_growth_bytes = 1 << 20;
};

// The pure rule: true if `resident` has grown past the margin over `settled` and by less than
// quiet_growth since `previous` (the last look). Negative sizes (unknown) are never due.
bool trimDue(const HeapTrimPolicy& policy, std::int64_t settled, std::int64_t previous,
             std::int64_t resident);

struct HeapTrimResult {
  std::int64_t resident_before = 0;
  std::int64_t resident_after = 0;
};

class HeapTrimmer {
 public:
  explicit HeapTrimmer(HeapTrimPolicy policy = {}) : policy_(policy) {}
  // Call often (a coordinator calls it on every tick, with the monotonic time). Returns what a
  // trim did when one was due and ran, nullopt otherwise (not time to look, nothing due, or
  // the resident size could not be read).
  std::optional<HeapTrimResult> maybeTrim(Millis now);

 private:
  HeapTrimPolicy policy_;
  std::optional<Millis> next_check_;
  std::int64_t settled_ = -1;   // unknown until the first look
  std::int64_t previous_ = -1;
};

// The process's resident size in bytes (/proc/self/statm), or -1 if it cannot be read.
std::int64_t residentBytes();

}  // namespace td
