#include "kafka/embedded_broker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stop_token>
#include <thread>

#include "kafka/internal/rdkafka.h"
// After rdkafka.h (which the line above includes), as rdkafka_mock.h requires.
#include <librdkafka/rdkafka_mock.h>

namespace td::kafka {

using namespace internal;

namespace {

using MockClusterPtr =
    std::unique_ptr<rd_kafka_mock_cluster_t,
                    Deleter<rd_kafka_mock_cluster_t, rd_kafka_mock_cluster_destroy>>;

// The ports in "127.0.0.1:P1,127.0.0.1:P2,...".
std::vector<int> portsOf(const std::string& bootstrap) {
  std::vector<int> ports;
  std::size_t start = 0;
  while (start < bootstrap.size()) {
    auto end = bootstrap.find(',', start);
    if (end == std::string::npos) end = bootstrap.size();
    auto colon = bootstrap.rfind(':', end - 1);
    if (colon != std::string::npos && colon > start) {
      ports.push_back(std::atoi(bootstrap.substr(colon + 1, end - colon - 1).c_str()));
    }
    start = end + 1;
  }
  return ports;
}

// librdkafka 2.0.2's mock cluster leaves Nagle's algorithm on for its sockets. With more than one
// request in flight on a connection, a small response then waits for the client's delayed ACK:
// about 40 ms per exchange (docs/performance.md measured 8 groups x 1 worker at 153 steps/s
// with it, 635 without). Linux sockets accepted from a listener inherit TCP_NODELAY, so it is
// set on the listeners, found among this process's descriptors by their ports. Returns how many
// listeners it set.
int setNoDelayOnListeners(const std::vector<int>& ports) {
  int set = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) continue;
    int port = 0;
    if (addr.ss_family == AF_INET) {
      port = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      port = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
    } else {
      continue;
    }
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) continue;
    int listening = 0;
    socklen_t size = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening) continue;
    const int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0) ++set;
  }
  return set;
}

// librdkafka 2.0.2's mock cluster thread sometimes misses the wake-up for a command posted to
// it (rd_kafka_mock_*, including its own destruction) and handles it only when its 1 s poll
// times out. Any socket activity wakes it, so while `call` runs, a helper thread connects to
// the brokers' listeners every few milliseconds. Returns what `call` returns.
template <typename Call>
auto withWakeups(const std::vector<int>& ports, Call&& call) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::jthread waker([&](std::stop_token stop) {
    std::unique_lock lock(mutex);
    while (true) {
      wake.wait_for(lock, stop, std::chrono::milliseconds(5), [] { return false; });
      if (stop.stop_requested()) return;
      for (int port : ports) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        [[maybe_unused]] int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::close(fd);
      }
    }
  });
  return call();
}

}  // namespace

struct EmbeddedBroker::Impl {
  HandlePtr host;          // the producer handle that owns the cluster's thread
  MockClusterPtr cluster;  // declared after `host`: destroyed first, as librdkafka requires
  std::string bootstrap;
  std::vector<int> ports;
  int brokers = 0;

  ~Impl() {
    if (cluster) withWakeups(ports, [&] { cluster.reset(); });
  }
  template <typename Call>
  auto call(Call&& c) {
    return withWakeups(ports, std::forward<Call>(c));
  }

  td::Status checkBroker(int broker_id) const {
    if (broker_id < 1 || broker_id > brokers) {
      return makeError(Errc::kInvalidArg, "no broker " + std::to_string(broker_id) +
                                              " (ids are 1.." + std::to_string(brokers) + ")");
    }
    return {};
  }
};

EmbeddedBroker::EmbeddedBroker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EmbeddedBroker::~EmbeddedBroker() = default;

