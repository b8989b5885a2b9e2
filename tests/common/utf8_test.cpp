// The one UTF-8 decoder: valid characters kept, maximal invalid subparts found, and the two ways
// it is used (a step's output tail, JSON strings) agree on what is valid.
#include "common/utf8.h"

#include <gtest/gtest.h>

#include "common/json.h"

namespace td {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, SequenceAtFindsCharactersAndMaximalInvalidSubparts) {
  auto at = [](std::string_view s) {
    const Utf8Sequence q = utf8SequenceAt(s, 0);
    return std::pair<std::size_t, bool>{q.length, q.valid};
  };
  EXPECT_EQ(at("a"), std::make_pair(std::size_t{1}, true));
  EXPECT_EQ(at("\xC3\xBC"), std::make_pair(std::size_t{2}, true));            // U+00FC
  EXPECT_EQ(at("\xE2\x82\xAC"), std::make_pair(std::size_t{3}, true));        // U+20AC
  EXPECT_EQ(at("\xF0\x9F\x98\x80"), std::make_pair(std::size_t{4}, true));    // U+1F600
  EXPECT_EQ(at("\xF4\x8F\xBF\xBF"), std::make_pair(std::size_t{4}, true));    // U+10FFFF
  EXPECT_EQ(at("\x80"), std::make_pair(std::size_t{1}, false));               // lone continuation
  EXPECT_EQ(at("\xC0\x80"), std::make_pair(std::size_t{1}, false));           // overlong lead
  EXPECT_EQ(at("\xE0\x80\x80"), std::make_pair(std::size_t{1}, false));       // overlong 3-byte
  EXPECT_EQ(at("\xED\xA0\x80"), std::make_pair(std::size_t{1}, false));       // surrogate
  EXPECT_EQ(at("\xF4\x90\x80\x80"), std::make_pair(std::size_t{1}, false));   // > U+10FFFF
  EXPECT_EQ(at("\xF0\x9F\x98"), std::make_pair(std::size_t{3}, false));       // truncated
  EXPECT_EQ(at("\xE2\x82x"), std::make_pair(std::size_t{2}, false));
  EXPECT_EQ(at("\xFF"), std::make_pair(std::size_t{1}, false));
}

TEST(Utf8, SanitizeReplacesMaximalInvalidSubparts) {
  EXPECT_EQ(sanitizeUtf8("plain"), "plain");
  EXPECT_EQ(sanitizeUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");             // U+1F600
  EXPECT_EQ(sanitizeUtf8("\xC0\x80"), kFffd + kFffd);                          // overlong NUL
  EXPECT_EQ(sanitizeUtf8("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_EQ(sanitizeUtf8("\xF0\x9F\x98"), kFffd);                              // truncated
  EXPECT_EQ(sanitizeUtf8("\xE2\x82x"), kFffd + "x");
}

// Every one- and two-byte string, and every three-byte string led by a multi-byte lead: a
// sanitized string is left alone by a second pass, and JSON escaping keeps exactly the
// characters the decoder calls valid.
TEST(Utf8, SanitizedTextIsValidAndJsonAgrees) {
  std::vector<std::string> inputs;
  for (int a = 0; a < 256; ++a) {
    inputs.push_back(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) {
      inputs.push_back({static_cast<char>(a), static_cast<char>(b)});
      if (a >= 0xE0 && a <= 0xF4 && b >= 0x80 && b <= 0xBF) {
        for (int c : {0x41, 0x80, 0xBF, 0xC0}) {
          inputs.push_back({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        }
      }
    }
  }
  for (const std::string& in : inputs) {
    const std::string clean = sanitizeUtf8(in);
    ASSERT_EQ(sanitizeUtf8(clean), clean) << testing::PrintToString(in);
    const bool valid = clean == in;
    const bool json_kept = jsonEscape(in).find("\\ufffd") == std::string::npos;
    ASSERT_EQ(valid, json_kept) << testing::PrintToString(in);
  }
}

}  // namespace
}  // namespace td
