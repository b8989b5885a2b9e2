// td_kafka against a real (embedded, in-process) Kafka-protocol broker.
#include "kafka/kafka.h"
#include "kafka/internal/hot_twin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "tests/kafka/kafka_test_util.h"

namespace td::kafka {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::uniqueName;
using testing::waitUntil;

#define ASSERT_OK(expr)                                                  \
  do {                                                                   \
    auto td_result_ = (expr);                                            \
    ASSERT_TRUE(td_result_.has_value()) << td_result_.error().message(); \
  } while (0)

// Tests share one broker (stopping one can cost librdkafka 2.0.2 a second) and stay
// independent through unique topic and group names; fault-injection tests get their own
// (KafkaFaultTest).
class KafkaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto broker = EmbeddedBroker::start({});
    ASSERT_TRUE(broker) << broker.error().message();
    shared_ = std::move(*broker);
  }
  static void TearDownTestSuite() { shared_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(shared_);
    broker_ = shared_.get();
    createTopic();
  }
  void createTopic() {
    topic_ = uniqueName("t");
    ASSERT_OK(broker_->createTopic(topic_, 3));
  }

  Properties common() const {
    return {{"bootstrap.servers", broker_->bootstrapServers()},
            {"topic.metadata.refresh.interval.ms", "200"},
            {"reconnect.backoff.max.ms", "200"}};
  }
  Properties consumerCommon() const {
    auto props = common();
    props.push_back({"fetch.wait.max.ms", "10"});
    props.push_back({"fetch.error.backoff.ms", "20"});
    return props;
  }
  std::unique_ptr<Producer> producer(Properties extra = {}) {
    auto props = common();
    props.insert(props.end(), extra.begin(), extra.end());
    auto p = Producer::create(props);
    EXPECT_TRUE(p) << p.error().message();
    return p ? std::move(*p) : nullptr;
  }
  std::unique_ptr<PartitionReader> reader() {
    auto r = PartitionReader::create(consumerCommon());
    EXPECT_TRUE(r) << r.error().message();
    return r ? std::move(*r) : nullptr;
  }
  std::unique_ptr<GroupConsumer> groupConsumer(const std::string& group, Properties extra = {},
                                               std::chrono::milliseconds hot_window = 0ms) {
    auto props = consumerCommon();
    props.push_back({"group.id", group});
    // The mock cluster holds a departed member until about session.timeout.ms - 1 s; 2500 ms
    // is about the lowest it accepts.
    props.push_back({"session.timeout.ms", "2500"});
    props.insert(props.end(), extra.begin(), extra.end());
    auto c = GroupConsumer::create(props, hot_window);
    EXPECT_TRUE(c) << c.error().message();
    return c ? std::move(*c) : nullptr;
  }
  // Produces values "<prefix>0".."<prefix>n-1" to (topic, partition) and waits for delivery.
  void produceN(Producer& p, const std::string& topic, int partition, int n,
                const std::string& prefix = "v") {
    int delivered = 0;
    for (int i = 0; i < n; ++i) {
      ASSERT_OK(p.produce(topic, partition, "k" + std::to_string(i), prefix + std::to_string(i),
                          [&](const td::Status& s, std::int32_t, std::int64_t) {
                            EXPECT_TRUE(s) << s.error().message();
                            ++delivered;
                          }));
    }
    ASSERT_OK(p.flush(10s));
    ASSERT_EQ(delivered, n);
  }
  // Polls until `n` messages arrived or the deadline passed.
  template <typename Consumer>
  std::vector<Message> readN(Consumer& c, std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::vector<Message> out;
    waitUntil(
        [&] {
          auto batch = c.poll(n - out.size(), 100ms);
          EXPECT_TRUE(batch) << batch.error().message();
          if (batch) out.insert(out.end(), batch->begin(), batch->end());
          return out.size() >= n;
        },
        timeout);
    return out;
  }

  static inline std::unique_ptr<EmbeddedBroker> shared_;
  EmbeddedBroker* broker_ = nullptr;
  std::string topic_;
};

