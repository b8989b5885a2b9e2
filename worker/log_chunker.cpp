#include "worker/log_chunker.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace td::worker {

LogChunker::LogChunker(std::uint64_t cap, std::chrono::milliseconds interval,
                       std::size_t max_chunk)
    : cap_(cap), interval_(interval), max_chunk_(max_chunk) {
  assert(cap > 0 && max_chunk > 0);
}

OutputChunk LogChunker::cut(std::size_t size) {
  OutputChunk c;
  c.seq = seq_++;
  c.offset = offset_;
  c.data = pending_.substr(0, size);
  pending_.erase(0, size);
  offset_ += size;
  return c;
}

std::vector<OutputChunk> LogChunker::append(std::string_view data, Clock::time_point now) {
  total_ += data.size();
  const std::uint64_t room = cap_ - kept_;
  if (data.size() > room) data = data.substr(0, static_cast<std::size_t>(room));
  kept_ += data.size();
  std::vector<OutputChunk> out;
  if (data.empty()) return out;
  if (pending_.empty()) pending_since_ = now;
  pending_.append(data);
  while (pending_.size() >= max_chunk_) out.push_back(cut(max_chunk_));
  if (pending_.empty()) pending_since_ = Clock::time_point::max();
  return out;
}

std::vector<OutputChunk> LogChunker::due(Clock::time_point now) {
  std::vector<OutputChunk> out;
  if (pending_.empty() || now < deadline()) return out;
  out.push_back(cut(pending_.size()));
  pending_since_ = Clock::time_point::max();
  return out;
}

LogChunker::Clock::time_point LogChunker::deadline() const {
  if (pending_.empty()) return Clock::time_point::max();
  return pending_since_ + interval_;
}

OutputChunk LogChunker::finish() {
  OutputChunk c = cut(pending_.size());
  pending_since_ = Clock::time_point::max();
  c.last = true;
  c.truncated = truncated();
  c.total_bytes = total_;
  return c;
}

}  // namespace td::worker
