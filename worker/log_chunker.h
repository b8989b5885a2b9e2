// Cuts one step attempt's output into the chunks td-worker ships to td.logs (pure: no Kafka,
// no clock of its own). A chunk is cut when kMaxChunkBytes are pending or the oldest pending
// byte has waited `interval`; output past `cap` bytes is counted but not kept.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace td::worker {

struct OutputChunk {
  std::uint64_t seq = 0;     // 0, 1, 2, ...
  std::uint64_t offset = 0;  // bytes of output before `data`
  std::string data;
  bool last = false;         // from finish()
  bool truncated = false;    // on the last chunk: output past the cap was not kept
  std::uint64_t total_bytes = 0;  // on the last chunk: every byte appended
};

class LogChunker {
 public:
  using Clock = std::chrono::steady_clock;
  // 64 KiB: well under Kafka's default 1 MB message.max.bytes, even uncompressed.
  static constexpr std::size_t kMaxChunkBytes = 64 * 1024;

  // REQUIRES: cap > 0, max_chunk > 0.
  LogChunker(std::uint64_t cap, std::chrono::milliseconds interval,
             std::size_t max_chunk = kMaxChunkBytes);

  // Takes output; returns the chunks that are full (each exactly max_chunk bytes).
  std::vector<OutputChunk> append(std::string_view data, Clock::time_point now);
  // The pending bytes as one chunk if they have waited `interval` by `now`; else nothing.
  std::vector<OutputChunk> due(Clock::time_point now);
  // When due() next has something: time_point::max() when nothing is pending.
  Clock::time_point deadline() const;
  // The rest as the last chunk (possibly empty), with truncated and total_bytes set.
  OutputChunk finish();

  std::uint64_t totalBytes() const { return total_; }
  bool truncated() const { return total_ > kept_; }

 private:
  OutputChunk cut(std::size_t size);

  std::uint64_t cap_;
  std::chrono::milliseconds interval_;
  std::size_t max_chunk_;
  std::uint64_t seq_ = 0;
  std::uint64_t offset_ = 0;  // bytes already cut into chunks
  std::uint64_t kept_ = 0;    // bytes kept (<= cap_)
  std::uint64_t total_ = 0;   // bytes appended
  std::string pending_;
  Clock::time_point pending_since_ = Clock::time_point::max();
};

}  // namespace td::worker
