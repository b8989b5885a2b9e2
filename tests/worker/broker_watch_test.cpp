// BrokerWatch (worker/broker_watch.h): when td-worker gives up on a silent broker (exit 3) and
// how often it says why. Time is passed in; nothing sleeps.
#include "worker/broker_watch.h"

#include <gtest/gtest.h>

namespace td::worker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = BrokerWatch::TimePoint;

const TimePoint kStart = TimePoint() + std::chrono::hours(1);

TEST(BrokerWatch, ExpiresOnlyAfterTheBoundOfSilenceSinceTheLastContact) {
  BrokerWatch watch(seconds(5), kStart);
  EXPECT_FALSE(watch.expired(kStart + milliseconds(4999)));
  EXPECT_TRUE(watch.expired(kStart + seconds(5)));
  watch.contact(kStart + seconds(4));
  EXPECT_FALSE(watch.expired(kStart + milliseconds(8999)));
  EXPECT_TRUE(watch.expired(kStart + seconds(9)));
  EXPECT_EQ(watch.silentFor(kStart + seconds(6)), seconds(2));
}

TEST(BrokerWatch, AContactFromThePastNeverMovesTheLastContactBack) {
  BrokerWatch watch(seconds(5), kStart);
  watch.contact(kStart + seconds(4));
  watch.contact(kStart + seconds(1));   // a late callback
  EXPECT_FALSE(watch.expired(kStart + milliseconds(8999)));
}

TEST(BrokerWatch, ReportsASilenceOnceItIsNotOrdinaryLatencyThenRarely) {
  BrokerWatch watch(seconds(120), kStart);
  EXPECT_FALSE(watch.shouldReport(kStart + milliseconds(1999)));   // ordinary latency
  EXPECT_TRUE(watch.shouldReport(kStart + seconds(2)));
  int reports = 0;
  for (auto t = kStart + seconds(2) + milliseconds(250); t < kStart + seconds(120);
       t += milliseconds(250)) {
    reports += watch.shouldReport(t) ? 1 : 0;
  }
  // Every 30 s after the first: at 32, 62 and 92 s, not once per wait.
  EXPECT_EQ(reports, 3);
}

TEST(BrokerWatch, ANewSilenceAfterAContactIsReportedAfresh) {
  BrokerWatch watch(seconds(120), kStart);
  EXPECT_TRUE(watch.shouldReport(kStart + seconds(3)));
  watch.contact(kStart + seconds(4));
  EXPECT_FALSE(watch.shouldReport(kStart + seconds(5)));
  EXPECT_TRUE(watch.shouldReport(kStart + seconds(7)));
}

}  // namespace
}  // namespace td::worker
