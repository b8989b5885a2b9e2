// The librdkafka settings td-bench gives its own clients. They are the ones the real processes
// use, so the floor and the simulated workers pay what td-worker and td-coordinator pay:
//   td-worker (worker/kafka/worker_app.cpp, WorkerApp::create): producer linger.ms=1; reader
//     fetch.wait.max.ms=5, fetch.error.backoff.ms=10, auto.offset.reset=earliest,
//     topic.metadata.refresh.interval.ms=500;
//   td-coordinator (coordinator/kafka/service.cpp, Service::create): the same linger.ms and
//     fetch settings on its producer and group consumer.
// enable.idempotence=true is td_kafka's Producer default and is not repeated here.
// TODO: these are copies; if those files change, change them here too (no shared header yet).
#pragma once

#include <string>

#include "kafka/types.h"

namespace td::bench {

// `overrides` (td-bench's -X) are applied last, as td-worker and td-coordinator apply theirs.
inline kafka::Properties producerSettings(const std::string& bootstrap,
                                          const std::string& client_id,
                                          const kafka::Properties& overrides) {
  kafka::Properties props{
      {"bootstrap.servers", bootstrap}, {"client.id", client_id}, {"linger.ms", "1"}};
  props.insert(props.end(), overrides.begin(), overrides.end());
  return props;
}

inline kafka::Properties readerSettings(const std::string& bootstrap, const std::string& client_id,
                                        const kafka::Properties& overrides) {
  kafka::Properties props{
      {"bootstrap.servers", bootstrap},  {"client.id", client_id},
      {"fetch.wait.max.ms", "5"},        {"fetch.error.backoff.ms", "10"},
      {"auto.offset.reset", "earliest"}, {"topic.metadata.refresh.interval.ms", "500"}};
  props.insert(props.end(), overrides.begin(), overrides.end());
  return props;
}

}  // namespace td::bench
