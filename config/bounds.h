// Range checks for numeric options whose errors fit on one line: "--join-timeout -5: must be
// between 1 and 86400 (1 s to 24 h)" rather than CLI11's "Value -5 not in range 0 to
// 1.79769e+308". Layers (config/layers.h) words the same error for a TD_* variable
// ("TD_JOIN_TIMEOUT=-5: must be ...") and a config file ("FILE:LINE:COL: join-timeout -5: ...").
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace td::config {

// What a numeric option counts, for the human form of its bounds.
enum class Unit { kCount, kSeconds, kMilliseconds };

// A CLI11 validator accepting whole numbers in [min, max]. Its error, for value V:
// "V: must be between MIN and MAX" plus, for durations, " (1 s to 24 h)"; "V: not a whole
// number" for anything else (overflow included: out of range).
CLI::Validator between(std::int64_t min, std::int64_t max, Unit unit = Unit::kCount);

// "24 h", "90 s", "500 ms": a duration in its largest whole unit.
std::string humanDuration(std::int64_t amount, Unit unit);

// The marker every error of between() carries; Layers rewords such errors.
inline constexpr std::string_view kBoundsError = ": must be between ";

}  // namespace td::config
