#include "common/log.h"

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

// Length of the valid UTF-8 sequence at s[i], or 0 if there is none.
std::size_t utf8Length(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  std::uint32_t min = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  std::uint32_t cp = c & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
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

std::string jsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8Length(text, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

std::string jsonLine(std::chrono::system_clock::time_point time, std::string_view level,
                     std::string_view logger, std::string_view message) {
  using namespace std::chrono;
  const auto since_epoch = time.time_since_epoch();
  const auto secs = floor<seconds>(since_epoch);
  const auto millis = duration_cast<milliseconds>(since_epoch - secs).count();
  const time_t t = static_cast<time_t>(secs.count());
  struct tm tm {};
  gmtime_r(&t, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  std::string line = "{\"time\":\"";
  line += stamp;
  line += "\",\"level\":\"";
  line += jsonEscape(level);
  line += "\",\"logger\":\"";
  line += jsonEscape(logger);
  line += "\",\"message\":\"";
  line += jsonEscape(message);
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
