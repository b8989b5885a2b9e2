#include "simulation/memory_bus.h"

#include <algorithm>

namespace td::sim {

MemoryBus::MemoryBus(Scheduler& scheduler, BusOptions options)
    : scheduler_(scheduler), options_(std::move(options)) {}

int MemoryBus::partitionCount(const std::string& topic) const {
  return topic.rfind(options_.topics.assign(""), 0) == 0 ? 1 : options_.partitions;
}

const std::vector<kafka::Message>& MemoryBus::log(const std::string& topic,
                                                  std::int32_t partition) {
  auto& partitions = topics_[topic];
  if (partitions.empty()) partitions.resize(static_cast<std::size_t>(partitionCount(topic)));
  return partitions.at(static_cast<std::size_t>(partition));
}

std::int64_t MemoryBus::append(const std::string& topic, std::int32_t partition,
                               const std::string& key, const std::string& value) {
  partition = partitionOf(topic, partition, key);
  log(topic, partition);   // creates the topic
  auto& records = topics_[topic][static_cast<std::size_t>(partition)];
  kafka::Message msg;
  msg.topic = topic;
  msg.partition = partition;
  msg.offset = static_cast<std::int64_t>(records.size());
  msg.key = key;
  msg.value = value;
  msg.timestamp_ms = scheduler_.now().count();
  records.push_back(std::move(msg));
  return records.back().offset;
}

std::vector<std::string> MemoryBus::topicsWithPrefix(const std::string& prefix) const {
  std::vector<std::string> out;
  for (const auto& [name, partitions] : topics_) {
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  return out;
}

int MemoryBus::join(Scheduler::ActorId actor) {
  const int id = next_member_++;
  members_[id].actor = actor;
  members_[id].last_seen = scheduler_.now();
  return id;
}

void MemoryBus::revoked(int member, std::int32_t partition, Revocation::Reason reason) {
  revocations_.push_back({scheduler_.name(members_.at(member).actor), partition, scheduler_.now(),
                          reason});
}

void MemoryBus::leave(int member) {
  auto it = members_.find(member);
  if (it == members_.end()) return;
  for (auto p : it->second.owned) {
    revoked(member, p, Revocation::kMoved);
    if (auto o = owner_.find(p); o != owner_.end() && o->second == member) owner_.erase(o);
  }
  members_.erase(it);
}

bool MemoryBus::inGroup(int member) const {
  auto it = members_.find(member);
  return it != members_.end() && it->second.in_group && !it->second.dropped;
}

std::set<std::int32_t> MemoryBus::target(int member) const {
  std::vector<int> ids;
  for (const auto& [id, m] : members_) {
    if (m.in_group && !m.dropped) ids.push_back(id);
  }
  std::set<std::int32_t> mine;
  if (ids.empty()) return mine;
  const int n = options_.partitions;
  const int base = n / static_cast<int>(ids.size());
  const int extra = n % static_cast<int>(ids.size());
  std::map<int, int> room;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    room[ids[i]] = base + (static_cast<int>(i) < extra ? 1 : 0);
  }
  std::map<std::int32_t, int> assignment;
  // Sticky: owners keep what fits their share.
  for (std::int32_t p = 0; p < n; ++p) {
    auto o = owner_.find(p);
    if (o == owner_.end()) continue;
    auto r = room.find(o->second);
    if (r == room.end() || r->second == 0) continue;
    assignment[p] = o->second;
    --r->second;
  }
  for (std::int32_t p = 0; p < n; ++p) {
    if (assignment.contains(p)) continue;
    for (int id : ids) {
      if (room[id] > 0) {
        assignment[p] = id;
        --room[id];
        break;
      }
    }
  }
  for (const auto& [p, id] : assignment) {
    if (id == member) mine.insert(p);
  }
  return mine;
}

bool MemoryBus::assigning(int member) const {
  const auto& m = members_.at(member);
  const auto t = target(member);
  for (auto p : m.owned) {
    if (!t.contains(p)) return true;
  }
  for (auto p : t) {
    if (!m.owned.contains(p) && !owner_.contains(p)) return true;
  }
  return false;
}

bool MemoryBus::rebalancePending(int member) const {
  auto it = members_.find(member);
  if (it == members_.end()) return false;
  if (it->second.dropped) return true;
  return assigning(member);
}

MemoryBus::Rebalance MemoryBus::rebalance(int member) {
  Rebalance out;
  auto it = members_.find(member);
  if (it == members_.end()) return out;
  Member& m = it->second;
  if (m.dropped) {
    for (auto p : m.owned) revoked(member, p, m.dropped_for);
    out.revoked.assign(m.owned.begin(), m.owned.end());
    m.owned.clear();
    m.stored.clear();
    m.dropped = false;
    m.in_group = true;
    ++rebalances_;
    return out;
  }
  const auto t = target(member);
  std::set<std::int32_t> leaving;
  for (auto p : m.owned) {
    if (!t.contains(p)) leaving.insert(p);
  }
  if (!leaving.empty()) {
    commit(member, leaving);   // librdkafka commits what was stored for revoked partitions
    for (auto p : leaving) {
      m.owned.erase(p);
      owner_.erase(p);
      out.revoked.push_back(p);
      revoked(member, p, Revocation::kMoved);
    }
  }
  for (auto p : t) {
    if (m.owned.contains(p) || owner_.contains(p)) continue;
    owner_[p] = member;
    m.owned.insert(p);
    out.assigned.push_back(p);
  }
  if (!out.revoked.empty() || !out.assigned.empty()) ++rebalances_;
  return out;
}

const std::set<std::int32_t>& MemoryBus::owned(int member) const {
  static const std::set<std::int32_t> kNone;
  auto it = members_.find(member);
  return it == members_.end() ? kNone : it->second.owned;
}

void MemoryBus::store(int member, const std::string& topic, std::int32_t partition,
                      std::int64_t next) {
  auto it = members_.find(member);
  if (it == members_.end()) return;
  auto& stored = it->second.stored[{topic, partition}];
  stored = std::max(stored, next);
  if (!options_.bug_stale_generation_commit || it->second.dropped) return;
  if (!assigning(member)) {
    commit(member, it->second.owned);
    return;
  }
  // The commit carries the generation from before the rebalance: the group coordinator
  // refuses it, and librdkafka drops the whole assignment and joins again.
  for (auto p : it->second.owned) owner_.erase(p);
  it->second.dropped = true;
  it->second.dropped_for = Revocation::kRefusedCommit;
}

void MemoryBus::commit(int member, const std::set<std::int32_t>& partitions) {
  auto it = members_.find(member);
  if (it == members_.end() || !it->second.in_group || it->second.dropped || down()) return;
  Member& m = it->second;
  for (auto s = m.stored.begin(); s != m.stored.end();) {
    const auto p = s->first.second;
    if (partitions.contains(p) && m.owned.contains(p)) {
      auto& c = committed_[s->first];
      c = std::max(c, s->second);
      s = m.stored.erase(s);
    } else {
      ++s;
    }
  }
}

std::int64_t MemoryBus::committed(const std::string& topic, std::int32_t partition) const {
  auto it = committed_.find({topic, partition});
  return it == committed_.end() ? -1 : it->second;
}

Millis MemoryBus::expireMembers() {
  const Millis now = scheduler_.now();
  Millis next = kNever;
  for (auto& [id, m] : members_) {
    if (!m.in_group || m.dropped) continue;
    // The heartbeat thread: beats while the process runs and the broker answers.
    if (!down() && scheduler_.alive(m.actor) && !scheduler_.frozen(m.actor)) {
      m.last_seen = now;
      continue;
    }
    const Millis due = m.last_seen + options_.session_timeout;
    if (now >= due) {
      m.dropped = true;
      m.dropped_for = Revocation::kDropped;
      for (auto p : m.owned) {
        if (auto o = owner_.find(p); o != owner_.end() && o->second == id) owner_.erase(o);
      }
    } else {
      next = std::min(next, due);
    }
  }
  return next;
}

}  // namespace td::sim
