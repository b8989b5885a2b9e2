#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace td::log {

std::shared_ptr<spdlog::logger> get(const std::string& module) {
  if (auto existing = spdlog::get(module)) return existing;
  // Colour only on a terminal (spdlog's automatic mode checks isatty and TERM), never in a CI
  // log captured to a file or pipe, and never with NO_COLOR set (no-color.org).
  const char* no_color = std::getenv("NO_COLOR");
  auto logger = spdlog::stderr_color_mt(module, no_color != nullptr && *no_color != '\0'
                                                    ? spdlog::color_mode::never
                                                    : spdlog::color_mode::automatic);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  logger->set_level(spdlog::get_level());
  return logger;
}

bool setLevel(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  spdlog::set_level(parsed);
  return true;
}

}  // namespace td::log