// A broker of its own, for tests that break it.
class KafkaFaultTest : public KafkaTest {
 protected:
  void SetUp() override {
    auto broker = EmbeddedBroker::start({});
    ASSERT_TRUE(broker) << broker.error().message();
    own_ = std::move(*broker);
    broker_ = own_.get();
    createTopic();
  }
  std::unique_ptr<EmbeddedBroker> own_;
};

TEST(ParsePropertiesTest, SplitsAtTheFirstEquals) {
  auto props = parseProperties({"linger.ms=5", "sasl.password=a=b"});
  ASSERT_TRUE(props);
  EXPECT_EQ(*props, (Properties{{"linger.ms", "5"}, {"sasl.password", "a=b"}}));
}

TEST(ParsePropertiesTest, RejectsAnEntryWithoutEquals) {
  auto props = parseProperties({"linger.ms=5", "acks"});
  ASSERT_FALSE(props);
  EXPECT_EQ(props.error().code(), td::Errc::kInvalidArgument);
  EXPECT_THAT(props.error().message(), HasSubstr("acks"));
  EXPECT_FALSE(parseProperties({"=x"}));
}

TEST(KafkaErrorTest, CategoryUsesLibrdkafkaMessages) {
  std::error_code ec = Errc::kQueueFull;
  EXPECT_STREQ(ec.category().name(), "kafka");
  EXPECT_THAT(ec.message(), HasSubstr("Queue full"));
}

TEST(KafkaConfigTest, UnknownPropertyIsAnErrorNamingIt) {
  auto p = Producer::create({{"bootstrap.servers", "127.0.0.1:1"}, {"no.such.property", "1"}});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), Errc::kInvalidArg);
  EXPECT_THAT(p.error().message(), HasSubstr("no.such.property"));
  EXPECT_THAT(p.error().message(), HasSubstr("No such configuration property"));
}

TEST(KafkaConfigTest, InvalidValueIsAnErrorNamingTheProperty) {
  auto r = PartitionReader::create({{"fetch.wait.max.ms", "soon"}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("fetch.wait.max.ms"));
}

TEST(KafkaConfigTest, GroupConsumerRequiresGroupId) {
  auto c = GroupConsumer::create({{"bootstrap.servers", "127.0.0.1:1"}});
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message(), HasSubstr("group.id"));
}

TEST_F(KafkaTest, PartitionCountOfAPreCreatedTopic) {
  auto p = producer();
  auto count = p->partitionCount(topic_, 5s);
  ASSERT_TRUE(count) << count.error().message();
  EXPECT_EQ(*count, 3);
}

TEST_F(KafkaTest, PartitionCountAutoCreatesAnUnknownTopic) {
  auto p = producer();
  auto count = p->partitionCount(uniqueName("auto"), 5s);
  ASSERT_TRUE(count) << count.error().message();
  EXPECT_EQ(*count, 4);  // the mock cluster's fixed default
}

TEST_F(KafkaTest, ProduceAndReadBackWithPartitionReader) {
  auto p = producer();
  std::vector<std::int64_t> offsets;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(p->produce(topic_, 1, "key" + std::to_string(i), "value" + std::to_string(i),
                         [&](const td::Status& s, std::int32_t partition, std::int64_t offset) {
                           EXPECT_TRUE(s);
                           EXPECT_EQ(partition, 1);
                           offsets.push_back(offset);
                         }));
  }
  ASSERT_OK(p->flush(10s));
  EXPECT_EQ(offsets, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(p->outstanding(), 0);

  auto r = reader();
  ASSERT_OK(r->assign({{topic_, 1, kOffsetBeginning}}));
  auto got = readN(*r, 5);
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].topic, topic_);
    EXPECT_EQ(got[i].partition, 1);
    EXPECT_EQ(got[i].offset, i);
    EXPECT_EQ(got[i].key, "key" + std::to_string(i));
    EXPECT_EQ(got[i].value, "value" + std::to_string(i));
    EXPECT_GT(got[i].timestamp_ms, 0);
  }
}

