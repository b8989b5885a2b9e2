#include "kafka/internal/rdkafka.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "common/redact.h"

namespace td::kafka::internal {

std::shared_ptr<spdlog::logger> logger() { return td::log::get("kafka"); }

td::Error fromRdKafka(rd_kafka_resp_err_t err, std::string text, const std::string& context) {
  const auto code = make_error_code(static_cast<Errc>(err));
  if (isAccessDenied(code)) {
    const std::string name = errorName(code);
    if (text.find(name) == std::string::npos) text += " (" + name + ")";
  }
  return td::Error(code, context.empty() ? text : context + ": " + text);
}

td::Error fromRdKafka(rd_kafka_resp_err_t err, const std::string& context) {
  return fromRdKafka(err, rd_kafka_err2str(err), context);
}

td::Error fromRdKafka(const rd_kafka_error_t* error, const std::string& context) {
  return fromRdKafka(rd_kafka_error_code(error), rd_kafka_error_string(error), context);
}

namespace {

// librdkafka logs from its own threads; spdlog loggers are thread-safe. Its INFO (6) level is
// chatty (connection churn), so it maps to debug; its debug contexts (7) map to trace.
void onLog(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
  spdlog::level::level_enum mapped;
  if (level <= 2) {
    mapped = spdlog::level::critical;
  } else if (level == 3) {
    mapped = spdlog::level::err;
  } else if (level == 4) {
    mapped = spdlog::level::warn;
  } else if (level == 5) {
    mapped = spdlog::level::info;
  } else if (level == 6) {
    mapped = spdlog::level::debug;
  } else {
    mapped = spdlog::level::trace;
  }
  auto log = logger();
  if (!log->should_log(mapped)) return;
  log->log(mapped, "{} {}: {}", rk != nullptr ? rd_kafka_name(rk) : "-", facility, text);
}

}  // namespace

td::Result<ConfPtr> makeConf(const Properties& defaults, const Properties& props, void* opaque) {
  logger();  // create the logger here, on the caller's thread, before librdkafka's threads log
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto* list : {&defaults, &props}) {
    for (const auto& [key, value] : *list) {
      errstr[0] = '\0';
      if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
        // librdkafka's message may quote the value; a secret's value must not reach a log.
        std::string reason = errstr;
        if (isSecretName(key) && !value.empty()) {
          for (auto at = reason.find(value); at != std::string::npos; at = reason.find(value)) {
            reason.replace(at, value.size(), kRedacted);
          }
        }
        return makeError(Errc::kInvalidArg, "librdkafka property '" + key + "'='" +
                                                redactValue(key, value) + "': " + reason);
      }
    }
  }
  rd_kafka_conf_set_log_cb(conf.get(), onLog);
  rd_kafka_conf_set_opaque(conf.get(), opaque);
  return conf;
}

}  // namespace td::kafka::internal

namespace td::kafka {

td::Status checkProperties(const Properties& props) {
  auto conf = internal::makeConf({}, props, nullptr);
  if (!conf) return td::unexpected(conf.error());
  return {};
}

std::string librdkafkaVersion() { return rd_kafka_version_str(); }

}  // namespace td::kafka

namespace td::kafka::internal {

std::optional<std::string> confGet(const rd_kafka_conf_t* conf, const char* name) {
  size_t size = 0;
  if (rd_kafka_conf_get(conf, name, nullptr, &size) != RD_KAFKA_CONF_OK) return std::nullopt;
  std::string value(size, '\0');
  if (rd_kafka_conf_get(conf, name, value.data(), &size) != RD_KAFKA_CONF_OK) return std::nullopt;
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

td::Result<HandlePtr> makeHandle(rd_kafka_type_t type, ConfPtr conf) {
  char errstr[512] = "";
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof errstr);
  if (rk == nullptr) {
    return makeError(Errc::kInvalidArg, std::string("creating the librdkafka client: ") + errstr);
  }
  conf.release();  // now owned by rk
  return HandlePtr(rk);
}

PartitionListPtr toPartitionList(const std::vector<TopicPartitionOffset>& partitions) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& tp : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
        tp.offset;
  }
  return list;
}

