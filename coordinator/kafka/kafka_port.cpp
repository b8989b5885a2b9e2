#include "coordinator/kafka/kafka_port.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "common/log.h"

namespace td::coordinator {

namespace {

// The librdkafka properties of each client the port makes, in one place for create() and
// checkOptions().
struct ClientProperties {
  kafka::Properties consumer, producer, state_reader, stats_reader, flow_prober, admin;
  kafka::Properties producer_own;   // the producer's own settings (the td.assign shards')
};

ClientProperties clientProperties(const ServiceOptions& o, kafka::BrokerKind kind) {
  // session.timeout.ms 6 s (librdkafka's default is 45 s; 6 s is Apache Kafka's lowest accepted
  // by default): a dead coordinator's partitions move sooner, and a join the embedded broker
  // sometimes holds for a whole session timeout (seen: 47 s before the first assignment on a
  // fresh td-broker) resolves in seconds. Cooperative rebalancing: partitions that do not move
  // keep being served while others do.
  // Offsets are stored once a cycle's output is acknowledged and committed by librdkafka's
  // timer, which skips the rebalance window: an explicit commit that lands in it carries a
  // stale generation, and librdkafka then drops the whole assignment (seen on scale-out: a
  // coordinator re-restored the partitions it kept).
  kafka::Properties consumer_own{{"group.id", o.consumer_group},
                                 {"session.timeout.ms", "6000"},
                                 {"heartbeat.interval.ms", "2000"},
                                 {"partition.assignment.strategy", "cooperative-sticky"},
                                 {"enable.auto.commit", o.exactly_once ? "false" : "true"},
                                 {"auto.commit.interval.ms", "200"}};
  if (o.static_membership) consumer_own.emplace_back("group.instance.id", o.core.coordinator_id);
  consumer_own.insert(consumer_own.end(), o.kafka.begin(), o.kafka.end());
  kafka::Properties producer_own = producerOwnSettings(o);
  ClientProperties out;
  out.consumer =
      kafka::readerSettings(o.bootstrap_servers, o.core.coordinator_id, kind, consumer_own);
  out.producer = kafka::producerSettings(o.bootstrap_servers, o.core.coordinator_id, producer_own);
  out.state_reader =
      kafka::readerSettings(o.bootstrap_servers, o.core.coordinator_id + "-state", kind, o.kafka);
  // History is not latency-sensitive: read as on Apache Kafka (the broker may hold an idle
  // fetch for 100 ms), so following the topic costs ten requests a second, not 200.
  out.stats_reader = kafka::readerSettings(o.bootstrap_servers, o.core.coordinator_id + "-stats",
                                           kafka::BrokerKind::kApacheKafka, o.kafka);
  // The consumer group's id, to ask for its committed offsets (the prober never joins it).
  kafka::Properties prober_props{{"group.id", o.consumer_group}};
  prober_props.insert(prober_props.end(), o.kafka.begin(), o.kafka.end());
  out.flow_prober = kafka::readerSettings(o.bootstrap_servers, o.core.coordinator_id + "-flow",
                                          kind, prober_props);
  out.admin =
      kafka::producerSettings(o.bootstrap_servers, o.core.coordinator_id + "-admin", o.kafka);
  out.producer_own = std::move(producer_own);
  return out;
}

// kafka::PartitionReader as the shell's LogReader.
class KafkaLogReader final : public LogReader {
 public:
  explicit KafkaLogReader(std::unique_ptr<kafka::PartitionReader> reader)
      : reader_(std::move(reader)) {}
  static td::Result<std::unique_ptr<LogReader>> create(const kafka::Properties& props) {
    auto reader = kafka::PartitionReader::create(props);
    if (!reader) return td::unexpected(reader.error());
    return std::unique_ptr<LogReader>(new KafkaLogReader(std::move(*reader)));
  }
  td::Status assign(const std::vector<kafka::TopicPartitionOffset>& partitions) override {
    return reader_->assign(partitions);
  }
  td::Result<std::vector<kafka::Message>> poll(std::size_t max, Millis wait) override {
    return reader_->poll(max, wait);
  }
  std::int64_t position(const std::string& topic, std::int32_t partition) override {
    return reader_->position(topic, partition);
  }
  td::Result<std::pair<std::int64_t, std::int64_t>> watermarks(const std::string& topic,
                                                               std::int32_t partition,
                                                               Millis timeout) override {
    return reader_->watermarks(topic, partition, timeout);
  }

