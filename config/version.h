// `--version` of every Task Director binary: one text, built in one place.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>

namespace td::config {

// "<program> <version>\ncommit <git describe>\nprotocol <n>\nlibrdkafka <version>\n" without
// the last newline: the CMake project version, the commit the build was made from (`git
// describe --always --dirty` at build time; "unknown" outside a git checkout), the wire
// protocol version (protocol/protocol.h) and the librdkafka the binary runs with.
std::string versionText(std::string_view program);

// Adds `--version` to `app`: prints versionText(program) to stdout and exits 0 (CLI11's
// CallForVersion, which app.exit() turns into exit code 0). Not a layered option.
void addVersionFlag(CLI::App& app, std::string_view program);

}  // namespace td::config