TEST_F(KafkaTest, ReaderStartsAtAnAbsoluteOffsetAndAddsPartitions) {
  auto p = producer();
  produceN(*p, topic_, 0, 4, "a");
  produceN(*p, topic_, 2, 2, "c");
  auto r = reader();
  ASSERT_OK(r->assign({{topic_, 0, 2}}));
  auto first = readN(*r, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].value, "a2");
  EXPECT_EQ(first[1].value, "a3");
  ASSERT_OK(r->add({topic_, 2, kOffsetBeginning}));
  produceN(*p, topic_, 0, 1, "z");
  auto more = readN(*r, 3);
  std::vector<std::string> values;
  for (const auto& m : more) values.push_back(m.value);
  EXPECT_THAT(values, ::testing::UnorderedElementsAre("c0", "c1", "z0"));
}

TEST_F(KafkaTest, Watermarks) {
  auto p = producer();
  produceN(*p, topic_, 2, 7);
  auto r = reader();
  auto marks = r->watermarks(topic_, 2, 5s);
  ASSERT_TRUE(marks) << marks.error().message();
  EXPECT_EQ(marks->first, 0);
  EXPECT_EQ(marks->second, 7);
  auto empty = r->watermarks(topic_, 0, 5s);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->first, 0);
  EXPECT_EQ(empty->second, 0);
}

TEST_F(KafkaTest, ReaderOfATopicThatDoesNotExistYetGetsItsMessagesOnceItIsCreated) {
  const auto topic = uniqueName("later");
  auto r = reader();
  ASSERT_OK(r->assign({{topic, 0, kOffsetBeginning}}));
  auto none = r->poll(10, 300ms);
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_TRUE(none->empty());

  auto p = producer();
  produceN(*p, topic, 0, 3);  // auto-creates the topic
  auto got = readN(*r, 3, 15s);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].value, "v0");
  EXPECT_EQ(got[2].value, "v2");
}

bool readable(int fd, std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1 && (pfd.revents & POLLIN);
}

TEST_F(KafkaTest, EventFdSignalsReadyMessagesAndStaysArmedWhileSomeRemain) {
  auto p = producer();
  produceN(*p, topic_, 0, 2, "old");
  auto r = reader();
  auto marks = r->watermarks(topic_, 0, 5s);
  ASSERT_TRUE(marks);
  ASSERT_OK(r->assign({{topic_, 0, marks->second}}));  // from the end, with no race
  produceN(*p, topic_, 0, 5);

  std::vector<Message> got;
  ASSERT_TRUE(waitUntil(
      [&] {
        if (!readable(r->eventFd(), 5000ms)) return false;
        auto batch = r->poll(2, 0ms);  // fewer than are waiting
        EXPECT_TRUE(batch);
        got.insert(got.end(), batch->begin(), batch->end());
        return got.size() >= 5;
      },
      10s));
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].value, "v0");
  // Nothing left: a new record makes it readable again.
  ASSERT_OK(r->poll(10, 0ms));
  produceN(*p, topic_, 0, 1, "again");
  std::vector<Message> again;
  ASSERT_TRUE(waitUntil(
      [&] {
        if (!readable(r->eventFd(), 5000ms)) return false;
        auto batch = r->poll(10, 0ms);
        again.insert(again.end(), batch->begin(), batch->end());
        return !again.empty();
      },
      10s));
  EXPECT_EQ(again[0].value, "again0");
}

