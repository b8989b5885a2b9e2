#include "common/log.h"

#include "common/json.h"
#include "common/time.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace td::log {

namespace {

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v";

// Written by main() before any other thread logs; read when a logger is created.
std::atomic<bool> g_json{false};

std::unique_ptr<spdlog::formatter> currentFormatter() {
  if (g_json.load()) return makeJsonFormatter();
  return std::make_unique<spdlog::pattern_formatter>(kTextPattern);
}

std::string_view levelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line =
        jsonLine(msg.time, levelName(msg.level),
                 std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                 std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string jsonLine(std::chrono::system_clock::time_point time, std::string_view level,
                     std::string_view logger, std::string_view message) {
  const std::string stamp = td::isoUtc(
      std::chrono::duration_cast<Millis>(time.time_since_epoch()));
  std::string line = "{\"time\":\"";
  line += stamp;
  line += "\",\"level\":\"";
  line += td::jsonEscape(level);
  line += "\",\"logger\":\"";
  line += td::jsonEscape(logger);
  line += "\",\"message\":\"";
  line += td::jsonEscape(message);
  line += "\"}\n";
  return line;
}

bool jsonFormat() { return g_json.load(); }

std::unique_ptr<spdlog::formatter> makeJsonFormatter() { return std::make_unique<JsonFormatter>(); }

std::shared_ptr<spdlog::logger> get(const std::string& module) {
  if (auto existing = spdlog::get(module)) return existing;
  // Colour only on a terminal (spdlog's automatic mode checks isatty and TERM), never in a CI
  // log captured to a file or pipe, and never with NO_COLOR set (no-color.org).
  const char* no_color = std::getenv("NO_COLOR");
  auto logger = spdlog::stderr_color_mt(module, no_color != nullptr && *no_color != '\0'
                                                    ? spdlog::color_mode::never
                                                    : spdlog::color_mode::automatic);
  logger->set_formatter(currentFormatter());
  logger->set_level(spdlog::get_level());
  return logger;
}

bool setLevel(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  spdlog::set_level(parsed);
  return true;
}

bool setFormat(std::string_view format) {
  if (format != "text" && format != "json") return false;
  g_json = format == "json";
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& logger) {
    logger->set_formatter(currentFormatter());
  });
  return true;
}

}  // namespace td::log
