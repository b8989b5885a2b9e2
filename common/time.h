// Time as a value. The coordinator core never reads a clock: callers pass an Instant.
// `mono` (steady, for leases, timeouts, backoff) and `wall` (system, for audit and display)
// are both milliseconds since their own epochs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace td {

using Millis = std::chrono::milliseconds;

struct Instant {
  Millis mono{0};
  Millis wall{0};
};

// Mono times are process-local; what outlives the process (td.state snapshots) carries wall
// times. These convert through `now`, the instant both clocks were read together.
inline Millis wallOf(Millis mono, Instant now) { return mono + (now.wall - now.mono); }
inline Millis monoOf(Millis wall, Instant now) { return wall - (now.wall - now.mono); }

// A wall time (milliseconds since the Unix epoch) as ISO-8601 UTC with milliseconds:
// "2026-12-07T00:10:22.488Z", what logs and td-audit print.
std::string isoUtc(Millis wall);

// The clock port. SystemClock reads the real clocks; tests use ManualClock (tests/support).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Instant now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Instant now() const override {
    using namespace std::chrono;
    return {duration_cast<Millis>(steady_clock::now().time_since_epoch()),
            duration_cast<Millis>(system_clock::now().time_since_epoch())};
  }
};

}  // namespace td
