#include "simulation/memory_port.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kafka/error.h"

namespace td::sim {

namespace {

td::Unexpected<td::Error> downError(const std::string& what) {
  return makeError(td::Errc::kUnavailable, what + ": the broker does not answer (simulated)");
}

// A partition reader over the bus (td.state on restore).
class MemoryReader final : public coordinator::LogReader {
 public:
  explicit MemoryReader(MemoryBus& bus) : bus_(bus) {}
  td::Status assign(const std::vector<kafka::TopicPartitionOffset>& partitions) override {
    positions_.clear();
    for (const auto& p : partitions) {
      positions_[{p.topic, p.partition}] = std::max<std::int64_t>(p.offset, 0);
    }
    return {};
  }
  td::Result<std::vector<kafka::Message>> poll(std::size_t max, Millis wait) override {
    auto& s = bus_.scheduler();
    s.hop();
    const Millis deadline = s.now() + wait;
    while (true) {
      std::vector<kafka::Message> out;
      if (!bus_.down()) {
        for (auto& [tp, next] : positions_) {
          const auto& log = bus_.log(tp.first, tp.second);
          while (out.size() < max && next < static_cast<std::int64_t>(log.size())) {
            out.push_back(log[static_cast<std::size_t>(next++)]);
          }
        }
      }
      if (!out.empty() || s.now() >= deadline) return out;
      s.await(deadline, [this] { return available(); });
    }
  }
  std::int64_t position(const std::string& topic, std::int32_t partition) override {
    auto it = positions_.find({topic, partition});
    return it == positions_.end() ? -1 : it->second;
  }
  td::Result<std::pair<std::int64_t, std::int64_t>> watermarks(const std::string& topic,
                                                               std::int32_t partition,
                                                               Millis timeout) override {
    auto& s = bus_.scheduler();
    s.hop();
    if (bus_.down()) {
      s.await(s.now() + timeout, [this] { return !bus_.down(); });
      if (bus_.down()) return downError("watermarks");
    }
    return std::pair<std::int64_t, std::int64_t>{0, bus_.high(topic, partition)};
  }

