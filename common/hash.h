// Stable hashes. These values travel on the wire and name groups, so they never change.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace td {

// FNV-1a, 64 bit: fast, stable, for partitioning and short ids (not collision-resistant).
std::uint64_t fnv1a64(std::string_view data);
// Lower-case hex SHA-256 of `data` (64 characters): for digests that must not collide.
std::string sha256Hex(std::string_view data);
// Lower-case hex of `value`, zero-padded to 16 characters.
std::string hex64(std::uint64_t value);

}  // namespace td
