// The librdkafka settings td-bench gives its own clients: exactly td-worker's and
// td-coordinator's (kafka/client_settings.h), so the floor and the simulated workers pay what
// the real processes pay. `overrides` (td-bench's -X) are applied last.
#pragma once

#include <string>

#include "kafka/client_settings.h"

namespace td::bench {

using kafka::producerSettings;
using kafka::readerSettings;

}  // namespace td::bench
