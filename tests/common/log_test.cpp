// --log-format json: one JSON object per line with time, level, logger and message, valid JSON
// whatever the message holds.
#include "common/log.h"

#include "common/json.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

namespace td::log {
namespace {

TEST(JsonLog, EscapesQuotesBackslashesNewlinesAndControlCharacters) {
  EXPECT_EQ(jsonEscape("say \"hi\"\\ now\nnext\tline\r\x01\x7f"),
            "say \\\"hi\\\"\\\\ now\\nnext\\tline\\r\\u0001\\u007f");
}

TEST(JsonLog, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(jsonEscape("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"),
            "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(jsonEscape("bad \xff end \xc3"), "bad \\ufffd end \\ufffd");
  EXPECT_EQ(jsonEscape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // a UTF-16 surrogate
  EXPECT_EQ(jsonEscape("\xc0\xaf"), "\\ufffd\\ufffd");             // overlong
}

TEST(JsonLog, LineHasTimeLevelLoggerAndMessage) {
  const auto time =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  EXPECT_EQ(jsonLine(time, "warn", "coordinator", "a \"b\"\nc"),
            "{\"time\":\"2023-11-14T22:13:20.123Z\",\"level\":\"warn\",\"logger\":\"coordinator\","
            "\"message\":\"a \\\"b\\\"\\nc\"}\n");
}

TEST(JsonLog, FormatterWritesOneObjectPerRecord) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(makeJsonFormatter());
  spdlog::logger logger("json-test", sink);
  logger.set_level(spdlog::level::trace);
  logger.warn("peer={} said \"{}\"", "w1", "x\ny");
  logger.error("second");
  const std::string text = out.str();
  std::istringstream lines(text);
  std::string first, second, rest;
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_FALSE(std::getline(lines, rest));
  EXPECT_NE(first.find("\"level\":\"warn\",\"logger\":\"json-test\","
                       "\"message\":\"peer=w1 said \\\"x\\ny\\\"\"}"),
            std::string::npos)
      << first;
  EXPECT_EQ(first.rfind("{\"time\":\"", 0), 0u) << first;
  EXPECT_NE(second.find("\"level\":\"error\""), std::string::npos) << second;
}

TEST(JsonLog, SetFormatSwitchesExistingLoggersAndRejectsUnknownNames) {
  EXPECT_FALSE(setFormat("xml"));
  EXPECT_FALSE(jsonFormat());
  EXPECT_TRUE(setFormat("json"));
  EXPECT_TRUE(jsonFormat());
  EXPECT_TRUE(setFormat("text"));
  EXPECT_FALSE(jsonFormat());
}

}  // namespace
}  // namespace td::log
