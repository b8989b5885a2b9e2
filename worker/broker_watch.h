// When a worker gives up on a broker that does not answer, and when it says so. Pure: the
// caller reports what it saw and passes the time; no I/O, no clock of its own.
#pragma once

#include <chrono>

namespace td::worker {

// The give-up bound of td-worker's --broker-timeout (docs/operations.md, "Exit codes of
// td-worker"). Contact is anything the broker answered: an acknowledged record, a metadata
// or watermark answer, a record read. Silence is the time since the last contact (or since
// the watch was made, before any): once it reaches `bound` the worker gives up (exit 3).
// While silent, shouldReport() allows one log line once the silence passes kQuietFor, then
// one every kReportEvery, so a long outage costs a handful of lines, not one per wait.
//
// Thread safety: none; owned by the worker's one thread.
class BrokerWatch {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Millis = std::chrono::milliseconds;

  // Silence shorter than this is ordinary latency: nothing is reported.
  static constexpr Millis kQuietFor{2000};
  // Between two reports of one silence.
  static constexpr Millis kReportEvery{30000};

  // REQUIRES: bound > 0.
  BrokerWatch(Millis bound, TimePoint start) : bound_(bound), last_contact_(start) {}

  // The broker answered at `now`; a later silence is reported afresh.
  void contact(TimePoint now);
  // True when a line saying why the worker waits should be logged now (see the class comment).
  bool shouldReport(TimePoint now);
  // The silence reached the bound: give up.
  bool expired(TimePoint now) const { return silentFor(now) >= bound_; }
  Millis silentFor(TimePoint now) const;
  Millis bound() const { return bound_; }

 private:
  Millis bound_;
  TimePoint last_contact_;
  TimePoint next_report_{};   // the epoch: none made in this silence yet
  bool reported_ = false;
};

}  // namespace td::worker
