#include "kafka/error.h"

#include <librdkafka/rdkafka.h>

#include <string>

namespace td::kafka {

// The named values must stay librdkafka's numbers.
static_assert(static_cast<int>(Errc::kTransport) == RD_KAFKA_RESP_ERR__TRANSPORT);
static_assert(static_cast<int>(Errc::kMessageTimedOut) == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
static_assert(static_cast<int>(Errc::kInvalidArg) == RD_KAFKA_RESP_ERR__INVALID_ARG);
static_assert(static_cast<int>(Errc::kTimedOut) == RD_KAFKA_RESP_ERR__TIMED_OUT);
static_assert(static_cast<int>(Errc::kQueueFull) == RD_KAFKA_RESP_ERR__QUEUE_FULL);
static_assert(static_cast<int>(Errc::kUnknownGroup) == RD_KAFKA_RESP_ERR__UNKNOWN_GROUP);
static_assert(static_cast<int>(Errc::kState) == RD_KAFKA_RESP_ERR__STATE);
static_assert(static_cast<int>(Errc::kNoOffset) == RD_KAFKA_RESP_ERR__NO_OFFSET);
static_assert(static_cast<int>(Errc::kPurgeQueue) == RD_KAFKA_RESP_ERR__PURGE_QUEUE);
static_assert(static_cast<int>(Errc::kFatal) == RD_KAFKA_RESP_ERR__FATAL);
static_assert(static_cast<int>(Errc::kUnknownBroker) == RD_KAFKA_RESP_ERR__UNKNOWN_BROKER);
static_assert(static_cast<int>(Errc::kUnknownTopicOrPart) ==
              RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
static_assert(static_cast<int>(Errc::kRebalanceInProgress) ==
              RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
static_assert(static_cast<int>(Errc::kTopicAlreadyExists) ==
              RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS);
static_assert(static_cast<int>(Errc::kAuthentication) == RD_KAFKA_RESP_ERR__AUTHENTICATION);
static_assert(static_cast<int>(Errc::kTopicAuthorizationFailed) ==
              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
static_assert(static_cast<int>(Errc::kGroupAuthorizationFailed) ==
              RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
static_assert(static_cast<int>(Errc::kClusterAuthorizationFailed) ==
              RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
static_assert(static_cast<int>(Errc::kTransactionalIdAuthorizationFailed) ==
              RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
static_assert(static_cast<int>(Errc::kSaslAuthenticationFailed) ==
              RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED);

namespace {
class KafkaCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "kafka"; }
  std::string message(int ev) const override {
    return rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(ev));
  }
};
}  // namespace

const std::error_category& kafkaCategory() {
  static const KafkaCategory category;
  return category;
}

bool isAuthenticationFailure(const std::error_code& ec) {
  return ec == Errc::kAuthentication || ec == Errc::kSaslAuthenticationFailed;
}

bool isAccessDenied(const std::error_code& ec) {
  if (ec.category() != kafkaCategory()) return false;
  switch (static_cast<rd_kafka_resp_err_t>(ec.value())) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTHORIZATION_FAILED:
      return true;
    default:
      return false;
  }
}

std::string errorName(const std::error_code& ec) {
  if (ec.category() != kafkaCategory()) return {};
  return rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(ec.value()));
}

}  // namespace td::kafka
