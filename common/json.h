// JSON string escaping, shared by the JSON log lines, td-audit's and td-bench's JSON output and
// --print-config's quoted YAML scalars (a JSON string is a valid YAML double-quoted scalar).
#pragma once

#include <string>
#include <string_view>

namespace td {

// `text` as the body of a JSON string (no surrounding quotes): quotes, backslashes and control
// characters (and DEL) are escaped, and each byte that does not start a valid UTF-8 sequence
// becomes U+FFFD, so the result always parses.
std::string jsonEscape(std::string_view text);
// The same with the surrounding quotes.
std::string jsonQuoted(std::string_view text);

}  // namespace td
