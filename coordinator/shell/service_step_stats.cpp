// Service's duration history I/O (td.step-stats): the start-up read, following the topic, and
// writing each cycle's records. See service.h ("Duration history") and docs/protocol.md.
#include <fmt/format.h>

#include <map>

#include "coordinator/shell/service.h"
#include "td/v1/stats.pb.h"

namespace td::coordinator {

td::Status Service::loadStepStats() {
  if (port_->statsReader() == nullptr) {
    log_->info("step stats off (--no-step-stats): steps are handed out in schema order");
    return {};
  }
  const auto started = clock_.now().mono;
  const auto& topic = options_.core.topics.stepStats();
  // Asks the broker to auto-create it where allowed (the embedded broker does; td-broker and
  // deploy/ create it up front).
  auto count = port_->partitionCount(topic, std::chrono::seconds(10));
  if (!count) {
    log_->warn("{} unavailable ({}): no duration history, steps are handed out in schema order "
               "(docs/operations.md)",
               topic, count.error().message());
    port_->dropStatsReader();
    return {};
  }
  stats_writable_ = true;
  std::vector<kafka::TopicPartitionOffset> partitions;
  std::map<std::int32_t, std::int64_t> high;   // partition -> high watermark at start
  for (std::int32_t p = 0; p < *count; ++p) {
    auto marks = port_->statsReader()->watermarks(topic, p, std::chrono::seconds(10));
    if (!marks) return td::unexpected(marks.error());
    if (marks->second > marks->first) high[p] = marks->second;
    partitions.push_back({topic, p, kafka::kOffsetBeginning});
  }
  TD_RETURN_IF_ERROR(port_->statsReader()->assign(partitions));
  std::uint64_t records = 0;
  int quiet_polls = 0;
  const Millis deadline = clock_.now().mono + options_.restore_timeout;
  while (!high.empty() && !stopping_.load()) {
    if (clock_.now().mono > deadline) {
      // Advisory data: carry on with what was read (the rest arrives while running).
      log_->warn("reading {} took over {} ms; {} partitions not read to their end yet", topic,
                 options_.restore_timeout.count(), high.size());
      break;
    }
    auto batch = port_->statsReader()->poll(1000, std::chrono::milliseconds(100));
    if (!batch) return td::unexpected(batch.error());
    for (const auto& msg : *batch) {
      learnStepStats(msg);
      ++records;
      if (auto it = high.find(msg.partition); it != high.end() && msg.offset + 1 >= it->second) {
        high.erase(it);
      }
    }
    // A partition whose last offsets hold no record to deliver (transaction markers, written
    // in --exactly-once mode) never reaches its mark: three seconds of silence end the wait.
    quiet_polls = batch->empty() ? quiet_polls + 1 : 0;
    if (quiet_polls >= 30) break;
  }
  log_->info("step stats: {} records of {} ({} partitions) read in {} ms; {} steps with history",
             records, topic, *count, (clock_.now().mono - started).count(),
             core_.durations().size());
  return writeCycle({});   // dead letters of bad records
}

void Service::pollStepStats() {
  LogReader* reader = port_->statsReader();
  if (reader == nullptr) return;
  auto batch = reader->poll(1000, std::chrono::milliseconds(0));
  if (!batch) {
    log_->warn("reading {} failed: {}", options_.core.topics.stepStats(),
               batch.error().message());
    return;
  }
  for (const auto& msg : *batch) learnStepStats(msg);
}

void Service::learnStepStats(const kafka::Message& msg) {
  if (msg.value.empty()) return;   // null: compaction's deletion; the estimate ages out
  td::v1::StepStats stats;
  if (msg.value.size() > protocol::kMaxRecordBytes || !stats.ParseFromString(msg.value)) {
    collect(&msg, Effects{DeadLetter{.reason = "undecodable td.step-stats record (not a "
                                               "StepStats, or over the size limit)"}});
    return;
  }
  if (std::string problem = core_.learnStepStats(msg.key, stats); !problem.empty()) {
    collect(&msg, Effects{DeadLetter{.reason = problem}});
    return;
  }
  probe_.step_stats_read.fetch_add(1);
}

void Service::produceStepStats() {
  if (stats_out_.empty()) return;
  if (!stats_writable_) {
    stats_out_.clear();
    return;
  }
  const auto& topic = options_.core.topics.stepStats();
  for (const auto& [key, stats] : stats_out_) {
    probe_.step_stats_written.fetch_add(1);
    // Not through produce(): a failure here must not fail the cycle (advisory data).
    auto status = port_->produce(
        topic, -1, key, stats.SerializeAsString(),
        [this](const td::Status& result, std::int32_t, std::int64_t) {
          if (result) return;
          if (probe_.step_stats_failures.fetch_add(1) % 100 == 0) {
            log_->warn("a td.step-stats record was not delivered: {}", result.error().message());
          }
        });
    if (!status) {
      probe_.step_stats_failures.fetch_add(1);
      log_->warn("produce to {} failed: {}", topic, status.error().message());
    }
  }
  stats_out_.clear();
}

}  // namespace td::coordinator
