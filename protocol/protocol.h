// Facts about the wire protocol that the coordinator, the worker and the audit tools share:
// topic names, the compatibility key, partition choice, limits, and readable descriptions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "td/v1/common.pb.h"
#include "td/v1/events.pb.h"
#include "td/v1/registrations.pb.h"

namespace td::protocol {

inline constexpr std::uint32_t kVersion = td::v1::PROTOCOL_VERSION_1;

// Limits on input the coordinator accepts; anything larger is dead-lettered. They keep every
// output (a group_created event echoes a registration's steps) under Kafka's default 1 MiB.
inline constexpr std::size_t kMaxRecordBytes = 512 * 1024;
// A dead letter keeps at most this much of the original value (DeadLetter.value_truncated).
inline constexpr std::size_t kMaxDeadLetterValueBytes = 256 * 1024;
inline constexpr std::size_t kMaxIdBytes = 256;
inline constexpr std::size_t kMaxRefBytes = 1024;
inline constexpr std::size_t kMaxSteps = 10000;
inline constexpr std::size_t kMaxRepos = 64;
inline constexpr std::size_t kMaxRefsPerRepo = 256;
inline constexpr std::size_t kMaxOutputTailBytes = 64 * 1024;
inline constexpr std::uint32_t kMaxAttemptLimit = 100;

// Topic names under one configurable prefix (default "td.").
class Topics {
 public:
  Topics() = default;
  explicit Topics(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string registrations() const { return prefix_ + "registrations"; }
  std::string completions() const { return prefix_ + "completions"; }
  std::string joins() const { return prefix_ + "joins"; }
  std::string events() const { return prefix_ + "events"; }
  std::string dlq() const { return prefix_ + "dlq"; }
  std::string state() const { return prefix_ + "state"; }
  // Compacted per (schema, step) duration history (messages/td/v1/stats.proto).
  std::string stepStats() const { return prefix_ + "step-stats"; }
  // Steps' output, chunked (messages/td/v1/logs.proto).
  std::string logs() const { return prefix_ + "logs"; }
  std::string assign(std::string_view group_id) const {
    return prefix_ + "assign." + std::string(group_id);
  }
  const std::string& prefix() const { return prefix_; }

 private:
  std::string prefix_ = "td.";
};

// The compatibility key: peers with different keys never share anything. It is a hash of the
// schema name and digest, the remote cache id, and the (repository, base_ref) pairs in sorted
// order (change refs are not part of it: they decide the group within the family).
std::string compatibilityKey(const td::v1::PeerRegistered& peer);

// The partition of td.registrations / td.completions / td.joins that a key lives on. Explicit
// (not librdkafka's partitioner) so the worker knows where its reply will be written.
std::int32_t partitionFor(std::string_view key, std::int32_t partition_count);

// A change ref qualified by its repository, as grouping compares them.
std::string qualifiedRef(std::string_view repository, std::string_view ref);

// The retry policy a step gets when its registration carries none: the same built-in defaults
// as schema files (1 s backoff doubling to 1 min, 20 % jitter, retry any exit, timeout and lost,
// lost attempts not counted but capped at 3).
td::v1::RetryPolicy defaultRetryPolicy();
// The policy a step runs under: its own, or defaultRetryPolicy() when it carries none.
td::v1::RetryPolicy retryPolicyOf(const td::v1::StepSpec& step);

// Routes protobuf's own log lines (e.g. "invalid UTF-8" while parsing garbage) to the
// "protobuf" spdlog logger at debug level: bad input is reported once, by whoever rejects it.
void routeProtobufLogs();

// Readable names.
std::string_view outcomeName(td::v1::StepOutcome outcome);
std::string_view statusName(td::v1::GroupStatus status);
// How a process ended, for people: "exit 3", "killed by SIGKILL"; "no exit status" for an
// attempt that never produced one (exit_code -1 and no signal: lost, rejected, not started).
std::string describeExit(std::int32_t exit_code, std::int32_t signal);
// One line describing an event, e.g. "step_assigned step=ui attempt=1 peer=w2".
std::string describe(const td::v1::Event& event);

}  // namespace td::protocol
