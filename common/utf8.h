// The project's one UTF-8 decoder (Unicode Table 3-7: no overlongs, no surrogates, nothing above
// U+10FFFF). Text that leaves a process as UTF-8 (JSON, a step's output tail on the wire) is
// made valid with it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace td {

// What starts at bytes[i] (i < bytes.size()): a valid character of `length` bytes, or an
// invalid maximal subpart of `length` >= 1 bytes (Unicode's "maximal subpart": the longest
// prefix of a well-formed sequence, or the one byte that cannot start one).
struct Utf8Sequence {
  std::size_t length = 0;
  bool valid = false;
};
Utf8Sequence utf8SequenceAt(std::string_view bytes, std::size_t i);

// `bytes` with each maximal invalid subpart replaced by U+FFFD.
std::string sanitizeUtf8(std::string_view bytes);

}  // namespace td
