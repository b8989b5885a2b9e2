// AssignProducers (the coordinator's td.assign producer shards) against a real, in-process
// embedded broker: placement (at most N topics per producer, a topic stays on its producer),
// per-topic order, flushing every shard, and closing a full shard once its topics are gone.
#include "coordinator/kafka/assign_producers.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "kafka/client_settings.h"
#include "tests/kafka/kafka_test_util.h"

namespace td::coordinator {
namespace {

using namespace std::chrono_literals;
using kafka::testing::uniqueName;
using kafka::testing::waitUntil;

class AssignProducersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto broker = kafka::EmbeddedBroker::start({});
    ASSERT_TRUE(broker) << broker.error().message();
    broker_ = std::move(*broker);
  }
  static void TearDownTestSuite() { broker_.reset(); }

  // A pool of `n` topics per producer whose factory records the indices it was asked for.
  std::unique_ptr<AssignProducers> pool(std::size_t n) {
    return std::make_unique<AssignProducers>(n, [this](std::uint64_t index) {
      made_.push_back(index);
      return kafka::Producer::create(kafka::producerSettings(
          broker_->bootstrapServers(), "assign-test-" + std::to_string(index)));
    });
  }
  std::vector<std::string> topics(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(uniqueName("assign"));
    return out;
  }
  // Produces `value` to partition 0 of `topic`, counting deliveries (and failures).
  void produce(AssignProducers& pool, const std::string& topic, const std::string& value) {
    auto status = pool.produce(topic, 0, "k", value,
                               [this](const td::Status& result, std::int32_t, std::int64_t) {
                                 ++(result ? delivered_ : failed_);
                               });
    ASSERT_TRUE(status) << status.error().message();
  }
  // Every value of partition 0 of `topic`, in offset order, once `n` have arrived.
  std::vector<std::string> read(const std::string& topic, std::size_t n) {
    auto reader = kafka::PartitionReader::create(
        kafka::readerSettings(broker_->bootstrapServers(), "assign-test-reader",
                              kafka::BrokerKind::kEmbedded));
    EXPECT_TRUE(reader) << reader.error().message();
    if (!reader) return {};
    EXPECT_TRUE((*reader)->assign({{topic, 0, kafka::kOffsetBeginning}}));
    std::vector<std::string> values;
    waitUntil(
        [&] {
          auto batch = (*reader)->poll(n - values.size(), 100ms);
          if (batch) {
            for (const auto& m : *batch) values.push_back(m.value);
          }
          return values.size() >= n;
        },
        10s);
    return values;
  }

  static inline std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::vector<std::uint64_t> made_;
  int delivered_ = 0;
  int failed_ = 0;
};

TEST_F(AssignProducersTest, PlacesAtMostNTopicsPerProducerAndKeepsEachTopicsOrder) {
  auto p = pool(2);
  const auto names = topics(5);
  // Interleaved: every topic's first record, then every topic's second, ...
  for (int round = 0; round < 3; ++round) {
    for (const auto& topic : names) produce(*p, topic, "r" + std::to_string(round));
    if (round == 0) {
      EXPECT_EQ(p->openShards(), 3u) << "5 topics at 2 per producer";
      EXPECT_EQ(made_, (std::vector<std::uint64_t>{0, 1, 2}));
    }
  }
  EXPECT_EQ(made_.size(), 3u) << "a topic stays on its producer";
  EXPECT_EQ(p->topics(), 5u);
  ASSERT_TRUE(p->flush(10s));
  EXPECT_EQ(p->outstanding(), 0);
  EXPECT_EQ(delivered_, 15);
  EXPECT_EQ(failed_, 0);
  for (const auto& topic : names) {
    EXPECT_EQ(read(topic, 3), (std::vector<std::string>{"r0", "r1", "r2"})) << topic;
  }
}

TEST_F(AssignProducersTest, ClosesAFullProducerOnceEveryTopicPlacedOnItIsForgotten) {
  auto p = pool(2);
  const auto t = topics(6);
  for (int i = 0; i < 3; ++i) produce(*p, t[i], "x");   // producer 0: t0, t1; producer 1: t2
  ASSERT_TRUE(p->flush(10s));
  ASSERT_EQ(p->openShards(), 2u);

  p->forget(t[0]);
  EXPECT_EQ(p->openShards(), 2u) << "t1 still on producer 0";
  p->forget(t[1]);
  EXPECT_EQ(p->openShards(), 1u) << "producer 0 full and empty: closed";
  EXPECT_EQ(p->closedShards(), 1u);

  p->forget(t[2]);
  EXPECT_EQ(p->openShards(), 1u) << "the current producer is never closed";
  p->forget("never-produced-to");   // ignored
  EXPECT_EQ(p->closedShards(), 1u);

  produce(*p, t[3], "x");   // fills producer 1 (a forgotten topic still took its place)
  EXPECT_EQ(made_.size(), 2u);
  produce(*p, t[4], "x");   // opens producer 2
  EXPECT_EQ(made_, (std::vector<std::uint64_t>{0, 1, 2}));
  ASSERT_TRUE(p->flush(10s));
  p->forget(t[3]);
  EXPECT_EQ(p->closedShards(), 2u) << "producer 1: t2 and t3 forgotten";
  EXPECT_EQ(p->openShards(), 1u);

  // A forgotten topic produced to again is placed anew (its earlier records were flushed).
  produce(*p, t[0], "again");
  EXPECT_EQ(p->topics(), 2u);   // t4 and t0
  ASSERT_TRUE(p->flush(10s));
  EXPECT_EQ(failed_, 0);
  EXPECT_EQ(read(t[0], 2), (std::vector<std::string>{"x", "again"}));
}

TEST_F(AssignProducersTest, FlushWaitsForEveryProducer) {
  auto p = pool(1);
  const auto names = topics(4);
  for (const auto& topic : names) {
    for (int i = 0; i < 50; ++i) produce(*p, topic, std::to_string(i));
  }
  EXPECT_EQ(p->openShards(), 4u);
  ASSERT_TRUE(p->flush(10s));
  EXPECT_EQ(p->outstanding(), 0);
  EXPECT_EQ(delivered_, 200) << "every shard's callbacks ran in flush()";
}

TEST_F(AssignProducersTest, AProducerThatCannotBeMadeFailsTheProduceAndPlacesNothing) {
  AssignProducers p(2, [](std::uint64_t) {
    return kafka::Producer::create({{"no.such.property", "1"}});
  });
  auto status = p.produce("t", 0, "k", "v");
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), kafka::Errc::kInvalidArg) << status.error().message();
  EXPECT_EQ(p.topics(), 0u);
  EXPECT_EQ(p.openShards(), 0u);
}

}  // namespace
}  // namespace td::coordinator
