#include "common/heap_trim.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

namespace td {
namespace {

using namespace std::chrono_literals;
constexpr std::int64_t kMiB = 1 << 20;

TEST(HeapTrimPolicyTest, DueOnlyOnceResidentGrewPastTheMarginAndStoppedGrowing) {
  const HeapTrimPolicy policy;   // 8 MiB, or a quarter of the settled size if that is more
  EXPECT_FALSE(trimDue(policy, -1, 100 * kMiB, 100 * kMiB));   // nothing settled yet
  EXPECT_FALSE(trimDue(policy, 20 * kMiB, -1, 100 * kMiB));    // no previous look
  EXPECT_FALSE(trimDue(policy, 20 * kMiB, 28 * kMiB, -1));     // resident size unreadable
  EXPECT_FALSE(trimDue(policy, 20 * kMiB, 28 * kMiB, 28 * kMiB));   // grew 8 MiB: not past it
  EXPECT_TRUE(trimDue(policy, 20 * kMiB, 28 * kMiB, 28 * kMiB + 1));
  EXPECT_FALSE(trimDue(policy, 20 * kMiB, 20 * kMiB, 40 * kMiB));   // still growing: later
  EXPECT_TRUE(trimDue(policy, 20 * kMiB, 40 * kMiB - kMiB + 1, 40 * kMiB));
  EXPECT_FALSE(trimDue(policy, 20 * kMiB, 40 * kMiB - kMiB, 40 * kMiB));
  EXPECT_TRUE(trimDue(policy, 20 * kMiB, 45 * kMiB, 40 * kMiB));    // shrinking counts as quiet
  EXPECT_FALSE(trimDue(policy, 100 * kMiB, 125 * kMiB, 125 * kMiB));  // a quarter of 100 MiB
  EXPECT_TRUE(trimDue(policy, 100 * kMiB, 126 * kMiB, 126 * kMiB));
  EXPECT_FALSE(trimDue(policy, 100 * kMiB, 50 * kMiB, 50 * kMiB));   // below the settled size
}

// A burst of small allocations freed below one that stays: glibc cannot shrink the arena
// from its top, so the burst stays resident until the trimmer gives it back.
TEST(HeapTrimmerTest, GivesABurstBackAndThenStaysQuiet) {
  HeapTrimmer trimmer;
  Millis now{1'000'000};
  EXPECT_FALSE(trimmer.maybeTrim(now));   // the first look only learns the settled size
  const std::int64_t settled = residentBytes();
  ASSERT_GT(settled, 0);

  constexpr std::size_t kChunk = 1024;   // far below the mmap threshold: from the arena
  constexpr std::size_t kChunks = 96 * 1024;   // 96 MiB
  std::vector<std::unique_ptr<char[]>> burst;
  burst.reserve(kChunks);
  for (std::size_t i = 0; i < kChunks; ++i) {
    burst.emplace_back(new char[kChunk]);
    std::memset(burst.back().get(), 1, kChunk);
  }
  auto pin = std::make_unique<char[]>(kChunk);   // above the burst: the top stays in use
  burst.clear();
  burst.shrink_to_fit();
  const std::int64_t after_burst = residentBytes();
  ASSERT_GT(after_burst - settled, 64 * kMiB) << "the burst did not stay resident";

  EXPECT_FALSE(trimmer.maybeTrim(now + 499ms));    // not time to look yet
  EXPECT_FALSE(trimmer.maybeTrim(now + 500ms));    // grew since the last look: not over yet
  const auto trimmed = trimmer.maybeTrim(now + 1000ms);   // stopped growing
  ASSERT_TRUE(trimmed);
  EXPECT_GE(trimmed->resident_before, after_burst - kMiB);
  EXPECT_LT(trimmed->resident_after, trimmed->resident_before - 64 * kMiB);
  EXPECT_LT(residentBytes(), settled + 16 * kMiB);

  EXPECT_FALSE(trimmer.maybeTrim(now + 1500ms));   // nothing grew since: no trim
  EXPECT_FALSE(trimmer.maybeTrim(now + 2000ms));
}

}  // namespace
}  // namespace td
