#include "coordinator/step_stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "coordinator/validate.h"
#include "protocol/protocol.h"

namespace td::coordinator {

std::uint64_t ewmaUpdate(std::uint64_t expected_ms, std::uint64_t samples,
                         std::uint64_t sample_ms) {
  if (samples == 0) return sample_ms;
  const double next = kDurationEwmaAlpha * static_cast<double>(sample_ms) +
                      (1.0 - kDurationEwmaAlpha) * static_cast<double>(expected_ms);
  return static_cast<std::uint64_t>(std::llround(next));
}

std::string stepStatsKey(std::string_view schema_name, std::string_view step_id) {
  std::string key(schema_name);
  key += '/';
  key += step_id;
  return key;
}

std::string validateStepStats(std::string_view key, const td::v1::StepStats& stats) {
  if (auto problem = checkId("schema_name", stats.schema_name()); !problem.empty()) return problem;
  if (auto problem = checkId("step_id", stats.step_id()); !problem.empty()) return problem;
  if (key != stepStatsKey(stats.schema_name(), stats.step_id())) {
    return fmt::format("key '{}' does not name the record's schema '{}' and step '{}'",
                       key.substr(0, protocol::kMaxIdBytes), stats.schema_name(),
                       stats.step_id());
  }
  if (stats.samples() == 0) return "samples: 0";
  return {};
}

std::optional<std::uint64_t> DurationTable::expectedMs(const std::string& schema_name,
                                                       const std::string& step_id) const {
  if (entries_.empty()) return std::nullopt;
  auto it = entries_.find(stepStatsKey(schema_name, step_id));
  if (it == entries_.end()) return std::nullopt;
  return it->second.expected_ms;
}

td::v1::StepStats DurationTable::record(const std::string& schema_name,
                                        const std::string& step_id, std::uint64_t duration_ms,
                                        std::int64_t now_wall_ms) {
  Entry& e = entries_[stepStatsKey(schema_name, step_id)];
  e.expected_ms = ewmaUpdate(e.expected_ms, e.samples, duration_ms);
  e.samples += 1;
  // Strictly later than what it replaces, so merge() of an older record never wins a tie.
  e.updated_at_ms = std::max(now_wall_ms, e.updated_at_ms + 1);
  td::v1::StepStats stats;
  stats.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  stats.set_schema_name(schema_name);
  stats.set_step_id(step_id);
  stats.set_expected_ms(e.expected_ms);
  stats.set_samples(e.samples);
  stats.set_last_ms(duration_ms);
  stats.set_updated_at_ms(e.updated_at_ms);
  return stats;
}

bool DurationTable::merge(const td::v1::StepStats& stats) {
  auto [it, inserted] = entries_.try_emplace(stepStatsKey(stats.schema_name(), stats.step_id()));
  Entry& e = it->second;
  if (!inserted && std::pair(stats.samples(), stats.updated_at_ms()) <=
                       std::pair(e.samples, e.updated_at_ms)) {
    return false;
  }
  const bool changed = inserted || e.expected_ms != stats.expected_ms();
  e = Entry{stats.expected_ms(), stats.samples(), stats.updated_at_ms()};
  return changed;
}

}  // namespace td::coordinator
