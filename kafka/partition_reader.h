// A consumer outside any consumer group: reads chosen partitions from chosen offsets.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "kafka/error.h"
#include "kafka/types.h"

namespace td::kafka {

// Never subscribes and never commits. librdkafka needs a group.id to assign partitions, so a
// unique "td-reader-..." id is generated unless `props` sets one; no group is ever joined.
// Thread safety: none; use from one thread. Not copyable or movable.
class PartitionReader {
 public:
  // Defaults set before `props`: enable.auto.commit=false, enable.auto.offset.store=false,
  // auto.offset.reset=earliest (used when an absolute offset is out of range).
  // `hot_window` > 0 adds a hot twin (heat()). Errors: Errc::kInvalidArg for an
  // unknown/invalid property; td::Errc::kIo if no pipe.
  static td::Result<std::unique_ptr<PartitionReader>> create(
      const Properties& props, std::chrono::milliseconds hot_window = {});

  // A record is expected soon (the caller just asked for one): for the hot window, a second
  // client with fetch.wait.max.ms=0 fetches the assigned partitions too, from this reader's
  // position, so the record arrives within a fetch round trip instead of after the main
  // client's empty-fetch wait (docs/performance.md, "Hot and cold fetching"). Each record is
  // still handed out once and in order. No-op without a hot window, and for a partition
  // nothing was read from yet and not assigned at an absolute offset.
  void heat();
  // Records the hot twin handed out first (the main client's copies were dropped): 0 without
  // one. For tests and benchmarks.
  std::uint64_t hotRecords() const;
  ~PartitionReader();
  PartitionReader(const PartitionReader&) = delete;
  PartitionReader& operator=(const PartitionReader&) = delete;

  // Replaces the assignment. Each offset is absolute (>= 0) or kOffsetBeginning / kOffsetEnd.
  // A topic that does not exist yet is fine: reading starts once it appears (metadata is
  // refreshed every topic.metadata.refresh.interval.ms). Fetches the topics' metadata first
  // (up to 500 ms each) so reading starts at once. Errors: kInvalidArg, kFatal;
  // kTopicAuthorizationFailed for a topic this principal may not describe.
  td::Status assign(const std::vector<TopicPartitionOffset>& partitions);
  // Adds one partition to the current assignment, keeping the others' positions.
  td::Status add(const TopicPartitionOffset& partition);

  // Returns up to `max` messages, waiting at most `timeout` for the first. Non-fatal errors,
  // including "unknown topic or partition" for a topic not created yet, are logged
  // rate-limited and skipped. Errors: kFatal; an access-denied error (kafka/error.h: failed
  // authentication, a topic this principal may not read), returned at once.
  td::Result<std::vector<Message>> poll(std::size_t max, std::chrono::milliseconds timeout);

  // (low, high) watermarks of a partition from its leader: high is the offset the next
  // record will get. Asks again until `timeout` while the leader moves or the topic is still
  // being created (Apache Kafka says so for a moment after either). Errors:
  // kUnknownTopicOrPart, kTimedOut, kTransport; at once, kTopicAuthorizationFailed (no
  // DESCRIBE on the topic).
  td::Result<std::pair<std::int64_t, std::int64_t>> watermarks(const std::string& topic,
                                                               std::int32_t partition,
                                                               std::chrono::milliseconds timeout);

  // The offset committed for a partition by this reader's group.id (set one in `props` to ask
  // about a consumer group's commits; the reader never joins it), from the group's
  // coordinator: -1 if none. An OffsetFetch with read_committed waits while a transaction
  // holds offsets (KIP-447), until `timeout`. Errors: kTimedOut, kTransport, the broker's.
  td::Result<std::int64_t> committed(const std::string& topic, std::int32_t partition,
                                     std::chrono::milliseconds timeout);

  // The next offset this reader will hand out from a partition it reads: past the last
  // record returned, and past what read_committed never returns (transaction markers, aborted
  // records). -1 before anything was read from it. Reading a log "up to its high watermark"
  // ends when this reaches it: a transactional log's last offset is a marker, never a record.
  std::int64_t position(const std::string& topic, std::int32_t partition) const;

  // A non-blocking fd (read end of a pipe) that becomes readable when messages or events are
  // ready, for a poll(2)/epoll loop that also waits on other fds. Clearing it: poll() drains it
  // on entry, and re-arms it itself when it returned `max` messages (more may be waiting), so
  // the rule is simply "when readable, call poll()". Spurious wake-ups are possible (poll()
  // then returns nothing). Do not read or close it. Valid for the reader's lifetime.
  int eventFd() const;

  struct Impl;

 private:
  explicit PartitionReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace td::kafka
