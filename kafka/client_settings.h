// The librdkafka settings Task Director's own clients use (td-coordinator, td-worker, td-bench),
// in one place so they cannot drift apart. `overrides` (a binary's own additions, then the
// user's -X) are applied last and win. enable.idempotence=true is Producer's own default.
#pragma once

#include <chrono>
#include <string>

#include "kafka/types.h"

namespace td::kafka {

// linger.ms=1: a record waits at most 1 ms for company. reconnect.backoff.max.ms=1000: after an
// outage every client is back within about a second of the others (librdkafka's default grows
// to 10 s), well within a lease, so no live peer is heard late enough to be declared lost.
inline Properties producerSettings(const std::string& bootstrap, const std::string& client_id,
                                   const Properties& overrides = {}) {
  Properties props{{"bootstrap.servers", bootstrap},
                   {"client.id", client_id},
                   {"linger.ms", "1"},
                   {"reconnect.backoff.max.ms", "1000"}};
  props.insert(props.end(), overrides.begin(), overrides.end());
  return props;
}

// For PartitionReader and GroupConsumer. fetch.wait.max.ms=5 bounds how long the broker holds
// an empty fetch (the latency floor of every hop); auto.offset.reset=earliest covers a log whose
// start was deleted; topic.metadata.refresh.interval.ms=500 finds new topics quickly.
inline Properties readerSettings(const std::string& bootstrap, const std::string& client_id,
                                 const Properties& overrides = {}) {
  Properties props{{"bootstrap.servers", bootstrap},
                   {"client.id", client_id},
                   {"fetch.wait.max.ms", "5"},
                   {"fetch.error.backoff.ms", "10"},
                   {"auto.offset.reset", "earliest"},
                   {"topic.metadata.refresh.interval.ms", "500"},
                   {"reconnect.backoff.max.ms", "1000"}};
  props.insert(props.end(), overrides.begin(), overrides.end());
  return props;
}

// How long a reader fetches hot after heat() (PartitionReader::heat, GroupConsumer::heat): long
// enough to cover the reply to what its owner just wrote, short enough that a reply that does
// not come costs little (a busy fetch loop, on the embedded broker only).
inline constexpr std::chrono::milliseconds kHotFetchWindow{50};

}  // namespace td::kafka