// Also covers both rebalance protocols: the first member is eager (range), the second
// cooperative (cooperative-sticky). Each join costs the mock cluster's 3 s initial delay.
TEST_F(KafkaTest, GroupConsumerResumesFromTheCommittedOffset) {
  auto p = producer();
  produceN(*p, topic_, 1, 10);
  const auto group = uniqueName("g");
  {
    auto c = groupConsumer(group);
    std::vector<TopicPartitionOffset> assigned;
    c->onRebalance([&](bool is_assign, const std::vector<TopicPartitionOffset>& parts) {
      if (is_assign) assigned.insert(assigned.end(), parts.begin(), parts.end());
    });
    ASSERT_OK(c->subscribe({topic_}));
    auto got = readN(*c, 4, 15s);
    ASSERT_GE(got.size(), 4u);
    EXPECT_EQ(assigned.size(), 3u);
    EXPECT_EQ(got[0].value, "v0");
    EXPECT_EQ(got[3].value, "v3");
    // Processed the first four only.
    ASSERT_OK(c->commit({{topic_, 1, got[3].offset + 1}}, /*async=*/false));
    c->close();
    ASSERT_OK(c->poll(10, 0ms));  // a closed consumer returns nothing
  }
  auto c2 = groupConsumer(group, {{"partition.assignment.strategy", "cooperative-sticky"}});
  std::map<std::int32_t, int> owned;
  c2->onRebalance([&](bool is_assign, const std::vector<TopicPartitionOffset>& parts) {
    for (const auto& tp : parts) owned[tp.partition] += is_assign ? 1 : -1;
  });
  ASSERT_OK(c2->subscribe({topic_}));
  auto rest = readN(*c2, 6, 15s);
  ASSERT_EQ(rest.size(), 6u);
  EXPECT_EQ(rest[0].offset, 4);
  EXPECT_EQ(rest[0].value, "v4");
  EXPECT_EQ(rest[5].value, "v9");
  EXPECT_EQ(owned, (std::map<std::int32_t, int>{{0, 1}, {1, 1}, {2, 1}}));
  ASSERT_OK(c2->commit({{topic_, 1, rest[5].offset + 1}}, /*async=*/true));
  ASSERT_OK(c2->poll(10, 50ms));  // serves the async commit's result
  c2->close();
  EXPECT_EQ(owned, (std::map<std::int32_t, int>{{0, 0}, {1, 0}, {2, 0}}));
  EXPECT_FALSE(c2->commit({{topic_, 1, 10}}, false));
}

// Hot fetching (heat()): a second client with fetch.wait.max.ms=0 beside one that waits 500 ms
// per empty fetch. One record at a time, each heated for: every record is handed out exactly
// once and in order, and the twin handed most of them out first (the embedded broker holds the
// slow client's empty fetches, so it can hardly ever be first).
TEST_F(KafkaTest, HotReaderHandsOutEveryRecordOnceAndInOrder) {
  auto props = consumerCommon();
  props.push_back({"fetch.wait.max.ms", "500"});
  auto made = PartitionReader::create(props, 50ms);
  ASSERT_TRUE(made) << made.error().message();
  auto& r = **made;
  auto p = producer({{"linger.ms", "0"}});
  ASSERT_OK(r.assign({{topic_, 0, 0}, {topic_, 1, 0}}));
  constexpr int kRecords = 60;
  std::vector<std::string> got;
  for (int i = 0; i < kRecords; ++i) {
    r.heat();
    // A burst now and then, on both partitions: the twin may be behind, ahead or cold.
    const int partition = i % 2;
    produceN(*p, topic_, partition, 1, "p" + std::to_string(partition) + "-" + std::to_string(i) + "-");
    auto batch = readN(r, 1, 10s);
    ASSERT_EQ(batch.size(), 1u) << "record " << i;
    got.push_back(batch[0].value);
    EXPECT_EQ(r.position(topic_, partition), batch[0].offset + 1);
  }
  for (int i = 0; i < kRecords; ++i) {
    EXPECT_EQ(got[i], "p" + std::to_string(i % 2) + "-" + std::to_string(i) + "-0");
  }
  auto rest = r.poll(10, 600ms);
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest->empty()) << "a record handed out twice: " << rest->front().value;
  EXPECT_GT(r.hotRecords(), static_cast<std::uint64_t>(kRecords / 2));
}

