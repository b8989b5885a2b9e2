#include "common/time.h"

#include <time.h>

#include <cstdio>

namespace td {

std::string isoUtc(Millis wall) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(wall);
  const auto millis = (wall - secs).count();
  const time_t t = static_cast<time_t>(secs.count());
  struct tm tm {};
  gmtime_r(&t, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return stamp;
}

}  // namespace td
