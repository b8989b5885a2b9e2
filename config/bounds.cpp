#include "config/bounds.h"

#include <charconv>
#include <string_view>

namespace td::config {

std::string humanDuration(std::int64_t amount, Unit unit) {
  if (unit == Unit::kCount) return std::to_string(amount);
  std::int64_t ms = unit == Unit::kSeconds ? amount * 1000 : amount;
  struct Step {
    std::int64_t ms;
    const char* name;
  };
  // Days from two on: "24 h" reads better than "1 d".
  for (const Step& step : {Step{86400000, "d"}, Step{3600000, "h"}, Step{60000, "min"},
                           Step{1000, "s"}}) {
    if (step.ms == 86400000 && ms < 2 * step.ms) continue;
    if (ms != 0 && ms % step.ms == 0) return std::to_string(ms / step.ms) + " " + step.name;
  }
  return std::to_string(ms) + " ms";
}

CLI::Validator between(std::int64_t min, std::int64_t max, Unit unit) {
  std::string range = std::to_string(min) + " and " + std::to_string(max);
  if (unit != Unit::kCount) {
    range += " (" + humanDuration(min, unit) + " to " + humanDuration(max, unit) + ")";
  }
  auto check = [min, max, range](std::string& input) -> std::string {
    std::int64_t value = 0;
    const char* first = input.data();
    const char* last = input.data() + input.size();
    if (first != last && *first == '+') ++first;
    auto [end, ec] = std::from_chars(first, last, value);
    if (ec == std::errc::result_out_of_range && end == last) {
      return input + std::string(kBoundsError) + range;
    }
    if (ec != std::errc() || end != last || first == last) return input + ": not a whole number";
    if (value < min || value > max) return input + std::string(kBoundsError) + range;
    return "";
  };
  return CLI::Validator(check, "INT in [" + std::to_string(min) + " - " + std::to_string(max) +
                                   "]");
}

}  // namespace td::config