// The same for a group consumer, whose twin starts only where the group's own reading has
// handed something out (its committed offsets are not the twin's); positions() never goes
// back behind what was handed out.
TEST_F(KafkaTest, HotGroupConsumerHandsOutEveryRecordOnceAndKeepsItsPositions) {
  auto p = producer({{"linger.ms", "0"}});
  auto made = groupConsumer(uniqueName("g"), {{"fetch.wait.max.ms", "500"}}, 50ms);
  ASSERT_TRUE(made);
  auto& c = *made;
  ASSERT_OK(c.subscribe({topic_}));
  produceN(*p, topic_, 2, 1, "first");
  ASSERT_EQ(readN(c, 1, 15s).size(), 1u);
  constexpr int kRecords = 40;
  for (int i = 0; i < kRecords; ++i) {
    c.heat();
    produceN(*p, topic_, 2, 1, "v" + std::to_string(i) + "-");
    auto batch = readN(c, 1, 10s);
    ASSERT_EQ(batch.size(), 1u) << "record " << i;
    EXPECT_EQ(batch[0].value, "v" + std::to_string(i) + "-0");
    EXPECT_EQ(batch[0].offset, i + 1);
    bool found = false;
    for (const auto& position : c.positions()) {
      if (position.topic != topic_ || position.partition != 2) continue;
      found = true;
      EXPECT_EQ(position.offset, i + 2);
    }
    EXPECT_TRUE(found);
  }
  auto rest = c.poll(10, 600ms);
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest->empty()) << "a record handed out twice: " << rest->front().value;
  EXPECT_GT(c.hotRecords(), static_cast<std::uint64_t>(kRecords / 2));
  c.close();
}

// A twin kept hot (a coordinator whose input never stops) also starts a partition whose next
// offset became known while it was hot. Before, a hot twin only extended its window, so a
// coordinator's td.completions partition whose first record came after the twin started stayed
// with the slow reader for as long as records flowed anywhere. The twin alone, so that no
// other client can win the record: it hands out only the partitions heat() started.
TEST_F(KafkaTest, HotTwinStartsAPartitionLearntWhileHot) {
  auto pipe = internal::WakePipe::open();
  ASSERT_TRUE(pipe) << pipe.error().message();
  auto made = internal::HotTwin::create(consumerCommon(), *pipe, 60s);  // hot all along
  ASSERT_TRUE(made) << made.error().message();
  auto& twin = **made;
  twin.add({{topic_, 1, -1}, {topic_, 2, -1}});
  auto p = producer({{"linger.ms", "0"}});
  internal::PeriodicLog limiter;
  // Takes from the twin until `n` records came or 10 s passed.
  auto take = [&](std::size_t n) {
    std::vector<Message> out;
    waitUntil(
        [&] {
          pipe->wait(5ms);
          pipe->drain();
          auto batch = twin.take(n - out.size(), limiter, {});
          EXPECT_TRUE(batch) << batch.error().message();
          if (batch) out.insert(out.end(), batch->begin(), batch->end());
          return out.size() >= n;
        },
        10s);
    return out;
  };
  internal::NextOffsets next;
  next.set(topic_, 2, 0);
  twin.heat(next);                       // partition 1's next offset is not known yet
  ASSERT_TRUE(twin.hot());
  produceN(*p, topic_, 2, 1, "a");
  auto first = take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].partition, 2);
  produceN(*p, topic_, 1, 1, "b");
  next.set(topic_, 1, 0);
  twin.heat(next);                       // still hot: partition 1 starts now
  auto second = take(1);
  ASSERT_EQ(second.size(), 1u) << "partition 1 was never started";
  EXPECT_EQ(second[0].partition, 1);
  EXPECT_EQ(second[0].value, "b0");
}

