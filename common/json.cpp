#include "common/json.h"

#include <cstdint>
#include <cstdio>

#include "common/utf8.h"

namespace td {

std::string jsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      // Each byte of an invalid sequence becomes one U+FFFD.
      const Utf8Sequence sequence = utf8SequenceAt(text, i);
      if (!sequence.valid) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, sequence.length));
        i += sequence.length;
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

std::string jsonQuoted(std::string_view text) { return "\"" + jsonEscape(text) + "\""; }

}  // namespace td
