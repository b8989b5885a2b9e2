// Hot fetching for a reader whose broker holds empty fetches (docs/performance.md, "Hot and
// cold fetching"). The embedded broker answers a fetch that finds nothing only after the
// client's whole fetch.wait.max.ms, so a record written meanwhile waits for that fetch to end:
// a short wait costs a busy fetch loop all the time, a long one costs latency. A HotTwin is a
// second client with fetch.wait.max.ms=0 beside a reader's own: it holds the same partitions,
// paused, and heat() starts it from the reader's position for a short window, when the reader
// expects a record soon (a worker that just reported a step, a coordinator whose input flows).
// The owner hands out each record once, by offset (NextOffsets), whichever client fetched it.
//
// Thread safety: none; the owner's thread. Not copyable or movable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "kafka/internal/rdkafka.h"
#include "kafka/internal/wake_pipe.h"
#include "kafka/types.h"

namespace td::kafka::internal {

// The next offset to hand out per partition, learnt from the records handed out (and from
// absolute offsets assigned): the one rule that keeps two clients' records in order and once.
class NextOffsets {
 public:
  // True if `m` is new: at or past the partition's next offset (or the first seen of it).
  // Then the next offset moves past it.
  bool accept(const Message& m);
  void set(const std::string& topic, std::int32_t partition, std::int64_t next);
  void erase(const std::string& topic, std::int32_t partition);
  void clear() { next_.clear(); }
  const std::map<std::pair<std::string, std::int32_t>, std::int64_t>& all() const {
    return next_;
  }

 private:
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> next_;
};

class HotTwin {
 public:
  // `props`: the owner's client properties (fetch.wait.max.ms is set to 0 over them, and a
  // placeholder group.id of its own); `pipe`: the owner's wake-up pipe, signalled when the
  // twin has records (it must outlive the twin). Hot for `window` after each heat().
  static td::Result<std::unique_ptr<HotTwin>> create(const Properties& props,
                                                     const WakePipe& pipe,
                                                     std::chrono::milliseconds window);
  ~HotTwin();
  HotTwin(const HotTwin&) = delete;
  HotTwin& operator=(const HotTwin&) = delete;

  // Mirrors the owner's assignment: these partitions are held, paused.
  void add(const std::vector<TopicPartitionOffset>& partitions);
  void remove(const std::vector<TopicPartitionOffset>& partitions);
  void clear();
  // Fetches every held partition whose next offset is known, from there, until the window
  // passes. A later heat() extends the window and starts the partitions whose next offset
  // became known since; those started already go on where they are.
  void heat(const NextOffsets& next);
  // Pauses the twin once its window has passed. Call before each read.
  void coolIfDue();
  // Takes the twin's records (up to `max`, without waiting), only those of partitions it was
  // started on by heat(): each such partition's records come in log order from the owner's
  // next offset of that moment, so NextOffsets::accept keeps the merged stream whole. Errors
  // as internal::consume.
  td::Result<std::vector<Message>> take(std::size_t max, PeriodicLog& limiter,
                                        const std::vector<rd_kafka_resp_err_t>& quiet);
  bool hot() const { return hot_; }
  rd_kafka_t* handle() const { return rk_.get(); }

 private:
  HotTwin() = default;
  HandlePtr rk_;
  QueuePtr queue_;
  std::chrono::milliseconds window_{0};
  std::vector<std::pair<std::string, std::int32_t>> held_;
  std::vector<std::pair<std::string, std::int32_t>> started_;   // sought to a next offset
  bool hot_ = false;
  std::chrono::steady_clock::time_point hot_until_{};
};

// A reader's hot fetching, shared by PartitionReader and GroupConsumer: the assignment and
// the next offsets it must know to start a twin, the decision whether to have one (made at the
// first heat(), from the owner's cluster id: only the embedded broker holds empty fetches),
// and the twin itself.
class HotReading {
 public:
  HotReading() = default;
  HotReading(std::chrono::milliseconds window, Properties props)
      : window_(window), props_(std::move(props)) {}

  bool enabled() const { return window_.count() > 0 && mode_ != Mode::kOff; }
  HotTwin* twin() const { return twin_.get(); }
  NextOffsets& next() { return next_; }

  // The owner's assignment changed. Absolute offsets are where reading starts.
  void assigned(const std::vector<TopicPartitionOffset>& partitions);
  void revoked(const std::vector<TopicPartitionOffset>& partitions);
  void cleared();
  // Records handed out by the owner alone (no twin yet): where a twin would start.
  void handedOut(const std::vector<Message>& batch);
  // Heats the twin, first making it if the owner's broker is the embedded one. `pipe` gives
  // the owner's wake-up pipe (made on first use; null if it cannot be).
  void heat(rd_kafka_t* owner, const std::function<const WakePipe*()>& pipe);
  // The owner's position, or past what the twin handed out if that is further.
  std::int64_t position(const std::string& topic, std::int32_t partition,
                        std::int64_t owner_position) const;
  // Drops the twin (its queue signals the owner's pipe): before the pipe closes.
  void stop() { twin_.reset(); }
  // Records the twin handed out first.
  std::uint64_t hotRecords() const { return hot_records_; }
  void countHot(std::size_t n) { hot_records_ += n; }

 private:
  enum class Mode { kUndecided, kOff, kOn };
  std::chrono::milliseconds window_{0};
  Properties props_;
  Mode mode_ = Mode::kUndecided;
  std::unique_ptr<HotTwin> twin_;
  std::vector<TopicPartitionOffset> assigned_;
  NextOffsets next_;
  std::uint64_t hot_records_ = 0;
};

// Reads from `owner` and `hot`'s twin, each record once and in order per partition, waiting up
// to `timeout` for the first on `pipe` (which both clients' queues signal). Stopped at `max`,
// it signals the pipe, as more may be queued. Errors as consume().
td::Result<std::vector<Message>> readBoth(rd_kafka_t* owner, HotReading& hot, const WakePipe& pipe,
                                          std::size_t max, std::chrono::milliseconds timeout,
                                          PeriodicLog& limiter,
                                          const std::vector<rd_kafka_resp_err_t>& quiet);

}  // namespace td::kafka::internal