td::Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::start(const Options& options) {
  if (options.brokers < 1) {
    return makeError(Errc::kInvalidArg, "EmbeddedBroker: brokers must be at least 1");
  }
  auto impl = std::make_unique<Impl>();
  impl->brokers = options.brokers;
  // The host handle has no bootstrap.servers and would warn about it (CONFWARN) and nothing
  // else of use: log errors only.
  auto conf = makeConf({{"log_level", "3"}, {"client.id", "td-embedded-broker"}}, {}, impl.get());
  if (!conf) return td::unexpected(conf.error());
  auto host = makeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!host) return td::unexpected(host.error());
  impl->host = std::move(*host);
  impl->cluster.reset(rd_kafka_mock_cluster_new(impl->host.get(), options.brokers));
  if (!impl->cluster) return makeError(Errc::kFail, "EmbeddedBroker: could not start the cluster");
  impl->bootstrap = rd_kafka_mock_cluster_bootstraps(impl->cluster.get());
  impl->ports = portsOf(impl->bootstrap);
  if (const int set = setNoDelayOnListeners(impl->ports); set != options.brokers) {
    logger()->warn("embedded broker: TCP_NODELAY set on {} of {} listeners", set, options.brokers);
  }
  std::unique_ptr<EmbeddedBroker> broker(new EmbeddedBroker(std::move(impl)));
  for (const auto& [topic, partitions] : options.topics) {
    TD_RETURN_IF_ERROR(broker->createTopic(topic, partitions));
  }
  return broker;
}

const std::string& EmbeddedBroker::bootstrapServers() const { return impl_->bootstrap; }

int EmbeddedBroker::brokerCount() const { return impl_->brokers; }

td::Status EmbeddedBroker::setBrokerDown(int broker_id) {
  TD_RETURN_IF_ERROR(impl_->checkBroker(broker_id));
  if (auto err = impl_->call(
          [&] { return rd_kafka_mock_broker_set_down(impl_->cluster.get(), broker_id); });
      err) {
    return rdKafkaError(err, "broker " + std::to_string(broker_id) + " down");
  }
  return {};
}

td::Status EmbeddedBroker::setBrokerUp(int broker_id) {
  TD_RETURN_IF_ERROR(impl_->checkBroker(broker_id));
  if (auto err =
          impl_->call([&] { return rd_kafka_mock_broker_set_up(impl_->cluster.get(), broker_id); });
      err) {
    return rdKafkaError(err, "broker " + std::to_string(broker_id) + " up");
  }
  setNoDelayOnListeners(impl_->ports);   // in case the listener was opened again
  return {};
}

td::Status EmbeddedBroker::setRtt(int broker_id, int rtt_ms) {
  TD_RETURN_IF_ERROR(impl_->checkBroker(broker_id));
  if (rtt_ms < 0) return makeError(Errc::kInvalidArg, "rtt must not be negative");
  if (auto err = impl_->call(
          [&] { return rd_kafka_mock_broker_set_rtt(impl_->cluster.get(), broker_id, rtt_ms); });
      err) {
    return rdKafkaError(err, "broker " + std::to_string(broker_id) + " rtt");
  }
  return {};
}

void EmbeddedBroker::pushRequestErrors(int api_key, const std::vector<int>& errors) {
  if (errors.empty()) return;
  std::vector<rd_kafka_resp_err_t> codes(errors.size());
  std::transform(errors.begin(), errors.end(), codes.begin(),
                 [](int e) { return static_cast<rd_kafka_resp_err_t>(e); });
  impl_->call([&] {
    rd_kafka_mock_push_request_errors_array(
        impl_->cluster.get(), static_cast<std::int16_t>(api_key), codes.size(), codes.data());
  });
}

td::Status EmbeddedBroker::setPartitionLeader(const std::string& topic, int partition,
                                              int broker_id) {
  TD_RETURN_IF_ERROR(impl_->checkBroker(broker_id));
  if (auto err = impl_->call([&] {
        return rd_kafka_mock_partition_set_leader(impl_->cluster.get(), topic.c_str(), partition,
                                                  broker_id);
      });
      err) {
    return rdKafkaError(err, "leader of " + topic + "[" + std::to_string(partition) + "]");
  }
  return {};
}

td::Status EmbeddedBroker::createTopic(const std::string& topic, int partitions) {
  if (topic.empty() || partitions < 1) {
    return makeError(Errc::kInvalidArg,
                     "topic '" + topic + "': needs a name and at least 1 partition");
  }
  const int replication = std::min(impl_->brokers, 3);
  if (auto err = impl_->call([&] {
        return rd_kafka_mock_topic_create(impl_->cluster.get(), topic.c_str(), partitions,
                                          replication);
      });
      err) {
    return rdKafkaError(err, "create topic " + topic);
  }
  return {};
}

}  // namespace td::kafka
