// worker/log_chunker.h: where td-worker cuts a step's output into td.logs chunks, and its cap.
#include "worker/log_chunker.h"

#include <gtest/gtest.h>

namespace td::worker {
namespace {

using namespace std::chrono_literals;
const auto t0 = LogChunker::Clock::time_point{} + 1h;

TEST(LogChunker, CutsFullChunksAtOnceAndKeepsTheRestPending) {
  LogChunker c(1 << 20, 1000ms, /*max_chunk=*/4);
  auto out = c.append("abcdefghij", t0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data, "abcd");
  EXPECT_EQ(out[0].seq, 0u);
  EXPECT_EQ(out[0].offset, 0u);
  EXPECT_EQ(out[1].data, "efgh");
  EXPECT_EQ(out[1].seq, 1u);
  EXPECT_EQ(out[1].offset, 4u);
  EXPECT_FALSE(out[1].last);
  EXPECT_EQ(c.deadline(), t0 + 1000ms);
  // "ij" waits for company until the interval is over.
  EXPECT_TRUE(c.due(t0 + 999ms).empty());
  out = c.due(t0 + 1000ms);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "ij");
  EXPECT_EQ(out[0].seq, 2u);
  EXPECT_EQ(out[0].offset, 8u);
  EXPECT_EQ(c.deadline(), LogChunker::Clock::time_point::max());
  EXPECT_TRUE(c.due(t0 + 5000ms).empty());
}

TEST(LogChunker, TheIntervalCountsFromTheOldestPendingByte) {
  LogChunker c(1 << 20, 1000ms, 100);
  EXPECT_TRUE(c.append("a", t0).empty());
  EXPECT_TRUE(c.append("b", t0 + 900ms).empty());
  auto out = c.due(t0 + 1000ms);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "ab");
  EXPECT_TRUE(c.append("c", t0 + 1100ms).empty());
  EXPECT_EQ(c.deadline(), t0 + 2100ms);
}

TEST(LogChunker, FinishShipsTheRestAsTheLastChunkWithTheTotal) {
  LogChunker c(1 << 20, 1000ms, 4);
  c.append("abcdef", t0);
  const OutputChunk last = c.finish();
  EXPECT_EQ(last.data, "ef");
  EXPECT_EQ(last.seq, 1u);
  EXPECT_EQ(last.offset, 4u);
  EXPECT_TRUE(last.last);
  EXPECT_FALSE(last.truncated);
  EXPECT_EQ(last.total_bytes, 6u);
}

TEST(LogChunker, AnEmptyAttemptStillHasALastChunk) {
  LogChunker c(1 << 20, 1000ms);
  const OutputChunk last = c.finish();
  EXPECT_TRUE(last.data.empty());
  EXPECT_EQ(last.seq, 0u);
  EXPECT_TRUE(last.last);
  EXPECT_EQ(last.total_bytes, 0u);
}

TEST(LogChunker, OutputPastTheCapIsCountedButNotKept) {
  LogChunker c(/*cap=*/10, 1000ms, 4);
  auto out = c.append("0123456", t0);
  ASSERT_EQ(out.size(), 1u);
  out = c.append("789abcdef", t0);   // only "789" fits
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "4567");
  EXPECT_TRUE(c.append("more", t0).empty());
  EXPECT_TRUE(c.truncated());
  const OutputChunk last = c.finish();
  EXPECT_EQ(last.data, "89");
  EXPECT_EQ(last.offset, 8u);
  EXPECT_TRUE(last.truncated);
  EXPECT_EQ(last.total_bytes, 20u);
}

TEST(LogChunker, OutputExactlyAtTheCapIsNotTruncated) {
  LogChunker c(4, 1000ms, 4);
  c.append("abcd", t0);
  EXPECT_FALSE(c.finish().truncated);
}

}  // namespace
}  // namespace td::worker
