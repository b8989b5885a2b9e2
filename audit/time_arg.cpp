#include "audit/time_arg.h"

#include <time.h>

#include <charconv>

namespace td::audit {

std::optional<std::int64_t> parseTimeArg(const std::string& text) {
  std::int64_t ms = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec == std::errc() && end == text.data() + text.size()) return ms;
  struct tm tm {};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) rest = strptime(text.c_str(), "%Y-%m-%d %H:%M:%S", &tm);
  if (rest == nullptr) {
    rest = strptime(text.c_str(), "%Y-%m-%d", &tm);
    if (rest == nullptr || *rest != '\0') return std::nullopt;
  }
  std::int64_t frac = 0;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) frac = frac * 10 + (*rest - '0'), ++digits;
      ++rest;
    }
    while (digits++ < 3) frac *= 10;
  }
  if (*rest == 'Z') ++rest;
  if (*rest != '\0') return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + frac;
}

}  // namespace td::audit
