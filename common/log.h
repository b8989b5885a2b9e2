// Logging: one named spdlog logger per module, configured once by each binary's main().
//
// Two line formats, chosen by `--log-format` (docs/operations.md, "Logs"):
//   text (default)  2026-11-23T14:13:17.601 info  [worker] peer=w1 ... (local time)
//   json            {"time":"2026-11-23T13:13:17.601Z","level":"info","logger":"worker",
//                    "message":"peer=w1 ..."}   one object per line, UTC, always valid JSON
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace td::log {

// Returns the module's logger, creating it (stderr, the current format) on first use.
std::shared_ptr<spdlog::logger> get(const std::string& module);
// Sets the level of every logger ("trace".."off"); returns false for an unknown name.
bool setLevel(const std::string& level);
// Sets the line format of every logger, existing and future: "text" or "json". Returns false
// (and changes nothing) for any other name.
bool setFormat(std::string_view format);

// The JSON-lines formatter behind setFormat("json"), for tests and other sinks. Each record
// becomes {"time","level","logger","message"} and a '\n'; quotes, backslashes and control
// characters are escaped and invalid UTF-8 is replaced by U+FFFD, so every line parses.
std::unique_ptr<spdlog::formatter> makeJsonFormatter();
// One JSON log line as makeJsonFormatter() writes it, ending in '\n'; `level` as in --log-level.
std::string jsonLine(std::chrono::system_clock::time_point time, std::string_view level,
                     std::string_view logger, std::string_view message);
// True after setFormat("json"): output that is not a log record (a worker's step output) should
// then be wrapped with jsonLine() so stderr stays one JSON object per line.
bool jsonFormat();

}  // namespace td::log