 private:
  std::unique_ptr<kafka::PartitionReader> reader_;
};

}  // namespace

kafka::Properties producerOwnSettings(const ServiceOptions& o) {
  // Output is never dropped: through an outage it waits (and the batch's offsets stay
  // uncommitted) until the broker is back.
  kafka::Properties own{{"message.timeout.ms", "0"}};
  if (o.exactly_once) {
    // Stable per instance: a restarted instance fences its predecessor's open transaction.
    own.emplace_back("transactional.id", o.consumer_group + "." + o.core.coordinator_id);
    // A cycle's transaction lasts milliseconds; one open for 10 s belongs to a coordinator
    // that stalled (SIGSTOP, a frozen VM) inside it. Until the broker aborts it, every
    // read_committed reader of the partitions it wrote (workers, the next owner's restore of
    // td.state, td-audit) waits behind it, so the broker should abort it soon: 10 s, plus up
    // to the broker's transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s).
    own.emplace_back("transaction.timeout.ms", "10000");
  }
  own.insert(own.end(), o.kafka.begin(), o.kafka.end());
  return own;
}

td::Status KafkaPort::checkOptions(const ServiceOptions& options) {
  TD_RETURN_IF_ERROR(Service::checkOptions(options));
  const ClientProperties props = clientProperties(options, kafka::BrokerKind::kApacheKafka);
  kafka::Properties admin = props.admin;
  admin.insert(admin.end(), options.assign_topics.admin_kafka.begin(),
               options.assign_topics.admin_kafka.end());
  for (const kafka::Properties* list : {&props.consumer, &props.producer, &props.state_reader,
                                        &props.stats_reader, &props.flow_prober,
                                        static_cast<const kafka::Properties*>(&admin)}) {
    TD_RETURN_IF_ERROR(kafka::checkProperties(*list));
  }
  return {};
}

KafkaPort::KafkaPort(const ServiceOptions& options)
    : options_(options), log_(td::log::get("coordinator")) {}

td::Result<std::unique_ptr<Port>> KafkaPort::create(const ServiceOptions& options,
                                                    ServiceProbe& probe) {
  TD_RETURN_IF_ERROR(checkOptions(options));
  std::unique_ptr<KafkaPort> port(new KafkaPort(options));
  const auto& o = port->options_;
  const ClientProperties props = clientProperties(o, port->broker_kind_);
  auto consumer = port->makeConsumer();
  if (!consumer) return td::unexpected(consumer.error());
  port->consumer_ = std::move(*consumer);
  TD_RETURN_IF_ERROR(port->makeProducers());
  auto reader = KafkaLogReader::create(props.state_reader);
  if (!reader) return td::unexpected(reader.error());
  port->state_reader_ = std::move(*reader);
  // A question waits at most a quarter of a lease (2 s at most, so a stop is not held up).
  const auto probe_timeout = std::clamp(o.core.lease / 4, Millis(100), Millis(2000));
  auto prober = FlowProber::create(props.flow_prober, o.core.topics.registrations(),
                                   std::chrono::duration_cast<std::chrono::milliseconds>(
                                       probe_timeout));
  if (!prober) return td::unexpected(prober.error());
  port->flow_prober_ = std::move(*prober);
  if (o.core.step_stats) {
    auto stats_reader = KafkaLogReader::create(props.stats_reader);
    if (!stats_reader) return td::unexpected(stats_reader.error());
    port->stats_reader_ = std::move(*stats_reader);
  }
  if (o.assign_topics.create) {
    auto assign = AssignTopics::create(o.assign_topics, props.admin, o.core.topics,
                                       probe.assign_topics);
    if (!assign) return td::unexpected(assign.error());
    port->assign_topics_ = std::move(*assign);
  }
  return std::unique_ptr<Port>(std::move(port));
}

td::Result<std::unique_ptr<kafka::GroupConsumer>> KafkaPort::makeConsumer() {
  auto consumer = kafka::GroupConsumer::create(clientProperties(options_, broker_kind_).consumer,
                                               kafka::kHotFetchWindow);
  if (!consumer) return td::unexpected(consumer.error());
  (*consumer)->onRebalance(
      [this](bool assigned, const std::vector<kafka::TopicPartitionOffset>& partitions) {
        if (listener_) listener_(assigned, partitions);
      });
  (*consumer)->setCompanions({options_.core.topics.completions()});
  return consumer;
}

td::Status KafkaPort::makeProducers() {
  const ClientProperties props = clientProperties(options_, broker_kind_);
  // The old ones first: destroying them runs the callbacks of what they still hold.
  assign_.reset();
  producer_.reset();
  auto producer = kafka::Producer::create(props.producer);
  if (!producer) return td::unexpected(producer.error());
  producer_ = std::move(*producer);
  if (!options_.exactly_once) {
    // Shards write td.assign only, with the main producer's settings.
    assign_ = std::make_unique<AssignProducers>(
        options_.assign_groups_per_producer,
        [this, producer_own = props.producer_own](std::uint64_t index) {
          return kafka::Producer::create(kafka::producerSettings(
              options_.bootstrap_servers,
              fmt::format("{}-assign-{}", options_.core.coordinator_id, index), producer_own));
        });
  }
  return {};
}

td::Result<int> KafkaPort::partitionCount(const std::string& topic, Millis timeout) {
  return producer_->partitionCount(topic, timeout);
}

td::Status KafkaPort::brokerAnswered() {
  // The partition counts were just read, so the cluster's id is known.
  const kafka::BrokerKind kind =
      kafka::brokerKindOf(producer_->clusterId(std::chrono::milliseconds(1000)));
  if (kind == broker_kind_) return {};
  broker_kind_ = kind;
  log_->info("the broker is the embedded one: its readers wait {} ms for an empty fetch, "
             "and fetch hot while input flows (docs/configuration.md, \"Fetch waits\")",
             kafka::fetchWait(kind).count());
  // Neither has subscribed or read yet.
  auto consumer = makeConsumer();
  if (!consumer) return td::unexpected(consumer.error());
  consumer_ = std::move(*consumer);
  auto reader = KafkaLogReader::create(clientProperties(options_, kind).state_reader);
  if (!reader) return td::unexpected(reader.error());
  state_reader_ = std::move(*reader);
  return {};
}

void KafkaPort::pause(Millis duration) { std::this_thread::sleep_for(duration); }

void KafkaPort::setRebalanceListener(RebalanceListener listener) {
  listener_ = std::move(listener);
}

td::Status KafkaPort::subscribe() {
  if (consumer_closed_) {
    auto consumer = makeConsumer();
    if (!consumer) return td::unexpected(consumer.error());
    consumer_ = std::move(*consumer);
    consumer_closed_ = false;
  }
  return consumer_->subscribe({options_.core.topics.registrations()});
}

td::Result<std::vector<kafka::Message>> KafkaPort::poll(std::size_t max, Millis wait) {
  return consumer_->poll(max, wait);
}

td::Status KafkaPort::storeOffsets(const std::vector<kafka::TopicPartitionOffset>& offsets) {
  return consumer_->storeOffsets(offsets);
}

std::vector<kafka::TopicPartitionOffset> KafkaPort::positions() { return consumer_->positions(); }

std::vector<Port::PartitionLag> KafkaPort::lag() {
  std::vector<PartitionLag> out;
  for (auto& p : consumer_->lag()) out.push_back({std::move(p.topic), p.partition, p.lag});
  return out;
}

void KafkaPort::heat() { consumer_->heat(); }

void KafkaPort::leaveGroup() {
  consumer_->close();
  consumer_closed_ = true;
}

td::Status KafkaPort::produce(const std::string& topic, std::int32_t partition,
                              const std::string& key, const std::string& value,
                              Delivery on_delivery) {
  return producer_->produce(topic, partition, key, value, std::move(on_delivery),
                            /*block_ms=*/10000);
}

td::Status KafkaPort::produceAssignment(const std::string& topic, const std::string& key,
                                        const std::string& value, Delivery on_delivery) {
  if (!assign_) return produce(topic, 0, key, value, std::move(on_delivery));
  return assign_->produce(topic, 0, key, value, std::move(on_delivery), /*block_ms=*/10000);
}

int KafkaPort::outstanding() {
  return producer_->outstanding() + (assign_ ? assign_->outstanding() : 0);
}

td::Status KafkaPort::flush(Millis timeout) {
  auto flushed = producer_->flush(timeout);
  if (assign_) {
    // Every shard with records outstanding; their delivery callbacks run here too.
    auto shards = assign_->flush(timeout);
    if (flushed && !shards) flushed = std::move(shards);
  }
  return flushed;
}

void KafkaPort::forgetAssignTopic(const std::string& topic) {
  if (!assign_) {
    producer_->forgetTopic(topic);
    return;
  }
  assign_->forget(topic);
}

td::Status KafkaPort::renewProducers() { return makeProducers(); }

std::pair<std::int64_t, std::uint64_t> KafkaPort::assignProducers() {
  if (!assign_) return {0, 0};
  return {static_cast<std::int64_t>(assign_->openShards()), assign_->closedShards()};
}

td::Status KafkaPort::initTransactions(Millis timeout) {
  return producer_->initTransactions(timeout);
}

td::Status KafkaPort::beginTransaction() { return producer_->beginTransaction(); }

td::Status KafkaPort::sendOffsetsToTransaction(
    const std::vector<kafka::TopicPartitionOffset>& offsets, Millis timeout) {
  return producer_->sendOffsetsToTransaction(offsets, *consumer_, timeout);
}

td::Status KafkaPort::commitTransaction(Millis timeout) {
  return producer_->commitTransaction(timeout);
}

td::Status KafkaPort::abortTransaction(Millis timeout) {
  return producer_->abortTransaction(timeout);
}

void KafkaPort::askFlow(std::int32_t partition) { flow_prober_->ask(partition); }

std::vector<Port::FlowAnswer> KafkaPort::flowAnswers() {
  std::vector<FlowAnswer> out;
  for (auto& a : flow_prober_->answers()) {
    out.push_back({a.partition, a.low, a.high, a.committed, std::move(a.error)});
  }
  return out;
}

void KafkaPort::ensureAssignTopics(const std::vector<std::string>& group_ids) {
  if (assign_topics_) assign_topics_->ensure(group_ids);
}

void KafkaPort::retireAssignTopic(const std::string& group_id, Millis now) {
  if (assign_topics_) assign_topics_->retire(group_id, now);
}

void KafkaPort::dropAssignTopic(const std::string& group_id) {
  if (assign_topics_) assign_topics_->forget(group_id);
}

void KafkaPort::pollAssignTopics(Millis now) {
  if (assign_topics_) assign_topics_->poll(now);
}

}  // namespace td::coordinator