// GroupConsumer::lag(): high watermark (cached from the fetch that brought the records) minus
// the position, per assigned partition; empty partitions read 0 once fetched.
TEST_F(KafkaTest, GroupConsumerLagIsTheHighWatermarkMinusThePosition) {
  auto p = producer();
  produceN(*p, topic_, 1, 10);
  auto c = groupConsumer(uniqueName("g"));
  ASSERT_OK(c->subscribe({topic_}));
  auto got = readN(*c, 4, 15s);
  ASSERT_EQ(got.size(), 4u);
  std::optional<std::int64_t> lag;
  for (const auto& l : c->lag()) {
    EXPECT_EQ(l.topic, topic_);
    if (l.partition == 1) {
      lag = l.lag;
    } else {
      EXPECT_EQ(l.lag, 0) << l.partition;
    }
  }
  EXPECT_EQ(lag, 6);
  c->close();
  EXPECT_TRUE(c->lag().empty()) << "nothing is assigned once closed";
}

// The coordinator subscribes to td.registrations only and reads td.completions as a companion:
// the companion's partitions come and go with the subscription's, resume from the committed
// offset, and offsets stored with storeOffsets() are committed by librdkafka (here on close).
TEST_F(KafkaTest, CompanionPartitionsFollowTheAssignmentAndStoredOffsetsAreCommitted) {
  const auto companion = uniqueName("companion");
  ASSERT_OK(broker_->createTopic(companion, 3));
  auto p = producer();
  produceN(*p, topic_, 2, 1, "m");
  produceN(*p, companion, 2, 4, "c");
  const auto group = uniqueName("g");
  const Properties props = {{"partition.assignment.strategy", "cooperative-sticky"},
                            {"enable.auto.commit", "true"},
                            {"auto.commit.interval.ms", "100"}};
  {
    auto c = groupConsumer(group, props);
    std::vector<TopicPartitionOffset> heard;
    c->onRebalance([&](bool is_assign, const std::vector<TopicPartitionOffset>& parts) {
      if (is_assign) heard.insert(heard.end(), parts.begin(), parts.end());
    });
    c->setCompanions({companion});
    ASSERT_OK(c->subscribe({topic_}));
    auto got = readN(*c, 5, 15s);
    ASSERT_EQ(got.size(), 5u);
    int from_companion = 0;
    for (const auto& m : got) from_companion += m.topic == companion ? 1 : 0;
    EXPECT_EQ(from_companion, 4);
    ASSERT_EQ(heard.size(), 3u);   // the callback hears of subscribed partitions only
    for (const auto& tp : heard) EXPECT_EQ(tp.topic, topic_);
    // c0 and c1 processed; m0 not.
    ASSERT_OK(c->storeOffsets({{companion, 2, 2}}));
    c->close();
  }
  auto c2 = groupConsumer(group, props);
  c2->setCompanions({companion});
  ASSERT_OK(c2->subscribe({topic_}));
  auto rest = readN(*c2, 3, 15s);
  std::set<std::string> values;
  for (const auto& m : rest) values.insert(m.value);
  EXPECT_EQ(values, (std::set<std::string>{"m0", "c2", "c3"}));
  c2->close();
}

TEST_F(KafkaFaultTest, ProduceWhileTheBrokerIsDownIsDeliveredAfterItIsBackUp) {
  auto p = producer();
  produceN(*p, topic_, 0, 1, "before");  // connected, with an idempotent producer id
  ASSERT_OK(broker_->setBrokerDown(1));
  bool done = false;
  td::Status result;
  ASSERT_OK(
      p->produce(topic_, 0, "k", "during", [&](const td::Status& s, std::int32_t, std::int64_t) {
        done = true;
        result = s;
      }));
  p->poll(300);
  EXPECT_FALSE(done);
  ASSERT_OK(broker_->setBrokerUp(1));
  ASSERT_OK(p->flush(15s));
  ASSERT_TRUE(done);
  EXPECT_TRUE(result) << result.error().message();

  auto r = reader();
  ASSERT_OK(r->assign({{topic_, 0, kOffsetBeginning}}));
  auto got = readN(*r, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].value, "before0");
  EXPECT_EQ(got[1].value, "during");
}