 private:
  bool available() {
    if (bus_.down()) return false;
    for (auto& [tp, next] : positions_) {
      if (next < bus_.high(tp.first, tp.second)) return true;
    }
    return false;
  }
  MemoryBus& bus_;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> positions_;
};

}  // namespace

MemoryPort::MemoryPort(MemoryBus& bus)
    : bus_(bus), scheduler_(bus.scheduler()), state_reader_(std::make_unique<MemoryReader>(bus)) {}

MemoryPort::~MemoryPort() {
  // Whatever is still queued belongs to a coordinator that crashed (a clean stop flushed):
  // the broker had a prefix of each partition's records, the rest never reached it.
  std::map<std::pair<std::string, std::int32_t>, bool> cut;
  for (const auto& q : queued_) {
    const std::int32_t partition = bus_.partitionOf(q.topic, q.partition, q.key);
    bool& stopped = cut[{q.topic, partition}];
    if (stopped || scheduler_.rng().chance(40)) {
      stopped = true;
      continue;
    }
    bus_.append(q.topic, partition, q.key, q.value);
  }
}

td::Status MemoryPort::unsupported() {
  return makeError(td::Errc::kInvalidArgument, "transactions are not simulated");
}

bool MemoryPort::awaitBroker(Millis deadline) {
  if (!bus_.down()) return true;
  scheduler_.await(deadline, [this] { return !bus_.down(); });
  return !bus_.down();
}

td::Result<int> MemoryPort::partitionCount(const std::string& topic, Millis timeout) {
  scheduler_.hop();
  if (!awaitBroker(scheduler_.now() + timeout)) return downError("metadata");
  return bus_.partitionCount(topic);
}

void MemoryPort::pause(Millis duration) { scheduler_.sleep(duration); }

td::Status MemoryPort::subscribe() {
  scheduler_.hop();
  if (member_ < 0) member_ = bus_.join(scheduler_.current());
  return {};
}

void MemoryPort::leaveGroup() {
  if (member_ < 0) return;
  std::vector<kafka::TopicPartitionOffset> revoked;
  for (auto p : bus_.owned(member_)) {
    revoked.push_back({bus_.options().topics.registrations(), p, 0});
    revoked.push_back({bus_.options().topics.completions(), p, 0});
  }
  bus_.commit(member_, bus_.owned(member_));
  if (!revoked.empty() && listener_) listener_(false, revoked);
  bus_.leave(member_);
  member_ = -1;
  positions_.clear();
}

std::vector<std::pair<std::string, std::int32_t>> MemoryPort::inputs() const {
  std::vector<std::pair<std::string, std::int32_t>> out;
  if (member_ < 0) return out;
  for (auto p : bus_.owned(member_)) {
    out.emplace_back(bus_.options().topics.registrations(), p);
    out.emplace_back(bus_.options().topics.completions(), p);
  }
  return out;
}

bool MemoryPort::inputAvailable() {
  if (bus_.down()) return false;
  for (const auto& tp : inputs()) {
    auto it = positions_.find(tp);
    if (it != positions_.end() && it->second < bus_.high(tp.first, tp.second)) return true;
  }
  return false;
}

void MemoryPort::applyRebalance() {
  if (member_ < 0 || bus_.down()) return;
  const auto change = bus_.rebalance(member_);
  const auto& topics = bus_.options().topics;
  if (bus_.options().trace && (!change.revoked.empty() || !change.assigned.empty())) {
    fmt::print(stderr, "[{:>7} ms] {}: revoked [{}] assigned [{}]\n", scheduler_.now().count(),
               scheduler_.name(scheduler_.current()), fmt::join(change.revoked, ","),
               fmt::join(change.assigned, ","));
  }
  if (!change.revoked.empty()) {
    std::vector<kafka::TopicPartitionOffset> tps;
    for (auto p : change.revoked) {
      for (const auto& topic : {topics.registrations(), topics.completions()}) {
        positions_.erase({topic, p});
        tps.push_back({topic, p, 0});
      }
    }
    if (listener_) listener_(false, tps);
  }
  if (!change.assigned.empty()) {
    std::vector<kafka::TopicPartitionOffset> tps;
    for (auto p : change.assigned) {
      for (const auto& topic : {topics.registrations(), topics.completions()}) {
        const std::int64_t from = std::max<std::int64_t>(bus_.committed(topic, p), 0);
        positions_[{topic, p}] = from;
        tps.push_back({topic, p, from});
      }
    }
    if (listener_) listener_(true, tps);
  }
}

td::Result<std::vector<kafka::Message>> MemoryPort::poll(std::size_t max, Millis wait) {
  scheduler_.hop(Millis(1));
  const Millis deadline = scheduler_.now() + wait;
  while (true) {
    applyRebalance();
    if (member_ >= 0 && !bus_.down() && scheduler_.rng().chance(70)) {
      bus_.commit(member_, bus_.owned(member_));   // librdkafka's auto-commit timer
    }
    std::vector<kafka::Message> out;
    if (!bus_.down()) {
      // Each partition in offset order; across partitions, a random interleaving.
      std::vector<std::pair<std::string, std::int32_t>> ready;
      for (const auto& tp : inputs()) {
        auto it = positions_.find(tp);
        if (it != positions_.end() && it->second < bus_.high(tp.first, tp.second)) {
          ready.push_back(tp);
        }
      }
      while (!ready.empty() && out.size() < max) {
        const std::size_t i = scheduler_.rng().below(ready.size());
        auto& next = positions_[ready[i]];
        const auto& log = bus_.log(ready[i].first, ready[i].second);
        out.push_back(log[static_cast<std::size_t>(next++)]);
        if (next >= static_cast<std::int64_t>(log.size()) || scheduler_.rng().chance(10)) {
          ready.erase(ready.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
    }
    if (!out.empty() || scheduler_.now() >= deadline) return out;
    scheduler_.await(deadline, [this] {
      return inputAvailable() || (member_ >= 0 && !bus_.down() && bus_.rebalancePending(member_));
    });
  }
}

td::Status MemoryPort::storeOffsets(const std::vector<kafka::TopicPartitionOffset>& offsets) {
  if (member_ < 0) return makeError(td::Errc::kInvalidArgument, "not subscribed");
  for (const auto& o : offsets) bus_.store(member_, o.topic, o.partition, o.offset);
  scheduler_.hop(Millis(1));
  return {};
}

std::vector<kafka::TopicPartitionOffset> MemoryPort::positions() {
  std::vector<kafka::TopicPartitionOffset> out;
  for (const auto& [tp, next] : positions_) out.push_back({tp.first, tp.second, next});
  return out;
}

td::Status MemoryPort::produce(const std::string& topic, std::int32_t partition,
                               const std::string& key, const std::string& value,
                               Delivery on_delivery) {
  queued_.push_back({topic, partition, key, value, std::move(on_delivery)});
  return {};
}

td::Status MemoryPort::flush(Millis timeout) {
  if (queued_.empty()) return {};
  if (auto length = bus_.takeFreeze(scheduler_.current())) {
    scheduler_.freeze(scheduler_.current(), scheduler_.now() + *length);
  }
  const Millis deadline = scheduler_.now() + timeout;
  scheduler_.hop(Millis(3));
  if (!awaitBroker(deadline)) {
    return makeError(kafka::Errc::kTimedOut, "flush: the broker does not answer (simulated)");
  }
  struct Written {
    Delivery on_delivery;
    std::int32_t partition;
    std::int64_t offset;
  };
  std::vector<Written> written;
  for (auto& q : queued_) {
    const std::int32_t partition = bus_.partitionOf(q.topic, q.partition, q.key);
    const std::int64_t offset = bus_.append(q.topic, partition, q.key, q.value);
    written.push_back({std::move(q.on_delivery), partition, offset});
  }
  queued_.clear();
  scheduler_.hop(Millis(2));   // a crash here: written, never acknowledged
  for (auto& w : written) {
    if (w.on_delivery) w.on_delivery(td::Status{}, w.partition, w.offset);
  }
  return {};
}

td::Status MemoryPort::renewProducers() {
  auto queued = std::move(queued_);
  queued_.clear();
  for (auto& q : queued) {
    if (q.on_delivery) q.on_delivery(makeError(td::Errc::kUnavailable, "purged"), -1, -1);
  }
  return {};
}

void MemoryPort::askFlow(std::int32_t partition) {
  flow_asks_.try_emplace(partition, scheduler_.now() + scheduler_.rng().between(Millis(1), Millis(5)));
}

std::vector<coordinator::Port::FlowAnswer> MemoryPort::flowAnswers() {
  std::vector<FlowAnswer> out;
  const auto& topic = bus_.options().topics.registrations();
  for (auto it = flow_asks_.begin(); it != flow_asks_.end();) {
    if (it->second > scheduler_.now()) {
      ++it;
      continue;
    }
    FlowAnswer a;
    a.partition = it->first;
    if (bus_.down()) {
      a.error = "the broker does not answer (simulated)";
    } else {
      a.high = bus_.high(topic, it->first);
      a.committed = bus_.committed(topic, it->first);
    }
    out.push_back(std::move(a));
    it = flow_asks_.erase(it);
  }
  return out;
}

}  // namespace td::sim
