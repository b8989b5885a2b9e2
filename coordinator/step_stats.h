// Expected step durations, learned from successful runs and from td.step-stats, for the
// scheduler's longest-expected-first order (docs/architecture.md, "Scheduling order").
// Pure: no I/O, no clock (times come in as arguments).
//
// Thread safety: none; owned by the Core, read by its groups.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "td/v1/stats.pb.h"

namespace td::coordinator {

// Weight of the newest sample in the moving average: 0.3 follows a step that got slower within
// a few runs, while one outlier (a cold cache) moves the estimate by less than a third.
inline constexpr double kDurationEwmaAlpha = 0.3;

// The estimate after folding `sample_ms` into `expected_ms` (from `samples` earlier runs):
// the sample itself for the first run, else round(alpha * sample + (1 - alpha) * expected).
std::uint64_t ewmaUpdate(std::uint64_t expected_ms, std::uint64_t samples, std::uint64_t sample_ms);

// td.step-stats key of (schema, step): schema name + "/" + step id.
std::string stepStatsKey(std::string_view schema_name, std::string_view step_id);

// Why a td.step-stats record cannot be used (empty if it can): ids empty, too long or with
// control characters, a key that does not name the value's (schema, step), no samples.
std::string validateStepStats(std::string_view key, const td::v1::StepStats& stats);

class DurationTable {
 public:
  // The expected duration of `step_id` in schema `schema_name`, if any run was recorded.
  std::optional<std::uint64_t> expectedMs(const std::string& schema_name,
                                          const std::string& step_id) const;
  // Folds one successful run into the estimate; returns the record to write to td.step-stats.
  td::v1::StepStats record(const std::string& schema_name, const std::string& step_id,
                           std::uint64_t duration_ms, std::int64_t now_wall_ms);
  // Takes a record read from td.step-stats (validated by the caller) if it is newer than what
  // the table has: more samples, or as many and a later updated_at_ms. Several coordinators
  // may write one key; the newest estimate wins and a re-read of our own record is a no-op.
  // Returns true if the table changed.
  bool merge(const td::v1::StepStats& stats);
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::uint64_t expected_ms = 0;
    std::uint64_t samples = 0;
    std::int64_t updated_at_ms = 0;
  };
  // Key: stepStatsKey(schema, step).
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace td::coordinator
