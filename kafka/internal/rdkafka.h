// librdkafka, wrapped once (td_kafka internal; never include from outside kafka/):
// a unique_ptr alias + deleter per handle type, conversion of rd_kafka structs to td::kafka
// types, configuration building, log routing and error mapping.
#pragma once

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "kafka/error.h"
#include "kafka/group_consumer.h"
#include "kafka/types.h"

namespace td::kafka::internal {

template <typename T, void (*Destroy)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p != nullptr) Destroy(p);
  }
};

using HandlePtr = std::unique_ptr<rd_kafka_t, Deleter<rd_kafka_t, rd_kafka_destroy>>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, Deleter<rd_kafka_conf_t, rd_kafka_conf_destroy>>;
using TopicPtr =
    std::unique_ptr<rd_kafka_topic_t, Deleter<rd_kafka_topic_t, rd_kafka_topic_destroy>>;
using QueuePtr =
    std::unique_ptr<rd_kafka_queue_t, Deleter<rd_kafka_queue_t, rd_kafka_queue_destroy>>;
using MessagePtr =
    std::unique_ptr<rd_kafka_message_t, Deleter<rd_kafka_message_t, rd_kafka_message_destroy>>;
using ErrorPtr =
    std::unique_ptr<rd_kafka_error_t, Deleter<rd_kafka_error_t, rd_kafka_error_destroy>>;
using PartitionListPtr = std::unique_ptr<
    rd_kafka_topic_partition_list_t,
    Deleter<rd_kafka_topic_partition_list_t, rd_kafka_topic_partition_list_destroy>>;
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* p) const {
    if (p != nullptr) rd_kafka_metadata_destroy(p);
  }
};
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;
using GroupMetadataPtr =
    std::unique_ptr<rd_kafka_consumer_group_metadata_t,
                    Deleter<rd_kafka_consumer_group_metadata_t,
                            rd_kafka_consumer_group_metadata_destroy>>;

// The librdkafka handle inside GroupConsumer::GroupMetadata (defined in group_consumer.cpp).
rd_kafka_consumer_group_metadata_t* rawGroupMetadata(const GroupConsumer::GroupMetadata& m);

// An error in the kafka category: context + ": " + rd_kafka_err2str(err), and for an
// access-denied error (kafka/error.h) Kafka's name of it, which ACL documentation and broker
// logs use: "...: Broker: Topic authorization failed (TOPIC_AUTHORIZATION_FAILED)".
td::Error fromRdKafka(rd_kafka_resp_err_t err, const std::string& context);
// The same with librdkafka's own text of this occurrence instead of rd_kafka_err2str(err).
td::Error fromRdKafka(rd_kafka_resp_err_t err, std::string text, const std::string& context);

// isAccessDenied (kafka/error.h) of a librdkafka error code.
inline bool accessDenied(rd_kafka_resp_err_t err) {
  return isAccessDenied(make_error_code(static_cast<Errc>(err)));
}
// Same for an rd_kafka_error_t (uses its code and its own message).
td::Error fromRdKafka(const rd_kafka_error_t* error, const std::string& context);
inline td::Unexpected<td::Error> rdKafkaError(rd_kafka_resp_err_t err,
                                               const std::string& context) {
  return td::unexpected(fromRdKafka(err, context));
}

// Builds a configuration: `defaults`, then `props` (later entries win), with librdkafka's logs
// routed to the "kafka" spdlog logger and `opaque` as the handle's opaque.
// Errors: Errc::kInvalidArg naming the property and librdkafka's reason.
td::Result<ConfPtr> makeConf(const Properties& defaults, const Properties& props, void* opaque);
// The value of a property in `conf`, if it is set.
std::optional<std::string> confGet(const rd_kafka_conf_t* conf, const char* name);
// rd_kafka_new; takes ownership of `conf` on success (and frees it on failure).
td::Result<HandlePtr> makeHandle(rd_kafka_type_t type, ConfPtr conf);

PartitionListPtr toPartitionList(const std::vector<TopicPartitionOffset>& partitions);
std::vector<TopicPartitionOffset> fromPartitionList(const rd_kafka_topic_partition_list_t* list);
Message toMessage(const rd_kafka_message_t& message);

// Rate limiter for log lines inside loops: allows one line per `period`, counting the rest.
class PeriodicLog {
 public:
  explicit PeriodicLog(std::chrono::milliseconds period = std::chrono::seconds(5))
      : period_(period) {}
  // True if a line may be logged now; *suppressed receives how many were held back since.
  bool allow(std::uint64_t* suppressed);

 private:
  std::chrono::milliseconds period_;
  std::chrono::steady_clock::time_point next_{};
  std::uint64_t suppressed_ = 0;
};

// Reads messages from a consumer handle: up to `max`, waiting up to `timeout` for the first.
// PARTITION_EOF is skipped silently; a fatal error, and an access-denied one (isAccessDenied:
// failed authentication, a refused read) not in `quiet`, is returned; other errors are logged
// through `limiter` (at debug for those in `quiet`, else at warn).
td::Result<std::vector<Message>> consume(rd_kafka_t* rk, std::size_t max,
                                         std::chrono::milliseconds timeout, PeriodicLog& limiter,
                                         const std::vector<rd_kafka_resp_err_t>& quiet = {});

// Asks the cluster for `topic`'s metadata now, waiting at most timeout_ms, so librdkafka knows
// its partitions and leaders at once: librdkafka 2.0.2 otherwise learns of a topic first used
// after connecting only at its next 1 s topic scan, and starts an assigned partition with no
// known leader only after a 500 ms retry. Best effort: a failed request is ignored (logged at
// debug). Returns the topic's own error in the answer (TOPIC_AUTHORIZATION_FAILED without
// DESCRIBE on it, UNKNOWN_TOPIC_OR_PART, ...), else NO_ERROR: librdkafka 2.0.2 never reports
// the former to a consumer that assign()ed the topic, which then waits for it silently.
rd_kafka_resp_err_t warmMetadata(rd_kafka_t* rk, const std::string& topic, int timeout_ms);
// The longest a client waits in warmMetadata() before a topic's first use (a reader's assign,
// a producer's first record to it, a hot twin's add): half of librdkafka's 1 s topic scan.
inline constexpr int kWarmupMs = 500;

// The "kafka" logger.
std::shared_ptr<spdlog::logger> logger();

}  // namespace td::kafka::internal
