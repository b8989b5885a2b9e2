// The librdkafka settings Task Director's own clients use (td-coordinator, td-worker, td-bench),
// in one place so they cannot drift apart. `overrides` (a binary's own additions, then the
// user's -X) are applied last and win. enable.idempotence=true is Producer's own default.
#pragma once

#include <chrono>
#include <optional>
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

// What a client talks to, as far as waiting fetches go (docs/configuration.md, "Fetch waits").
enum class BrokerKind {
  // librdkafka's mock cluster (td-broker, td-bench, the tests): it answers a fetch that finds
  // nothing only after the client's whole fetch.wait.max.ms, however soon a record arrives.
  kEmbedded,
  // Apache Kafka (and what speaks its protocol): a waiting fetch is answered when data arrives.
  kApacheKafka,
};

// The embedded broker's cluster ids are "mockCluster<hex>"; anything else, and an unknown id
// (a broker not reachable yet), is taken for Apache Kafka, what deployments run.
inline BrokerKind brokerKindOf(const std::optional<std::string>& cluster_id) {
  return cluster_id && cluster_id->starts_with("mockCluster") ? BrokerKind::kEmbedded
                                                              : BrokerKind::kApacheKafka;
}

// How long the broker may hold an empty fetch (fetch.wait.max.ms). On the embedded broker it is
// the latency of every hop a hot twin does not cover (kHotFetchWindow), and 5 ms of it costs a
// fetch loop of 200 requests a second per reader. On Apache Kafka it costs no latency, so an
// idle reader there asks ten times a second. Not librdkafka's 500 ms: with it, a td-worker
// refused READ on its td.assign topic never heard of the refusal (kafka_security_test_kafka
// waited 60 s; 0.7 s at 100 ms, 0.4 s at 5 ms).
inline std::chrono::milliseconds fetchWait(BrokerKind kind) {
  return kind == BrokerKind::kEmbedded ? std::chrono::milliseconds(5)
                                       : std::chrono::milliseconds(100);
}

// For PartitionReader and GroupConsumer. fetch.wait.max.ms as fetchWait(kind);
// auto.offset.reset=earliest covers a log whose start was deleted;
// topic.metadata.refresh.interval.ms=500 finds new topics quickly.
inline Properties readerSettings(const std::string& bootstrap, const std::string& client_id,
                                 BrokerKind kind, const Properties& overrides = {}) {
  Properties props{{"bootstrap.servers", bootstrap},
                   {"client.id", client_id},
                   {"fetch.wait.max.ms", std::to_string(fetchWait(kind).count())},
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
