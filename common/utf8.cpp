#include "common/utf8.h"

namespace td {

Utf8Sequence utf8SequenceAt(std::string_view bytes, std::size_t i) {
  const auto lead = static_cast<unsigned char>(bytes[i]);
  if (lead < 0x80) return {1, true};
  // Length and the allowed range of the second byte, per Unicode Table 3-7 (this excludes
  // overlongs, surrogates and code points above U+10FFFF).
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return {1, false};
  }
  std::size_t matched = 1;
  while (matched < len && i + matched < bytes.size()) {
    const auto c = static_cast<unsigned char>(bytes[i + matched]);
    const bool ok = matched == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) break;
    ++matched;
  }
  return {matched, matched == len};
}

std::string sanitizeUtf8(std::string_view bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    const Utf8Sequence sequence = utf8SequenceAt(bytes, i);
    if (sequence.valid) {
      out.append(bytes.substr(i, sequence.length));
    } else {
      out.append(kReplacement);   // one U+FFFD per maximal invalid subpart
    }
    i += sequence.length;
  }
  return out;
}

}  // namespace td
