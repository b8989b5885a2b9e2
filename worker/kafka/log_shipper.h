// Ships the running step's output to td.logs (messages/td/v1/logs.proto), through a producer of
// its own (compression.type=lz4, a bounded queue) so the worker's protocol records keep their
// settings and are never queued behind output. Never blocks the worker: a chunk that does not
// fit the queue, or that the broker does not take, is dropped and counted (the reader sees the
// gap: seq and offset jump). Thread safety: the worker's event loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/logger.h>

#include "common/result.h"
#include "kafka/producer.h"
#include "kafka/types.h"
#include "td/v1/logs.pb.h"
#include "worker/log_chunker.h"

namespace td::worker {

class LogShipper {
 public:
  // The worker's client settings (kafka/client_settings.h) with lz4 compression, linger.ms=50
  // and a bounded queue; `overrides` (the worker's -X) are applied last. REQUIRES: cap > 0.
  static td::Result<std::unique_ptr<LogShipper>> create(const std::string& bootstrap,
                                                        const std::string& client_id,
                                                        const kafka::Properties& overrides,
                                                        std::string topic, std::uint64_t cap);
  ~LogShipper();

  // A new attempt's output follows (ends any attempt not ended, without a last chunk).
  void begin(const std::string& group_id, const std::string& step_id, std::uint32_t attempt,
             const std::string& peer_id, const std::string& session_id);
  // The attempt's output, as read from the step (a no-op outside an attempt).
  void output(std::string_view data);
  // Ships pending output that waited its interval; serves delivery reports. Call often.
  void tick();
  // When tick() next has work (the chunker's deadline; max() when none).
  std::chrono::steady_clock::time_point deadline() const;
  // The attempt ended: ships the rest and the last chunk with how it ended.
  void end(td::v1::StepOutcome outcome, int exit_code, int signal);
  // Waits up to `timeout` for what is queued (before the worker exits); logs what is left.
  void flush(std::chrono::milliseconds timeout);

 private:
  LogShipper(std::unique_ptr<kafka::Producer> producer, std::string topic, std::uint64_t cap);
  void ship(const OutputChunk& chunk, const td::v1::LogChunk* last_fields = nullptr);
  void dropped(std::uint64_t bytes, const std::string& why);

  std::unique_ptr<kafka::Producer> producer_;
  std::string topic_;
  std::uint64_t cap_;
  td::v1::LogChunk header_;  // group, step, attempt, peer, session of the attempt
  std::optional<LogChunker> chunker_;
  std::uint64_t dropped_chunks_ = 0;
  std::uint64_t dropped_bytes_ = 0;
  std::chrono::steady_clock::time_point last_warning_{};
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace td::worker
