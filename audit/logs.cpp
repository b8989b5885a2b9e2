#include "audit/logs.h"

#include <fmt/format.h>

#include <algorithm>

#include "protocol/protocol.h"

namespace td::audit {

bool matchesStep(const td::v1::LogChunk& chunk, const LogQuery& query) {
  return chunk.group_id() == query.group_id && chunk.step_id() == query.step_id &&
         (query.peer_id.empty() || chunk.peer_id() == query.peer_id);
}

std::optional<std::uint32_t> chooseAttempt(const std::vector<td::v1::LogChunk>& chunks,
                                           const LogQuery& query) {
  std::optional<std::uint32_t> best;
  for (const auto& c : chunks) {
    if (!matchesStep(c, query)) continue;
    if (query.attempt) {
      if (c.attempt() == *query.attempt) return c.attempt();
      continue;
    }
    if (!best || c.attempt() > *best) best = c.attempt();
  }
  return best;
}

std::vector<td::v1::LogChunk> attemptChunks(const std::vector<td::v1::LogChunk>& chunks,
                                            const LogQuery& query, std::uint32_t attempt) {
  std::vector<td::v1::LogChunk> out;
  for (const auto& c : chunks) {
    if (matchesStep(c, query) && c.attempt() == attempt) out.push_back(c);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.seq() < b.seq(); });
  return out;
}

AttemptLog::Piece AttemptLog::add(const td::v1::LogChunk& chunk) {
  Piece piece;
  if (ended_ || chunk.seq() < next_seq_) return piece;   // a duplicate, or past the end
  if (chunk.offset() > next_offset_) {
    const std::uint64_t lost = chunk.offset() - next_offset_;
    lost_ += lost;
    piece.notes.push_back(fmt::format(
        "{} bytes of output lost at byte {} (chunks {} to {} never reached td.logs: the worker "
        "dropped them)",
        lost, next_offset_, next_seq_, chunk.seq() - 1));
  }
  piece.data = chunk.data();
  next_seq_ = chunk.seq() + 1;
  next_offset_ = std::max(next_offset_, chunk.offset()) + chunk.data().size();
  if (chunk.last()) {
    ended_ = true;
    if (chunk.truncated()) {
      piece.notes.push_back(fmt::format(
          "output truncated: the step printed {} bytes; the worker shipped the first {} "
          "(its --log-cap)",
          chunk.total_bytes(), next_offset_));
    }
    piece.notes.push_back(fmt::format(
        "step {} attempt {} on {} ended: {}, {}", chunk.step_id(), chunk.attempt(),
        chunk.peer_id(), protocol::outcomeName(chunk.outcome()),
        protocol::describeExit(chunk.exit_code(), chunk.signal())));
  }
  return piece;
}

std::vector<std::string> AttemptLog::finish() const {
  if (ended_) return {};
  return {fmt::format("the attempt's last chunk is not on td.logs: the step is still running, "
                      "or its worker stopped before it ended ({} bytes so far)",
                      next_offset_)};
}

}  // namespace td::audit
