#include "worker/broker_watch.h"

#include <algorithm>

namespace td::worker {

void BrokerWatch::contact(TimePoint now) {
  last_contact_ = std::max(last_contact_, now);
  reported_ = false;
}

BrokerWatch::Millis BrokerWatch::silentFor(TimePoint now) const {
  return std::max(Millis(0), std::chrono::duration_cast<Millis>(now - last_contact_));
}

bool BrokerWatch::shouldReport(TimePoint now) {
  if (silentFor(now) < kQuietFor) return false;
  if (reported_ && now < next_report_) return false;
  reported_ = true;
  next_report_ = now + kReportEvery;
  return true;
}

}  // namespace td::worker
