// td-topic-floor: what librdkafka alone holds per td.assign topic, measured apart from
// td-coordinator (issue 16 asks for this floor). td-coordinator's own producer pool
// (AssignProducers, 256 topics per producer, the coordinator's producer settings) writes one
// record to each of N topics, with nothing else in the process; the resident size and the heap
// in use (mallinfo2) are read before and after, and after malloc_trim(0). td-bench runs it
// beside each scaling size (docs/performance.md, "Issue 16, third step"). Prints one JSON
// object on stdout.
// Exit codes: 0 measured, 1 a Kafka step failed, 2 usage.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/heap_trim.h"
#include "coordinator/kafka/assign_producers.h"
#include "kafka/admin.h"
#include "coordinator/kafka/kafka_port.h"
#include "kafka/client_settings.h"
#include "kafka/kafka.h"

namespace {

struct Options {
  std::string bootstrap;
  int topics = 1000;
  std::string prefix = "td.assign.floor.";
  int partitions = 0;   // 0: the broker creates each topic on first use
  std::size_t per_producer = 256;
  std::vector<std::string> properties;
};

std::int64_t heapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
}

int fail(const std::string& what) {
  std::fprintf(stderr, "td-topic-floor: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"What librdkafka holds per td.assign topic, without td-coordinator"};
  app.add_option("--bootstrap-server", o.bootstrap, "HOST:PORT")->required();
  app.add_option("--topics", o.topics, "topics to write one record each to")
      ->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--prefix", o.prefix, "topic name prefix")->capture_default_str();
  app.add_option("--partitions", o.partitions,
                 "create each topic with this many partitions through the Admin API (0: leave "
                 "it to the broker's auto-creation)")
      ->check(CLI::Range(0, 1000))->capture_default_str();
  app.add_option("--topics-per-producer", o.per_producer, "as td-coordinator's shards")
      ->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("-X", o.properties, "a librdkafka property KEY=VALUE for every client");
  CLI11_PARSE(app, argc, argv);

  auto overrides = td::kafka::parseProperties(o.properties);
  if (!overrides) {
    std::fprintf(stderr, "td-topic-floor: -X: %s\n", overrides.error().message().c_str());
    return 2;
  }
  const td::kafka::Properties producer_own =
      td::coordinator::producerOwnSettings({.kafka = *overrides});
  td::coordinator::AssignProducers pool(o.per_producer, [&](std::uint64_t index) {
    return td::kafka::Producer::create(td::kafka::producerSettings(
        o.bootstrap, fmt::format("td-topic-floor-assign-{}", index), producer_own));
  });
  std::unique_ptr<td::kafka::Admin> admin;
  if (o.partitions > 0) {
    auto made = td::kafka::Admin::create(
        td::kafka::producerSettings(o.bootstrap, "td-topic-floor-admin", *overrides));
    if (!made) return fail("admin client: " + made.error().message());
    admin = std::move(*made);
  }
  auto topic = [&](int i) { return fmt::format("{}{}", o.prefix, i); };
  // Topics [from, to) by the Admin API, 500 to a request.
  auto createTopics = [&](int from, int to) -> td::Status {
    if (!admin) return {};
    for (int first = from; first < to; first += 500) {
      std::vector<td::kafka::NewTopic> batch;
      for (int i = first; i < std::min(to, first + 500); ++i) {
        batch.push_back({.name = topic(i), .partitions = o.partitions});
      }
      for (const auto& outcome : admin->createTopics(batch, std::chrono::seconds(60))) {
        if (!outcome.status) return td::unexpected(outcome.status.error());
      }
    }
    return {};
  };
  auto produceTo = [&](int from, int to) -> td::Status {
    int failed = 0;
    std::string first_error;
    for (int i = from; i < to; ++i) {
      auto status = pool.produce(topic(i), 0, "k", "v",
                                 [&](const td::Status& s, std::int32_t, std::int64_t) {
                                   if (s) return;
                                   if (failed++ == 0) first_error = s.error().message();
                                 });
      if (!status) return status;
    }
    TD_RETURN_IF_ERROR(pool.flush(std::chrono::seconds(120)));
    if (failed > 0) {
      return td::makeError(td::Errc::kIo,
                           fmt::format("{} records failed, the first: {}", failed, first_error));
    }
    return {};
  };
  // Topic 0 opens the first producer and its connections before the first reading.
  if (auto s = createTopics(0, 1); !s) return fail("creating topics: " + s.error().message());
  if (auto s = produceTo(0, 1); !s) return fail("producing: " + s.error().message());
  malloc_trim(0);
  const std::int64_t rss_before = td::residentBytes();
  const std::int64_t heap_before = heapInUse();
  if (auto s = createTopics(1, o.topics + 1); !s) {
    return fail("creating topics: " + s.error().message());
  }
  if (auto s = produceTo(1, o.topics + 1); !s) return fail("producing: " + s.error().message());
  const std::int64_t rss_after = td::residentBytes();
  const std::int64_t heap_after = heapInUse();
  malloc_trim(0);
  const std::int64_t rss_trimmed = td::residentBytes();
  // Topics made through the Admin API are deleted again (the broker made the others).
  if (admin) {
    for (int first = 0; first <= o.topics; first += 500) {
      std::vector<std::string> names;
      for (int i = first; i < std::min(o.topics + 1, first + 500); ++i) names.push_back(topic(i));
      admin->deleteTopics(names, std::chrono::seconds(60));
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::size_t failed = 0;
    while (admin->deletesInFlight() > 0 && std::chrono::steady_clock::now() < deadline) {
      for (const auto& outcome : admin->takeDeleted()) failed += outcome.status ? 0 : 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (const auto& outcome : admin->takeDeleted()) failed += outcome.status ? 0 : 1;
    if (failed > 0 || admin->deletesInFlight() > 0) {
      std::fprintf(stderr, "td-topic-floor: %zu topics not deleted, %zu still in flight\n",
                   failed, admin->deletesInFlight());
    }
  }
  const double n = o.topics;
  std::printf(
      "{\"topics\":%d,\"partitions\":%d,\"producers\":%zu,\"rss_before\":%lld,"
      "\"rss_after\":%lld,\"rss_trimmed\":%lld,\"heap_before\":%lld,\"heap_after\":%lld,"
      "\"rss_bytes_per_topic\":%.0f,\"trimmed_rss_bytes_per_topic\":%.0f,"
      "\"heap_bytes_per_topic\":%.0f}\n",
      o.topics, o.partitions, pool.openShards(), static_cast<long long>(rss_before),
      static_cast<long long>(rss_after), static_cast<long long>(rss_trimmed),
      static_cast<long long>(heap_before), static_cast<long long>(heap_after),
      (rss_after - rss_before) / n, (rss_trimmed - rss_before) / n,
      (heap_after - heap_before) / n);
  return 0;
}
