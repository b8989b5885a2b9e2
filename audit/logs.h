// The pure half of `td-audit logs`: which attempt of a step to print, and its chunks (td.logs,
// messages/td/v1/logs.proto) put back together in order, with what is missing said. No Kafka.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "td/v1/logs.pb.h"

namespace td::audit {

// What `td-audit logs GROUP STEP [--attempt N] [--peer P]` asks for.
struct LogQuery {
  std::string group_id;
  std::string step_id;
  std::optional<std::uint32_t> attempt;  // none: the last attempt found
  std::string peer_id;                   // empty: any peer
};

// Whether `chunk` is of the query's group, step and peer (any attempt).
bool matchesStep(const td::v1::LogChunk& chunk, const LogQuery& query);

// The attempt to print among `chunks` (any order, any steps): the query's attempt if some chunk
// of it matches, else (no --attempt) the highest attempt of the step; nullopt when none matches.
std::optional<std::uint32_t> chooseAttempt(const std::vector<td::v1::LogChunk>& chunks,
                                           const LogQuery& query);

// One attempt's output put back together, chunk by chunk, in seq order (one attempt's chunks
// share a partition, so they arrive in that order; readAll sorts first). Each add() says what
// to write: the chunk's bytes, as printed, and notes for stderr about bytes that are missing.
class AttemptLog {
 public:
  struct Piece {
    std::string data;                // to stdout, exactly
    std::vector<std::string> notes;  // to stderr, one line each (no '\n')
  };
  // A chunk of the chosen attempt; a seq already seen (a duplicate) gives nothing.
  Piece add(const td::v1::LogChunk& chunk);
  // Notes once nothing more will be read: the last chunk missing (the step still running, or
  // its worker stopped before shipping it).
  std::vector<std::string> finish() const;

  bool ended() const { return ended_; }
  std::uint64_t bytes() const { return next_offset_; }  // offset after what was written
  std::uint64_t lostBytes() const { return lost_; }

 private:
  std::uint64_t next_seq_ = 0;
  std::uint64_t next_offset_ = 0;
  std::uint64_t lost_ = 0;
  bool ended_ = false;
};

// The chunks of `attempt` of the query's step, by seq (duplicates kept: AttemptLog skips them).
std::vector<td::v1::LogChunk> attemptChunks(const std::vector<td::v1::LogChunk>& chunks,
                                            const LogQuery& query, std::uint32_t attempt);

}  // namespace td::audit
