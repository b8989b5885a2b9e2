// audit/logs.h: which attempt `td-audit logs` prints and how it puts the chunks back together.
#include "audit/logs.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace td::audit {
namespace {

td::v1::LogChunk chunk(const std::string& step, std::uint32_t attempt, std::uint64_t seq,
                       std::uint64_t offset, const std::string& data, bool last = false,
                       const std::string& peer = "w1", const std::string& group = "g") {
  td::v1::LogChunk c;
  c.set_group_id(group);
  c.set_step_id(step);
  c.set_attempt(attempt);
  c.set_peer_id(peer);
  c.set_seq(seq);
  c.set_offset(offset);
  c.set_data(data);
  c.set_last(last);
  if (last) {
    c.set_outcome(td::v1::STEP_OUTCOME_FAILED);
    c.set_exit_code(3);
    c.set_total_bytes(offset + data.size());
  }
  return c;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST(ChooseAttempt, TheLastAttemptOfTheStepUnlessOneIsAskedFor) {
  const std::vector<td::v1::LogChunk> chunks{
      chunk("build", 2, 0, 0, "b2"), chunk("build", 1, 0, 0, "b1"), chunk("test", 5, 0, 0, "t"),
      chunk("build", 9, 0, 0, "other group", false, "w1", "h")};
  LogQuery q{.group_id = "g", .step_id = "build"};
  EXPECT_EQ(chooseAttempt(chunks, q), 2u);
  q.attempt = 1;
  EXPECT_EQ(chooseAttempt(chunks, q), 1u);
  q.attempt = 3;
  EXPECT_EQ(chooseAttempt(chunks, q), std::nullopt);
  EXPECT_EQ(chooseAttempt(chunks, LogQuery{.group_id = "g", .step_id = "lint"}), std::nullopt);
  EXPECT_EQ(chooseAttempt(chunks, LogQuery{.group_id = "g", .step_id = "build", .peer_id = "w2"}),
            std::nullopt);
}

TEST(AttemptLog, PutsChunksBackInSeqOrderAndSaysHowTheAttemptEnded) {
  std::vector<td::v1::LogChunk> chunks{chunk("build", 1, 2, 6, "ghi", true),
                                       chunk("build", 1, 0, 0, "abc"),
                                       chunk("build", 2, 0, 0, "other attempt"),
                                       chunk("build", 1, 1, 3, "def")};
  const LogQuery q{.group_id = "g", .step_id = "build"};
  AttemptLog log;
  std::string out;
  std::vector<std::string> notes;
  for (const auto& c : attemptChunks(chunks, q, 1)) {
    auto piece = log.add(c);
    out += piece.data;
    notes.insert(notes.end(), piece.notes.begin(), piece.notes.end());
  }
  EXPECT_EQ(out, "abcdefghi");
  EXPECT_TRUE(log.ended());
  EXPECT_EQ(log.lostBytes(), 0u);
  EXPECT_EQ(join(notes), "step build attempt 1 on w1 ended: failed, exit 3\n");
  EXPECT_TRUE(log.finish().empty());
}

TEST(AttemptLog, SaysHowManyBytesOfDroppedChunksAreMissing) {
  AttemptLog log;
  EXPECT_EQ(log.add(chunk("s", 1, 0, 0, "abc")).data, "abc");
  auto piece = log.add(chunk("s", 1, 3, 100, "xyz"));   // chunks 1 and 2 (97 bytes) dropped
  EXPECT_EQ(piece.data, "xyz");
  EXPECT_EQ(join(piece.notes),
            "97 bytes of output lost at byte 3 (chunks 1 to 2 never reached td.logs: the worker "
            "dropped them)\n");
  EXPECT_EQ(log.lostBytes(), 97u);
  EXPECT_EQ(log.bytes(), 103u);
}

TEST(AttemptLog, SkipsDuplicatesAndWhatComesAfterTheEnd) {
  AttemptLog log;
  log.add(chunk("s", 1, 0, 0, "abc"));
  EXPECT_TRUE(log.add(chunk("s", 1, 0, 0, "abc")).data.empty());
  log.add(chunk("s", 1, 1, 3, "d", true));
  EXPECT_TRUE(log.add(chunk("s", 1, 2, 4, "late")).data.empty());
  EXPECT_EQ(log.bytes(), 4u);
}

TEST(AttemptLog, SaysTheCapTruncatedTheOutput) {
  AttemptLog log;
  auto last = chunk("s", 1, 0, 0, "abcd", true);
  last.set_truncated(true);
  last.set_total_bytes(1000);
  const auto piece = log.add(last);
  EXPECT_NE(join(piece.notes).find("output truncated: the step printed 1000 bytes; the worker "
                                   "shipped the first 4 (its --log-cap)"),
            std::string::npos)
      << join(piece.notes);
}

TEST(AttemptLog, AMissingLastChunkIsSaid) {
  AttemptLog log;
  log.add(chunk("s", 1, 0, 0, "abc"));
  EXPECT_FALSE(log.ended());
  EXPECT_NE(join(log.finish()).find("the attempt's last chunk is not on td.logs"),
            std::string::npos);
}

}  // namespace
}  // namespace td::audit
