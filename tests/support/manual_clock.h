// A clock that moves only when told to: tests drive time explicitly.
#pragma once

#include "common/time.h"

namespace td::testing {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(Instant start = {Millis(1'000'000), Millis(1'700'000'000'000)})
      : now_(start) {}
  Instant now() const override { return now_; }
  void advance(Millis by) {
    now_.mono += by;
    now_.wall += by;
  }

 private:
  Instant now_;
};

}  // namespace td::testing
