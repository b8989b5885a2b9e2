// Logging: one named spdlog logger per module, configured once by each binary's main().
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace td::log {

// Returns the module's logger, creating it (stderr, shared format) on first use.
std::shared_ptr<spdlog::logger> get(const std::string& module);
// Sets the level of every logger ("trace".."off"); returns false for an unknown name.
bool setLevel(const std::string& level);

}  // namespace td::log
