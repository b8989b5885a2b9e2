// Plain value types of td_kafka: librdkafka properties, consumed messages, offsets.
// Nothing here refers to librdkafka; conversion happens inside td_kafka.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace td::kafka {

// librdkafka configuration properties (https://github.com/confluentinc/librdkafka
// CONFIGURATION.md), applied in order: a later entry overrides an earlier one.
using Properties = std::vector<std::pair<std::string, std::string>>;

// Parses "key=value" entries (for repeated `-X key=value` flags); the value may itself contain
// '='. Returns td::Errc::kInvalidArgument naming the first entry with no '=' or an empty key.
td::Result<Properties> parseProperties(const std::vector<std::string>& key_values);

// Sets every property on a fresh librdkafka configuration object, as creating a client does,
// without creating one (nothing connects). For checks before a start (--print-config).
// Errors: Errc::kInvalidArg naming the first unknown property or invalid value, with
// librdkafka's reason (a secret's value redacted).
td::Status checkProperties(const Properties& props);

// librdkafka's version string (rd_kafka_version_str(), e.g. "2.0.2").
std::string librdkafkaVersion();

// One consumed record. A null key or value arrives as an empty string.
struct Message {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  std::int64_t timestamp_ms = -1;  // producer (create) or broker (log append) time; -1 if unknown
};

// A partition plus an offset. For commits the offset is the next one to read (last + 1).
struct TopicPartitionOffset {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;

  friend bool operator==(const TopicPartitionOffset&, const TopicPartitionOffset&) = default;
};

// Logical offsets for PartitionReader::assign/add (librdkafka's RD_KAFKA_OFFSET_* values).
inline constexpr std::int64_t kOffsetBeginning = -2;  // the oldest retained record
inline constexpr std::int64_t kOffsetEnd = -1;        // only records produced from now on
inline constexpr std::int64_t kOffsetStored = -1000;  // the group's committed offset

}  // namespace td::kafka
