// Kafka errors as std::error_code values: td::kafka::Errc carries librdkafka's
// rd_kafka_resp_err_t numbers unchanged in the "kafka" category (message = rd_kafka_err2str).
#pragma once

#include <string>
#include <system_error>

namespace td::kafka {

// The named values are the ones Task Director code tests for; any other rd_kafka_resp_err_t
// value may also appear in an error_code of this category (compare with static_cast<Errc>(n)).
// Negative values are librdkafka-local errors, positive ones come from the broker.
enum class Errc : int {
  kNoError = 0,
  kDestroy = -197,          // the handle is being destroyed
  kFail = -196,             // generic local failure
  kTransport = -195,        // broker connection failed
  kMessageTimedOut = -192,  // delivery not acknowledged within message.timeout.ms
  kPartitionEof = -191,
  kUnknownPartition = -190,
  kUnknownTopic = -188,
  kAllBrokersDown = -187,
  kInvalidArg = -186,  // bad argument or configuration property
  kTimedOut = -185,    // a call (flush, metadata, watermarks...) ran out of time
  kQueueFull = -184,   // producer queue full (queue.buffering.max.*)
  kUnknownGroup = -179,
  kAuthentication = -169,  // SASL/SSL authentication failed (wrong credentials, mechanism, ...)
  kState = -172,
  kNoOffset = -168,
  kPurgeQueue = -152,  // purged before it was sent (producer destroyed)
  kPurgeInflight = -151,
  kFatal = -150,  // the client raised a fatal error; recreate it
  kUnknownBroker = -146,
  kOffsetOutOfRange = 1,
  kUnknownTopicOrPart = 3,
  kLeaderNotAvailable = 5,
  kNotLeaderForPartition = 6,
  kRequestTimedOut = 7,
  kMessageSizeTooLarge = 10,
  kNotCoordinator = 16,
  kNotEnoughReplicas = 19,
  kIllegalGeneration = 22,
  kUnknownMemberId = 25,
  kInvalidSessionTimeout = 26,  // session.timeout.ms outside what the broker allows
  kRebalanceInProgress = 27,
  kTopicAuthorizationFailed = 29,
  kGroupAuthorizationFailed = 30,
  kClusterAuthorizationFailed = 31,
  kTopicAlreadyExists = 36,
  kTransactionalIdAuthorizationFailed = 53,
  kSaslAuthenticationFailed = 58,
};

// The "kafka" category. message(ev) is librdkafka's rd_kafka_err2str(ev).
const std::error_category& kafkaCategory();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), kafkaCategory()}; }

// True for the errors that say the broker refuses this client's principal: authentication
// failed (kAuthentication, kSaslAuthenticationFailed) or an ACL denies the operation (the
// *_AUTHORIZATION_FAILED errors). Retrying does not help until the credentials or the ACLs
// change, so callers give up at once (docs/configuration.md, "Secure clusters").
bool isAccessDenied(const std::error_code& ec);
// True for the two authentication failures among them.
bool isAuthenticationFailure(const std::error_code& ec);
// librdkafka's name of an error of the "kafka" category, e.g. "TOPIC_AUTHORIZATION_FAILED"
// (rd_kafka_err2name; local errors start with '_': "_AUTHENTICATION"). Empty for other
// categories.
std::string errorName(const std::error_code& ec);

}  // namespace td::kafka

template <>
struct std::is_error_code_enum<td::kafka::Errc> : std::true_type {};
