#include "coordinator/shell/service_probe.h"

namespace td::coordinator {

void LatencyHistogram::observe(double seconds) {
  ++count;
  sum += seconds;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++buckets[i];
      return;
    }
  }
}

}  // namespace td::coordinator
