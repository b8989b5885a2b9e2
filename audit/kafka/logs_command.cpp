#include "audit/kafka/logs_command.h"

#include <fmt/format.h>

#include <cstdio>
#include <optional>
#include <vector>

#include "audit/kafka/topic_reader.h"
#include "common/log.h"
#include "kafka/kafka.h"

namespace td::audit {

namespace {

void note(const std::string& line) { std::fputs(("td-audit: " + line + "\n").c_str(), stderr); }

void write(const AttemptLog::Piece& piece) {
  if (!piece.data.empty()) std::fwrite(piece.data.data(), 1, piece.data.size(), stdout);
  if (!piece.notes.empty()) std::fflush(stdout);  // so the note comes after the bytes before it
  for (const auto& n : piece.notes) note(n);
}

std::optional<td::v1::LogChunk> parse(const td::kafka::Message& m, std::size_t& unparsable) {
  td::v1::LogChunk chunk;
  if (!chunk.ParseFromString(m.value)) {
    ++unparsable;
    td::log::get("audit")->warn("{}[{}]@{}: not a LogChunk; skipped", m.topic, m.partition,
                                m.offset);
    return std::nullopt;
  }
  return chunk;
}

std::string describe(const LogQuery& q, std::optional<std::uint32_t> attempt) {
  std::string out = "step " + q.step_id;
  if (attempt) out += fmt::format(" attempt {}", *attempt);
  if (!q.peer_id.empty()) out += " on peer " + q.peer_id;
  return out + " of group " + q.group_id;
}

}  // namespace

int runLogs(const LogsCommand& command, const std::atomic<bool>& stop) {
  const LogQuery& q = command.query;
  auto reader = TopicReader::open(command.bootstrap, command.props, command.topic,
                                  std::chrono::seconds(10));
  if (!reader) {
    if (reader.error().code() == td::kafka::Errc::kUnknownTopicOrPart) {
      note(fmt::format("no output of {} on {}: the topic does not exist", describe(q, q.attempt),
                       command.topic));
      return kLogsNone;
    }
    note(fmt::format("cannot read {} at {}: {}", command.topic, command.bootstrap,
                     reader.error().message()));
    return kLogsUnreachable;
  }
  std::size_t unparsable = 0;
  std::vector<td::v1::LogChunk> chunks;
  auto read = (*reader)->readToEnd([&](const td::kafka::Message& m) {
    if (m.key != q.group_id) return;  // keyed by group id: no need to decode the others
    if (auto c = parse(m, unparsable); c && matchesStep(*c, q)) chunks.push_back(std::move(*c));
  });
  if (!read) {
    note(fmt::format("reading {} at {}: {}", command.topic, command.bootstrap,
                     read.error().message()));
    return kLogsUnreachable;
  }
  std::optional<std::uint32_t> attempt = chooseAttempt(chunks, q);
  AttemptLog log;
  if (attempt) {
    for (const auto& c : attemptChunks(chunks, q, *attempt)) write(log.add(c));
  }
  if (!command.follow || log.ended()) {
    std::fflush(stdout);
    if (!attempt) {
      note(fmt::format("no output of {} on {} (chunks are kept for the topic's retention.ms; a "
                       "worker with --log-cap 0 ships none)",
                       describe(q, q.attempt), command.topic));
      return kLogsNone;
    }
    for (const auto& n : log.finish()) note(n);
    return kLogsFound;
  }
  // Follow: the attempt's further chunks arrive in order on the group's partition.
  if (!attempt) note(fmt::format("waiting for output of {}", describe(q, q.attempt)));
  while (!stop && !log.ended()) {
    auto polled = (*reader)->poll(std::chrono::milliseconds(200), [&](const td::kafka::Message& m) {
      if (m.key != q.group_id || log.ended()) return;
      auto c = parse(m, unparsable);
      if (!c || !matchesStep(*c, q)) return;
      if (!attempt) {
        if (q.attempt && c->attempt() != *q.attempt) return;
        attempt = c->attempt();
      }
      if (c->attempt() != *attempt) return;
      write(log.add(*c));
      std::fflush(stdout);
    });
    if (!polled) {
      note(fmt::format("reading {} at {}: {}", command.topic, command.bootstrap,
                       polled.error().message()));
      return kLogsUnreachable;
    }
  }
  std::fflush(stdout);
  if (log.ended()) return kLogsFound;
  for (const auto& n : log.finish()) note(n);
  return kLogsInterrupted;
}

}  // namespace td::audit
