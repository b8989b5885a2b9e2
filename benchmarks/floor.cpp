#include "benchmarks/floor.h"

#include <memory>
#include <string_view>

#include "benchmarks/background_task.h"
#include "benchmarks/client_settings.h"
#include "kafka/kafka.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kReplyTimeout{5000};
constexpr std::chrono::milliseconds kPollSlice{50};
constexpr std::chrono::seconds kSetupTimeout{30};

// One side of the ping-pong: produces to one topic, reads partition 0 of another from its end.
struct Endpoint {
  std::unique_ptr<kafka::Producer> producer;
  std::unique_ptr<kafka::PartitionReader> reader;
};

td::Result<Endpoint> openEndpoint(const FloorConfig& config, const std::string& name,
                                  const std::string& write_topic, const std::string& read_topic) {
  auto producer = kafka::Producer::create(producerSettings(config.bootstrap, name, config.kafka));
  if (!producer) return td::unexpected(producer.error());
  // The product's readers: hot for kafka::kHotFetchWindow after each heat() (a reply is due).
  auto reader = kafka::PartitionReader::create(readerSettings(config.bootstrap, name, config.broker_kind, config.kafka),
                                               kafka::kHotFetchWindow);
  if (!reader) return td::unexpected(reader.error());
  for (const auto* topic : {&write_topic, &read_topic}) {
    auto partitions = (*producer)->partitionCount(*topic, kSetupTimeout);  // creates it if allowed
    if (!partitions) return td::unexpected(partitions.error());
  }
  auto marks = (*reader)->watermarks(read_topic, 0, kSetupTimeout);
  if (!marks) return td::unexpected(marks.error());
  TD_RETURN_IF_ERROR((*reader)->assign({{read_topic, 0, marks->second}}));
  return Endpoint{std::move(*producer), std::move(*reader)};
}

// The echo side: every record read is produced back unchanged, until stopped.
td::Status echo(Endpoint& endpoint, const std::string& topic, std::stop_token stop) {
  while (!stop.stop_requested()) {
    auto batch = endpoint.reader->poll(100, kPollSlice);
    if (!batch) return td::unexpected(batch.error());
    for (const auto& msg : *batch) {
      endpoint.reader->heat();   // the next ping follows the reply
      TD_RETURN_IF_ERROR(endpoint.producer->produce(topic, 0, {}, msg.value));
    }
    endpoint.producer->poll(0);  // serve delivery reports
  }
  return {};
}

// Waits for the record carrying `payload`; older payloads (a late echo) are skipped.
td::Status awaitReply(Endpoint& endpoint, std::string_view payload, Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    auto batch = endpoint.reader->poll(100, kPollSlice);
    if (!batch) return td::unexpected(batch.error());
    for (const auto& msg : *batch) {
      if (msg.value == payload) return {};
    }
  }
  return makeError(td::Errc::kTimeout, "floor: no reply to ping " + std::string(payload));
}
// Sends warm-up + measured pings one at a time, each after the previous reply.
td::Result<std::vector<double>> pingLoop(Endpoint& pinger, const FloorConfig& config) {
  std::vector<double> rtt_ms;
  rtt_ms.reserve(static_cast<std::size_t>(config.round_trips));
  for (int i = 0; i < config.warmup + config.round_trips; ++i) {
    const std::string payload = config.run_id + ":" + std::to_string(i);
    const auto sent = Clock::now();
    pinger.reader->heat();   // the reply is due
    TD_RETURN_IF_ERROR(pinger.producer->produce(config.ping_topic, 0, {}, payload));
    pinger.producer->poll(0);  // serve delivery reports
    TD_RETURN_IF_ERROR(
        awaitReply(pinger, payload, std::min(sent + kReplyTimeout, config.deadline)));
    if (i >= config.warmup) {
      rtt_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
    }
  }
  return rtt_ms;
}
}  // namespace

td::Result<std::vector<double>> measureFloor(const FloorConfig& config) {
  auto pinger = openEndpoint(config, "td-bench-ping", config.ping_topic, config.pong_topic);
  if (!pinger) return td::unexpected(pinger.error());
  // Opened here, before anything is sent, so the echo side reads from before the first ping.
  auto ponger = openEndpoint(config, "td-bench-pong", config.pong_topic, config.ping_topic);
  if (!ponger) return td::unexpected(ponger.error());
  BackgroundTask<td::Status> echoer(
      [&ponger, &config](std::stop_token stop) { return echo(*ponger, config.pong_topic, stop); });
  auto rtt_ms = pingLoop(*pinger, config);
  echoer.requestStop();
  if (!echoer.waitFor(kReplyTimeout)) {
    return makeError(td::Errc::kTimeout, "floor: the echo thread did not stop");
  }
  // The echo side's error first: it is the cause of a missing reply.
  if (auto& status = echoer.result(); !status) return td::unexpected(status.error());
  return rtt_ms;
}

td::Result<ProduceRate> measureProduceRate(const ProduceConfig& config) {
  auto producer =
      kafka::Producer::create(producerSettings(config.bootstrap, "td-bench-produce", config.kafka));
  if (!producer) return td::unexpected(producer.error());
  auto partitions = (*producer)->partitionCount(config.topic, kSetupTimeout);
  if (!partitions) return td::unexpected(partitions.error());
  const std::string value(static_cast<std::size_t>(config.record_bytes), 'x');
  int failures = 0;
  std::string last_error;
  const auto on_delivery = [&failures, &last_error](const td::Status& result, std::int32_t,
                                                    std::int64_t) {
    if (!result) {
      ++failures;
      last_error = result.error().message();
    }
  };
  // The first produce to the topic waits for its metadata: done before the clock starts.
  TD_RETURN_IF_ERROR((*producer)->produce(config.topic, 0, {}, value, on_delivery));
  TD_RETURN_IF_ERROR((*producer)->flush(kSetupTimeout));
  const auto start = Clock::now();
  for (int i = 0; i < config.records; ++i) {
    TD_RETURN_IF_ERROR((*producer)->produce(config.topic, i % *partitions, {}, value, on_delivery));
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(config.deadline -
                                                                          Clock::now());
  TD_RETURN_IF_ERROR((*producer)->flush(std::max(left, std::chrono::milliseconds(1))));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (failures != 0) {
    return makeError(td::Errc::kUnavailable,
                     "produce floor: " + std::to_string(failures) +
                         " records not delivered, the last: " + last_error);
  }
  return ProduceRate{.records = config.records,
                     .record_bytes = config.record_bytes,
                     .seconds = seconds,
                     .per_s = seconds > 0 ? config.records / seconds : 0};
}

}  // namespace td::bench
