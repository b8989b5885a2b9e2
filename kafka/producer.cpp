#include "kafka/producer.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <unordered_map>

#include "kafka/internal/rdkafka.h"

namespace td::kafka {

using namespace internal;

struct Producer::Impl {
  HandlePtr rk;
  PeriodicLog error_log;
  // Topic handles by name. Producing by handle spares librdkafka 2.0.2's lookup of the name,
  // a walk over every topic the client knows: with one td.assign topic per group that made
  // every produce O(groups). Member order: destroyed before `rk`.
  std::unordered_map<std::string, TopicPtr> topics;
  // The first refusal heard of (see Producer::refusal()); written and read on the app thread.
  std::optional<td::Error> refusal;
  // The latest non-fatal client-level error (Producer::lastError()); same thread.
  std::optional<td::Error> last_error;

  // Delivery report: the message's opaque is the heap DeliveryCallback produce() released.
  static void onDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    std::unique_ptr<DeliveryCallback> callback(static_cast<DeliveryCallback*>(m->_private));
    if (!callback || !*callback) return;
    td::Status result;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      result = td::unexpected(fromRdKafka(
          m->err, std::string("delivery to ") + (m->rkt ? rd_kafka_topic_name(m->rkt) : "?")));
    }
    (*callback)(result, m->partition, m->err ? -1 : m->offset);
  }

  // Client-level errors (connection loss and the like) are transient unless fatal.
  static void onError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char fatal[512] = "";
      const auto cause = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
      logger()->error("{} fatal producer error: {}", rd_kafka_name(rk), fatal);
      if (!self->refusal) self->refusal = fromRdKafka(cause, fatal, "fatal producer error");
      return;
    }
    const auto code = static_cast<rd_kafka_resp_err_t>(err);
    if (!self->refusal && accessDenied(code)) self->refusal = fromRdKafka(code, reason, "");
    self->last_error = fromRdKafka(code, reason, "");
    std::uint64_t suppressed = 0;
    if (self->error_log.allow(&suppressed)) {
      logger()->warn("{} producer: {}: {} ({} similar suppressed)", rd_kafka_name(rk),
                     rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason, suppressed);
    }
  }
};

Producer::Producer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Producer::~Producer() {
  if (!impl_ || !impl_->rk) return;
  // Fail what is left so every callback runs (and frees its opaque) before the handle goes.
  rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_flush(impl_->rk.get(), 1000);
}

td::Result<std::unique_ptr<Producer>> Producer::create(const Properties& props) {
  auto impl = std::make_unique<Impl>();
  auto conf = makeConf({{"enable.idempotence", "true"}, {"linger.ms", "1"}}, props, impl.get());
  if (!conf) return td::unexpected(conf.error());
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &Impl::onDelivery);
  rd_kafka_conf_set_error_cb(conf->get(), &Impl::onError);
  auto rk = makeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!rk) return td::unexpected(rk.error());
  impl->rk = std::move(*rk);
  return std::unique_ptr<Producer>(new Producer(std::move(impl)));
}

td::Status Producer::produce(std::string_view topic, std::int32_t partition, std::string_view key,
                             std::string_view value, DeliveryCallback on_delivery, int block_ms) {
  using Clock = std::chrono::steady_clock;
  const std::string topic_name(topic);
  auto it = impl_->topics.find(topic_name);
  if (it == impl_->topics.end()) {
    TopicPtr rkt(rd_kafka_topic_new(impl_->rk.get(), topic_name.c_str(), nullptr));
    if (!rkt) return rdKafkaError(rd_kafka_last_error(), "topic handle for " + topic_name);
    warmMetadata(impl_->rk.get(), topic_name, kWarmupMs);
    it = impl_->topics.emplace(topic_name, std::move(rkt)).first;
  }
  std::unique_ptr<DeliveryCallback> callback;
  if (on_delivery) callback = std::make_unique<DeliveryCallback>(std::move(on_delivery));
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(block_ms, 0));
  while (true) {
    auto err = rd_kafka_producev(
        impl_->rk.get(), RD_KAFKA_V_RKT(it->second.get()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key.empty() ? nullptr : const_cast<char*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(value.empty() ? nullptr : const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_OPAQUE(callback.get()), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      callback.release();  // owned by the message now; onDelivery frees it
      return {};
    }
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || left <= 0) {
      return rdKafkaError(err, "produce to " + topic_name);
    }
    rd_kafka_poll(impl_->rk.get(), static_cast<int>(std::min<std::int64_t>(left, 100)));
  }
}

void Producer::forgetTopic(const std::string& topic) { impl_->topics.erase(topic); }

int Producer::poll(int timeout_ms) { return rd_kafka_poll(impl_->rk.get(), timeout_ms); }

td::Status Producer::flush(std::chrono::milliseconds timeout) {
  auto err = rd_kafka_flush(impl_->rk.get(), static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return rdKafkaError(err, "flush: " + std::to_string(outstanding()) +
                                 " records still outstanding after " +
                                 std::to_string(timeout.count()) + " ms");
  }
  return {};
}

