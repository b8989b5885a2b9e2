// Facts of the build, defined in a file CMake generates into the build directory at every
// build (cmake/BuildInfo.cmake; never committed), so only it recompiles when they change.
#pragma once

namespace td::config {

extern const char* const kProjectVersion;   // CMake's PROJECT_VERSION, e.g. "0.1.0"
extern const char* const kGitCommit;        // `git describe --always --dirty`, or "unknown"

}  // namespace td::config