std::vector<TopicPartitionOffset> fromPartitionList(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartitionOffset> out;
  if (list == nullptr) return out;
  out.reserve(static_cast<std::size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    out.push_back({e.topic, e.partition, e.offset});
  }
  return out;
}

Message toMessage(const rd_kafka_message_t& m) {
  Message out;
  if (m.rkt != nullptr) out.topic = rd_kafka_topic_name(m.rkt);
  out.partition = m.partition;
  out.offset = m.offset;
  if (m.key != nullptr) out.key.assign(static_cast<const char*>(m.key), m.key_len);
  if (m.payload != nullptr) out.value.assign(static_cast<const char*>(m.payload), m.len);
  rd_kafka_timestamp_type_t type;
  out.timestamp_ms = rd_kafka_message_timestamp(&m, &type);
  return out;
}

rd_kafka_resp_err_t warmMetadata(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  TopicPtr rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  if (!rkt) return RD_KAFKA_RESP_ERR_NO_ERROR;
  const rd_kafka_metadata_t* raw = nullptr;
  auto err = rd_kafka_metadata(rk, 0, rkt.get(), &raw, timeout_ms);
  MetadataPtr metadata(raw);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    logger()->debug("{} metadata of {}: {}", rd_kafka_name(rk), topic, rd_kafka_err2str(err));
    return RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  return metadata->topic_cnt == 1 ? metadata->topics[0].err : RD_KAFKA_RESP_ERR_NO_ERROR;
}

bool PeriodicLog::allow(std::uint64_t* suppressed) {
  auto now = std::chrono::steady_clock::now();
  if (now < next_) {
    ++suppressed_;
    return false;
  }
  next_ = now + period_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

td::Result<std::vector<Message>> consume(rd_kafka_t* rk, std::size_t max,
                                         std::chrono::milliseconds timeout, PeriodicLog& limiter,
                                         const std::vector<rd_kafka_resp_err_t>& quiet) {
  using Clock = std::chrono::steady_clock;
  std::vector<Message> out;
  const auto deadline = Clock::now() + timeout;
  while (out.size() < max) {
    int wait_ms = 0;
    if (out.empty()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      wait_ms = static_cast<int>(std::clamp<std::int64_t>(left, 0, 1'000'000'000));
    }
    MessagePtr m(rd_kafka_consumer_poll(rk, wait_ms));
    if (!m) {
      if (out.empty() && Clock::now() < deadline) continue;
      break;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.push_back(toMessage(*m));
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
      char reason[512] = "";
      auto cause = rd_kafka_fatal_error(rk, reason, sizeof reason);
      return rdKafkaError(cause, std::string("fatal consumer error: ") + reason);
    }
    // A setting the broker refuses: librdkafka would retry the join forever (seen on Apache
    // Kafka with session.timeout.ms below the broker's group.min.session.timeout.ms, 6 s by
    // default), so the consumer never joins and nothing says why but a warning every 6 s.
    if (m->err == RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT) {
      return rdKafkaError(m->err, std::string("the broker refuses the consumer group's "
                                              "session.timeout.ms (outside its "
                                              "group.min.session.timeout.ms.."
                                              "group.max.session.timeout.ms): ") +
                                      rd_kafka_message_errstr(m.get()));
    }
    const bool is_quiet = std::find(quiet.begin(), quiet.end(), m->err) != quiet.end();
    if (!is_quiet && accessDenied(m->err)) {
      // Failed authentication, or an ACL refusing a read: no retry helps (see kafka/error.h).
      return td::unexpected(fromRdKafka(
          m->err, rd_kafka_message_errstr(m.get()),
          m->rkt != nullptr ? std::string("reading ") + rd_kafka_topic_name(m->rkt)
                            : std::string("consumer")));
    }
    std::uint64_t suppressed = 0;
    if (limiter.allow(&suppressed)) {
      logger()->log(is_quiet ? spdlog::level::debug : spdlog::level::warn,
                    "{} consumer error{}{}: {} ({} similar suppressed)", rd_kafka_name(rk),
                    m->rkt != nullptr ? " on " : "",
                    m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "",
                    rd_kafka_message_errstr(m.get()), suppressed);
    }
  }
  return out;
}

}  // namespace td::kafka::internal