namespace {
// A fatal error (the producer was fenced: recreate it) comes back as Errc::kFatal, naming the
// broker's error, unless the broker refused this principal (an access-denied code, kept so the
// caller can say so); any other can be aborted or retried.
td::Status transactionStatus(rd_kafka_error_t* raw, const char* what) {
  ErrorPtr error(raw);
  if (!error) return {};
  if (rd_kafka_error_is_fatal(error.get()) &&
      !isAccessDenied(make_error_code(static_cast<Errc>(rd_kafka_error_code(error.get()))))) {
    return td::unexpected(fromRdKafka(RD_KAFKA_RESP_ERR__FATAL,
                                       std::string(rd_kafka_error_name(error.get())) + ": " +
                                           rd_kafka_error_string(error.get()),
                                       what));
  }
  return td::unexpected(fromRdKafka(error.get(), what));
}
int asMs(std::chrono::milliseconds timeout) { return static_cast<int>(timeout.count()); }
}  // namespace

td::Status Producer::initTransactions(std::chrono::milliseconds timeout) {
  return transactionStatus(rd_kafka_init_transactions(impl_->rk.get(), asMs(timeout)),
                           "init_transactions");
}

td::Status Producer::beginTransaction() {
  return transactionStatus(rd_kafka_begin_transaction(impl_->rk.get()), "begin_transaction");
}

td::Status Producer::sendOffsetsToTransaction(const std::vector<TopicPartitionOffset>& next_offsets,
                                              const GroupConsumer& consumer,
                                              std::chrono::milliseconds timeout) {
  if (next_offsets.empty()) return {};
  auto list = toPartitionList(next_offsets);
  auto metadata = consumer.groupMetadata();
  return transactionStatus(
      rd_kafka_send_offsets_to_transaction(impl_->rk.get(), list.get(),
                                           rawGroupMetadata(*metadata), asMs(timeout)),
      "send_offsets_to_transaction");
}

td::Status Producer::commitTransaction(std::chrono::milliseconds timeout) {
  return transactionStatus(rd_kafka_commit_transaction(impl_->rk.get(), asMs(timeout)),
                           "commit_transaction");
}

td::Status Producer::abortTransaction(std::chrono::milliseconds timeout) {
  return transactionStatus(rd_kafka_abort_transaction(impl_->rk.get(), asMs(timeout)),
                           "abort_transaction");
}

std::optional<td::Error> Producer::lastError() const { return impl_->last_error; }

int Producer::outstanding() const { return rd_kafka_outq_len(impl_->rk.get()); }

std::optional<std::string> Producer::clusterId(std::chrono::milliseconds timeout) const {
  char* id = rd_kafka_clusterid(impl_->rk.get(), static_cast<int>(timeout.count()));
  if (id == nullptr) return std::nullopt;
  std::string out(id);
  rd_kafka_mem_free(impl_->rk.get(), id);
  return out;
}

std::optional<td::Error> Producer::refusal() const {
  if (impl_->refusal) return impl_->refusal;
  // A fatal error is known at once, before its error event is served.
  char reason[512] = "";
  if (auto cause = rd_kafka_fatal_error(impl_->rk.get(), reason, sizeof reason); cause) {
    return fromRdKafka(cause, reason, "fatal producer error");
  }
  return std::nullopt;
}

td::Result<int> Producer::partitionCount(const std::string& topic,
                                         std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  TopicPtr rkt(rd_kafka_topic_new(impl_->rk.get(), topic.c_str(), nullptr));
  if (!rkt) return rdKafkaError(rd_kafka_last_error(), "topic " + topic);
  const auto deadline = Clock::now() + timeout;
  rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR__TIMED_OUT;
  while (true) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    // At most 2 s per request: between requests the error events are served, so a failed
    // authentication (which leaves every request waiting for a broker) ends the wait.
    const rd_kafka_metadata_t* raw = nullptr;
    auto err = rd_kafka_metadata(impl_->rk.get(), 0, rkt.get(), &raw,
                                 static_cast<int>(std::min<std::int64_t>(left, 2000)));
    MetadataPtr metadata(raw);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last = err;
    } else if (metadata->topic_cnt != 1) {
      last = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    } else if (metadata->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last = metadata->topics[0].err;
    } else if (metadata->topics[0].partition_cnt > 0) {
      return metadata->topics[0].partition_cnt;
    } else {
      last = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    }
    // No DESCRIBE on the topic (TOPIC_AUTHORIZATION_FAILED), or credentials the broker
    // refused: waiting changes nothing.
    if (accessDenied(last)) break;
    rd_kafka_poll(impl_->rk.get(), 0);
    if (impl_->refusal && isAccessDenied(impl_->refusal->code())) {
      return td::unexpected(td::Error(impl_->refusal->code(),
                                       "partition count of " + topic + ": " +
                                           impl_->refusal->message()));
    }
    // Topic being created, or no leader yet: back off a little.
    left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<std::int64_t>(left, 50)));
  }
  return rdKafkaError(last, "partition count of " + topic);
}

}  // namespace td::kafka
