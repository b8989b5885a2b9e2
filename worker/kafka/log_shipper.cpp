#include "worker/kafka/log_shipper.h"

#include <fmt/format.h>

#include <utility>

#include "common/log.h"
#include "kafka/client_settings.h"

namespace td::worker {

namespace {

// How long output waits before it is shipped without filling a chunk: `td-audit logs --follow`
// sees a quiet step's lines within about this.
constexpr std::chrono::milliseconds kInterval{1000};

std::int64_t wallMsNow() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

td::Result<std::unique_ptr<LogShipper>> LogShipper::create(const std::string& bootstrap,
                                                           const std::string& client_id,
                                                           const kafka::Properties& overrides,
                                                           std::string topic, std::uint64_t cap) {
  // lz4: cheap on the worker's CPU and well compressed for text. linger.ms=50 (not the 1 ms of
  // the worker's protocol records) lets a chatty step's chunks share a batch. The queue holds
  // at most 64 MiB / 2048 chunks: beyond that chunks are dropped, never waited for.
  // Idempotence (Producer's default) keeps one attempt's chunks in order through retries.
  kafka::Properties ours{{"compression.type", "lz4"},
                         {"linger.ms", "50"},
                         {"queue.buffering.max.kbytes", "65536"},
                         {"queue.buffering.max.messages", "2048"}};
  ours.insert(ours.end(), overrides.begin(), overrides.end());
  auto producer = kafka::Producer::create(kafka::producerSettings(bootstrap, client_id, ours));
  if (!producer) return td::unexpected(producer.error());
  return std::unique_ptr<LogShipper>(new LogShipper(std::move(*producer), std::move(topic), cap));
}

LogShipper::LogShipper(std::unique_ptr<kafka::Producer> producer, std::string topic,
                       std::uint64_t cap)
    : producer_(std::move(producer)),
      topic_(std::move(topic)),
      cap_(cap),
      log_(td::log::get("worker")) {}

LogShipper::~LogShipper() {
  // Its purge runs delivery callbacks that touch this object: before the members go.
  producer_.reset();
}

void LogShipper::begin(const std::string& group_id, const std::string& step_id,
                       std::uint32_t attempt, const std::string& peer_id,
                       const std::string& session_id) {
  header_.Clear();
  header_.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  header_.set_group_id(group_id);
  header_.set_step_id(step_id);
  header_.set_attempt(attempt);
  header_.set_peer_id(peer_id);
  header_.set_session_id(session_id);
  chunker_.emplace(cap_, kInterval);
}

void LogShipper::output(std::string_view data) {
  if (!chunker_) return;
  for (const auto& c : chunker_->append(data, std::chrono::steady_clock::now())) ship(c);
}

void LogShipper::tick() {
  if (chunker_) {
    for (const auto& c : chunker_->due(std::chrono::steady_clock::now())) ship(c);
  }
  producer_->poll(0);
}

std::chrono::steady_clock::time_point LogShipper::deadline() const {
  return chunker_ ? chunker_->deadline() : std::chrono::steady_clock::time_point::max();
}

void LogShipper::end(td::v1::StepOutcome outcome, int exit_code, int signal) {
  if (!chunker_) return;
  td::v1::LogChunk last;
  last.set_outcome(outcome);
  last.set_exit_code(exit_code);
  last.set_signal(signal);
  const OutputChunk c = chunker_->finish();
  if (c.truncated) {
    log_->warn("step={} attempt={} printed {} bytes; only the first {} were shipped to {} "
               "(--log-cap)",
               header_.step_id(), header_.attempt(), c.total_bytes, cap_, topic_);
  }
  ship(c, &last);
  chunker_.reset();
  producer_->poll(0);
}

void LogShipper::ship(const OutputChunk& chunk, const td::v1::LogChunk* last_fields) {
  td::v1::LogChunk record = header_;
  if (last_fields != nullptr) record.MergeFrom(*last_fields);
  record.set_seq(chunk.seq);
  record.set_offset(chunk.offset);
  record.set_data(chunk.data);
  record.set_last(chunk.last);
  record.set_truncated(chunk.truncated);
  record.set_total_bytes(chunk.total_bytes);
  record.set_timestamp_ms(wallMsNow());
  const std::uint64_t size = chunk.data.size();
  auto status = producer_->produce(
      topic_, -1, header_.group_id(), record.SerializeAsString(),
      [this, size](const td::Status& result, std::int32_t, std::int64_t) {
        if (!result) dropped(size, "the broker did not take it: " + result.error().message());
      },
      /*block_ms=*/0);
  if (!status) dropped(size, status.error().message());
}

void LogShipper::dropped(std::uint64_t bytes, const std::string& why) {
  ++dropped_chunks_;
  dropped_bytes_ += bytes;
  // At most one warning every 10 s; each says the totals so far.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ < std::chrono::seconds(10)) return;
  last_warning_ = now;
  log_->warn("dropped {} chunk(s) ({} bytes) of step output meant for {} so far ({}); "
             "td-audit logs reports the gap",
             dropped_chunks_, dropped_bytes_, topic_, why);
}

void LogShipper::flush(std::chrono::milliseconds timeout) {
  if (auto flushed = producer_->flush(timeout); !flushed) {
    log_->warn("step output not yet on {} after {} ms: {}", topic_, timeout.count(),
               flushed.error().message());
  }
  if (dropped_chunks_ > 0) {
    log_->warn("dropped {} chunk(s) ({} bytes) of step output meant for {} in all",
               dropped_chunks_, dropped_bytes_, topic_);
  }
}

}  // namespace td::worker