TEST_F(KafkaFaultTest, InjectedProduceErrorsAreRetried) {
  auto p = producer();
  broker_->pushRequestErrors(/*Produce=*/0, {static_cast<int>(Errc::kNotLeaderForPartition),
                                             static_cast<int>(Errc::kNotEnoughReplicas)});
  produceN(*p, topic_, 0, 3);
  auto r = reader();
  ASSERT_OK(r->assign({{topic_, 0, kOffsetBeginning}}));
  EXPECT_EQ(readN(*r, 3).size(), 3u);
}

TEST_F(KafkaTest, EmbeddedBrokerValidatesItsArguments) {
  EXPECT_EQ(broker_->setBrokerDown(2).error().code(), Errc::kInvalidArg);  // only broker 1
  EXPECT_EQ(broker_->setRtt(0, 5).error().code(), Errc::kInvalidArg);
  EXPECT_EQ(broker_->createTopic(topic_, 2).error().code(), Errc::kTopicAlreadyExists);
  EXPECT_EQ(broker_->createTopic("x", 0).error().code(), Errc::kInvalidArg);
  ASSERT_OK(broker_->setRtt(1, 0));
  const auto topic = uniqueName("made");
  ASSERT_OK(broker_->createTopic(topic, 6));
  EXPECT_EQ(*producer()->partitionCount(topic, 5s), 6);
}

// Nagle's algorithm is off on the embedded broker's sockets (see setNoDelayOnListeners): on its
// listeners, and so on every connection it accepts. The broker runs in this process, so the
// test finds its sockets among its own descriptors.
TEST(EmbeddedBrokerTest, ListenersAndAcceptedConnectionsHaveNoDelay) {
  auto broker = EmbeddedBroker::start({.topics = {{"nodelay", 1}}});
  ASSERT_TRUE(broker) << broker.error().message();
  const std::string& bootstrap = (*broker)->bootstrapServers();
  const int port = std::atoi(bootstrap.substr(bootstrap.rfind(':') + 1).c_str());
  // A client connection, so the broker accepts one.
  auto p = Producer::create({{"bootstrap.servers", bootstrap}});
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_TRUE((*p)->partitionCount("nodelay", 10s)) << "connected";
  int listeners = 0, accepted = 0, with_nagle = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        addr.sin_family != AF_INET || ntohs(addr.sin_port) != port) {
      continue;
    }
    int listening = 0, nodelay = 0;
    socklen_t size = sizeof listening;
    ASSERT_EQ(::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size), 0);
    size = sizeof nodelay;
    ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &size), 0);
    (listening ? listeners : accepted) += 1;
    if (!nodelay) ++with_nagle;
  }
  EXPECT_EQ(listeners, 1);
  EXPECT_GE(accepted, 1);
  EXPECT_EQ(with_nagle, 0);
}

TEST(EmbeddedBrokerTest, SeveralBrokers) {
  auto broker = EmbeddedBroker::start({.brokers = 3, .topics = {{"a", 2}}});
  ASSERT_TRUE(broker) << broker.error().message();
  EXPECT_EQ(
      std::count((*broker)->bootstrapServers().begin(), (*broker)->bootstrapServers().end(), ','),
      2);
  ASSERT_OK((*broker)->setPartitionLeader("a", 0, 3));
  EXPECT_FALSE(EmbeddedBroker::start({.brokers = 0}));
}

}  // namespace
}  // namespace td::kafka
