#include "coordinator/core.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/check.h"
#include "common/hash.h"
#include "coordinator/validate.h"

namespace td::coordinator {

namespace {

// Every change ref a peer carries (own and built on), qualified by repository, without repeats.
std::vector<std::string> changeRefs(const td::v1::PeerRegistered& peer) {
  std::vector<std::string> refs;
  for (const auto& repo : peer.repos()) {
    refs.push_back(protocol::qualifiedRef(repo.repository(), repo.change_ref()));
    for (const auto& ref : repo.builds_on()) {
      refs.push_back(protocol::qualifiedRef(repo.repository(), ref));
    }
  }
  std::sort(refs.begin(), refs.end());
  refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
  return refs;
}

// Kafka topic names allow [A-Za-z0-9._-]; group ids become topic names.
std::string topicSafe(std::string_view text, std::size_t max_len) {
  std::string out;
  for (char c : text.substr(0, max_len)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  return out;
}

}  // namespace

Core::Core(CoreConfig config) : config_(std::move(config)) {}

Effects Core::handle(const Input& input, Instant now) {
  Effects out;
  // Flow of the partition the input was read from (td.registrations only: see Flow).
  if (const auto* reg = std::get_if<Registration>(&input)) noteFlow(reg->partition, now);
  if (const auto* up = std::get_if<PartitionCaughtUp>(&input)) noteFlow(up->partition, now);
  if (const auto* hb = std::get_if<td::v1::PeerHeartbeat>(&input)) {
    noteFlowOfGroup(hb->group_id(), now);
  }
  if (const auto* left = std::get_if<td::v1::PeerLeft>(&input)) {
    noteFlowOfGroup(left->group_id(), now);
  }
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Registration>) onRegistration(msg, now, out);
        if constexpr (std::is_same_v<T, td::v1::PeerHeartbeat>) onHeartbeat(msg, now, out);
        if constexpr (std::is_same_v<T, td::v1::PeerLeft>) onLeft(msg, now, out);
        if constexpr (std::is_same_v<T, td::v1::StepStarted>) onStarted(msg, now, out);
        if constexpr (std::is_same_v<T, td::v1::StepFinished>) onFinished(msg, now, out);
        if constexpr (std::is_same_v<T, td::v1::UniverseStarted>) onUniverseStarted(msg, now, out);
        if constexpr (std::is_same_v<T, td::v1::UniverseFinished>) {
          onUniverseFinished(msg, now, out);
        }
        if constexpr (std::is_same_v<T, Tick>) onTick(now, out);
        if constexpr (std::is_same_v<T, td::v1::CancelGroup>) onCancel(msg, now, out);
      },
      input);
  return out;
}

const Group* Core::findGroupForTest(const std::string& group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : it->second.get();
}

std::string Core::groupOfPeerForTest(const std::string& peer_id) const {
  auto it = peers_.find(peer_id);
  return it == peers_.end() ? std::string() : it->second.group_id;
}

std::string Core::learnStepStats(std::string_view key, const td::v1::StepStats& stats) {
  if (!config_.step_stats) return {};
  if (std::string problem = validateStepStats(key, stats); !problem.empty()) {
    return "invalid step stats: " + problem;
  }
  (void)durations_.merge(stats);
  return {};
}

void Core::reply(const td::v1::PeerRegistered& peer, std::int32_t partition, const Group& group,
                 Effects& out) const {
  PublishJoin join{.partition = partition, .key = peer.compatibility_key()};
  join.record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *join.record.mutable_joined() = group.joinedReply(peer);
  out.emplace_back(std::move(join));
}

void Core::reject(const td::v1::PeerRegistered& peer, std::int32_t partition,
                  const std::string& reason, Effects& out) const {
  PublishJoin join{.partition = partition, .key = peer.compatibility_key()};
  join.record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& rejected = *join.record.mutable_rejected();
  rejected.set_peer_id(peer.peer_id());
  rejected.set_session_id(peer.session_id());
  rejected.set_reason(reason);
  out.emplace_back(std::move(join));
}

namespace {
std::string sessionKey(const std::string& peer_id, const std::string& session_id) {
  return "session\n" + peer_id + "\n" + session_id;
}
}  // namespace

void Core::tombstone(const std::string& key, Millis until) {
  tombstones_[key] = until;
  tombstone_expiry_.emplace(until, key);
}

void Core::onRegistration(const Registration& input, Instant now, Effects& out) {
  const auto& peer = input.peer;
  if (std::string problem = validateRegistration(peer); !problem.empty()) {
    out.emplace_back(DeadLetter{.reason = "invalid registration: " + problem});
    reject(peer, input.partition, problem, out);
    return;
  }
  if (isTombstoned(sessionKey(peer.peer_id(), peer.session_id()))) {
    // A replay (or a very late retry) of a session whose group finished and was forgotten.
    out.emplace_back(DeadLetter{.reason = "stale registration: the group of session " +
                                          peer.session_id() + " finished and was forgotten"});
    reject(peer, input.partition,
           "this session's group finished and was forgotten; register with a new session", out);
    return;
  }

  if (auto it = peers_.find(peer.peer_id()); it != peers_.end()) {
    Group& current = *groups_.at(it->second.group_id);
    if (it->second.session_id == peer.session_id()) {
      // A repeated registration (the worker retried, or the input was replayed).
      if (!current.isPresentSession(peer.peer_id(), peer.session_id()) &&
          (current.status() == td::v1::GROUP_STATUS_RUNNING ||
           current.status() == td::v1::GROUP_STATUS_ABANDONED)) {
        // It left or was declared lost: re-admitting a session that is gone would hand it work
        // it will never do. A live worker must come back with a new session.
        current.ignore("duplicate_registration", "the session left or was declared lost",
                       peer.peer_id(), "", 0, now, out);
        reject(peer, input.partition,
               "this session left or was declared lost; register with a new session", out);
        return;
      }
      current.ignore("duplicate_registration", "already a member", peer.peer_id(), "", 0, now,
                     out);
      reply(peer, input.partition, current, out);
      return;
    }
    if (peer.sent_at_ms() < it->second.sent_at_ms) {
      // An earlier session than the current one (a replay): it must not evict the live one.
      current.ignore("stale_session", "registration of an earlier session of this peer",
                     peer.peer_id(), "", 0, now, out);
      reject(peer, input.partition, "a newer session of this peer id is registered", out);
      return;
    }
    // A new session of a known peer replaces the old one, whose running step is aborted (the
    // old process may still run: a CI job retried while its first run is alive) and re-queued.
    tombstone(sessionKey(peer.peer_id(), it->second.session_id), now.mono + refusalPeriod());
    const bool was_running = !current.finishedAt().has_value();
    current.replaceMember(peer.peer_id(), peer.session_id(), now, out);
    if (was_running && current.finishedAt()) scheduleExpiry(current);
    watchMembers(current);   // the new session may join another group
    peers_.erase(it);
  }

  const std::string key = peer.compatibility_key();
  const std::vector<std::string> refs = changeRefs(peer);
  std::uint32_t shared = 0;
  Group* group = peer.complex() ? nullptr : chooseGroup(peer, refs, now, &shared);
  if (group == nullptr) {
    std::string id = newGroupId(peer, key);
    std::vector<td::v1::StepSpec> specs(peer.steps().begin(), peer.steps().end());
    for (auto& spec : specs) *spec.mutable_retry() = protocol::retryPolicyOf(spec);
    auto created = std::make_unique<Group>(id, key, next_ordinal_++, input.partition,
                                           epochOf(input.partition), peer,
                                           step_tables_.intern(std::move(specs)), config_,
                                           timers_, durationsForGroups(), now, out);
    group = created.get();
    group->attach(&census_);
    ++census_.groups_created_total;
    groups_.emplace(id, std::move(created));
  }
  group->addMember(peer, refs, shared, now, out);
  indexRefs(families_[key], *group, refs);
  peers_[peer.peer_id()] = PeerRecord{peer.session_id(), group->id(), peer.sent_at_ms()};
  reply(peer, input.partition, *group, out);
  if (group->finishedAt()) scheduleExpiry(*group);
}

Group* Core::chooseGroup(const td::v1::PeerRegistered& peer, const std::vector<std::string>& refs,
                         Instant now, std::uint32_t* shared) {
  auto family_it = families_.find(peer.compatibility_key());
  if (family_it == families_.end()) return nullptr;
  // Count, per candidate group, how many of the peer's refs its members carry.
  std::unordered_map<std::string, std::uint32_t> overlap;
  for (const auto& ref : refs) {
    auto it = family_it->second.groups_by_ref.find(ref);
    if (it == family_it->second.groups_by_ref.end()) continue;
    for (const auto& group_id : it->second) ++overlap[group_id];
  }
  // A completed group built its members' changes and nothing else: joining it (and running
  // no step) is right only for a peer of one of those changes, such as a late job of the same
  // pipeline. A change built on top of them gets a group of its own.
  auto builtByGroup = [&](const Group& group) {
    return std::all_of(peer.repos().begin(), peer.repos().end(), [&](const auto& repo) {
      return group.refs().contains(protocol::qualifiedRef(repo.repository(), repo.change_ref()));
    });
  };
  Group* best = nullptr;
  std::uint32_t best_overlap = 0;
  for (const auto& [group_id, count] : overlap) {
    Group& candidate = *groups_.at(group_id);
    const bool joinable =
        candidate.status() == td::v1::GROUP_STATUS_RUNNING ||
        (candidate.status() == td::v1::GROUP_STATUS_COMPLETED &&
         now.mono < *candidate.finishedAt() + config_.finished_group_retention &&
         builtByGroup(candidate));
    if (!joinable) continue;
    if (count > best_overlap ||
        (count == best_overlap && best != nullptr && candidate.ordinal() < best->ordinal())) {
      best = &candidate;
      best_overlap = count;
    }
  }
  *shared = best_overlap;
  return best;
}

std::string Core::newGroupId(const td::v1::PeerRegistered& peer, const std::string& key) const {
  // Never an id a forgotten group had (tombstoned): its events would be numbered again.
  // Deterministic in the input: a replay of the same registrations names the same groups.
  const std::string base =
      topicSafe(peer.schema_name(), 60) + "-" +
      hex64(fnv1a64(key + "\n" + peer.peer_id() + "\n" + peer.session_id())).substr(0, 12);
  std::string id = base;
  for (int n = 2; groups_.contains(id) || isTombstoned("group\n" + id); ++n) {
    id = base + "-" + std::to_string(n);
  }
  return id;
}

void Core::indexRefs(Family& family, const Group& group, const std::vector<std::string>& refs) {
  for (const auto& ref : refs) {
    auto& ids = family.groups_by_ref[ref];
    if (std::find(ids.begin(), ids.end(), group.id()) == ids.end()) ids.push_back(group.id());
  }
}

Millis Core::retentionOf(const Group& group) const {
  return group.status() == td::v1::GROUP_STATUS_ABANDONED ? Millis(0)
                                                          : config_.finished_group_retention;
}

void Core::scheduleExpiry(const Group& group) {
  TD_CHECK(group.finishedAt().has_value());
  expiry_.emplace(*group.finishedAt() + retentionOf(group), group.id());
}

void Core::watchMembers(const Group& group) {
  const auto since = group.memberlessSince();
  if (!since || config_.abandoned_group_timeout <= Millis(0)) return;
  abandon_.emplace(*since + config_.abandoned_group_timeout, group.id());
}

void Core::abandonDue(Instant now, Effects& out) {
  while (!abandon_.empty() && abandon_.begin()->first <= now.mono) {
    const std::string group_id = abandon_.begin()->second;
    abandon_.erase(abandon_.begin());
    auto it = groups_.find(group_id);
    if (it == groups_.end()) continue;
    Group& group = *it->second;
    // A member joined since (or it finished, or a later spell is due later): not now.
    const auto since = group.memberlessSince();
    if (!since || *since + config_.abandoned_group_timeout > now.mono) continue;
    group.abandon(now, out);
    // Forgotten at the next tick, once this tick's snapshot (with group_abandoned in its
    // outbox) is written: the event cannot be lost to a crash between the two.
    scheduleExpiry(group);
  }
}

void Core::forget(const std::string& group_id, Instant now) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return;
  Group& group = *it->second;
  const Millis refused_for = refusalPeriod();
  td::v1::ForgottenGroup record;
  record.set_group_id(group_id);
  record.set_partition(group.partition());
  record.set_until_ms((now.wall + refused_for).count());
  record.set_coordinator_epoch(group.epoch());
  tombstone("group\n" + group_id, now.mono + refused_for);
  for (const auto& m : group.memberSessions()) {
    tombstone(sessionKey(m.peer_id, m.session_id), now.mono + refused_for);
    record.add_peer_ids(m.peer_id);
    record.add_session_ids(m.session_id);
  }
  forgotten_partition_[group_id] = group.partition();
  forgotten_.push_back(std::move(record));
  unlink(group);
  groups_.erase(it);
}

void Core::unlink(const Group& group) {
  for (const auto& m : group.memberSessions()) {
    auto peer_it = peers_.find(m.peer_id);
    if (peer_it != peers_.end() && peer_it->second.group_id == group.id()) peers_.erase(peer_it);
  }
  auto family_it = families_.find(group.compatibilityKey());
  if (family_it == families_.end()) return;
  auto& by_ref = family_it->second.groups_by_ref;
  for (const auto& ref : group.refs()) {
    auto ref_it = by_ref.find(ref);
    if (ref_it == by_ref.end()) continue;
    std::erase(ref_it->second, group.id());
    if (ref_it->second.empty()) by_ref.erase(ref_it);
  }
  if (by_ref.empty()) families_.erase(family_it);
}

void Core::link(Group& group) {
  indexRefs(families_[group.compatibilityKey()], group,
            std::vector<std::string>(group.refs().begin(), group.refs().end()));
  for (const auto& m : group.memberSessions()) {
    auto [it, inserted] = peers_.try_emplace(m.peer_id);
    if (inserted || it->second.sent_at_ms <= m.sent_at_ms) {
      it->second = PeerRecord{m.session_id, group.id(), m.sent_at_ms};
    }
  }
}

std::uint64_t Core::epochOf(std::int32_t partition) const {
  auto it = partition_epochs_.find(partition);
  return it == partition_epochs_.end() ? config_.epoch : it->second;
}

void Core::setPartitionEpoch(std::int32_t partition, std::uint64_t epoch) {
  partition_epochs_[partition] = epoch;
}

Effects Core::restore(std::int32_t partition, std::uint64_t epoch,
                      const std::vector<td::v1::GroupSnapshot>& snapshots,
                      const std::vector<td::v1::ForgottenGroup>& forgotten, Instant now) {
  setPartitionEpoch(partition, epoch);
  Effects out;
  for (const auto& f : forgotten) {
    if (f.group_id().empty() || f.peer_ids_size() != f.session_ids_size()) {
      out.emplace_back(DeadLetter{.reason = "forgotten-group record '" + f.group_id() +
                                            "' without an id or with unpaired sessions"});
      continue;
    }
    const Millis until = monoOf(Millis(f.until_ms()), now);
    forgotten_partition_[f.group_id()] = partition;
    if (until <= now.mono) {
      expired_.emplace_back(f.group_id(), partition);   // its refusal ended while unowned
      continue;
    }
    tombstone("group\n" + f.group_id(), until);
    for (int i = 0; i < f.peer_ids_size(); ++i) {
      tombstone(sessionKey(f.peer_ids(i), f.session_ids(i)), until);
    }
  }
  // Oldest first, so "oldest group wins" ties and the peers index resolve as they did.
  std::vector<const td::v1::GroupSnapshot*> ordered;
  for (const auto& s : snapshots) ordered.push_back(&s);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto* a, const auto* b) { return a->ordinal() < b->ordinal(); });
  for (const auto* s : ordered) {
    if (groups_.contains(s->group_id()) || s->partition() != partition) {
      out.emplace_back(DeadLetter{.reason = fmt::format(
                                      "snapshot of group '{}' (partition {}) not restored on "
                                      "partition {}: {}",
                                      s->group_id(), s->partition(), partition,
                                      groups_.contains(s->group_id()) ? "the group is already here"
                                                                      : "wrong partition")});
      continue;
    }
    auto group = Group::restore(*s, epoch, config_, timers_, durationsForGroups(), step_tables_,
                                now, out);
    if (!group) {
      out.emplace_back(DeadLetter{.reason = group.error().message()});
      continue;
    }
    Group& restored = **group;
    restored.attach(&census_);
    next_ordinal_ = std::max(next_ordinal_, restored.ordinal() + 1);
    groups_.emplace(restored.id(), std::move(*group));
    link(restored);
    if (restored.finishedAt()) scheduleExpiry(restored);
    watchMembers(restored);   // memberless when written: its timer runs on
  }
  return out;
}

std::vector<std::string> Core::dropPartition(std::int32_t partition) {
  std::vector<std::string> dropped;
  partition_epochs_.erase(partition);
  flow_.erase(partition);
  // Its forgotten groups' refusals stay (harmless), but their records are the new owner's to
  // delete.
  std::erase_if(forgotten_partition_, [&](const auto& e) { return e.second == partition; });
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (it->second->partition() != partition) {
      ++it;
      continue;
    }
    dropped.push_back(it->first);
    unlink(*it->second);
    it = groups_.erase(it);   // its timers and expiry entries find no group and are dropped
  }
  return dropped;
}

std::optional<td::v1::GroupSnapshot> Core::snapshot(const std::string& group_id,
                                                    Instant now) const {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return std::nullopt;
  return it->second->snapshot(now);
}

std::optional<std::string> Core::encodeState(const std::string& group_id, Instant now,
                                             std::string_view outbox_wire) const {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return std::nullopt;
  return it->second->encodeState(now, outbox_wire);
}

std::optional<std::int32_t> Core::partitionOf(const std::string& group_id) const {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return std::nullopt;
  return it->second->partition();
}

std::vector<td::v1::ForgottenGroup> Core::takeForgotten() { return std::exchange(forgotten_, {}); }

std::vector<std::pair<std::string, std::int32_t>> Core::takeExpired() {
  return std::exchange(expired_, {});
}

Group* Core::groupFor(const std::string& group_id, Effects& out) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    out.emplace_back(DeadLetter{.reason = "unknown group " + group_id});
    return nullptr;
  }
  return it->second.get();
}

Group* Core::checkedGroup(const std::string& problem, std::string_view what,
                          const std::string& group_id, Effects& out) {
  if (!problem.empty()) {
    out.emplace_back(DeadLetter{.reason = fmt::format("invalid {}: {}", what, problem)});
    return nullptr;
  }
  return groupFor(group_id, out);
}

void Core::onHeartbeat(const td::v1::PeerHeartbeat& msg, Instant now, Effects& out) {
  if (Group* group = checkedGroup(validateHeartbeat(msg), "heartbeat", msg.group_id(), out)) {
    group->onHeartbeat(msg, now, out);
  }
}

void Core::noteFlow(std::int32_t partition, Instant now) {
  Flow& flow = flow_[partition];
  const Millis silence = config_.lease / 2;
  if (!flow.last_read || now.mono - *flow.last_read > silence) flow.flowing_since = now.mono;
  flow.last_read = now.mono;
  flow.probe_sent.reset();
}

void Core::noteFlowOfGroup(const std::string& group_id, Instant now) {
  if (auto partition = partitionOf(group_id)) noteFlow(*partition, now);
}

bool Core::leasesMayLapse(std::int32_t partition, Instant now) const {
  auto it = flow_.find(partition);
  if (it == flow_.end() || !it->second.last_read) return false;
  const Flow& flow = it->second;
  return now.mono - *flow.last_read <= config_.lease / 2 &&
         now.mono - flow.flowing_since >= config_.lease;
}

void Core::probeQuietPartitions(Instant now, Effects& out) {
  // A scan of the groups every eighth of a lease: cheap next to the lease it serves.
  if (now.mono < next_probe_scan_) return;
  next_probe_scan_ = now.mono + std::max(Millis(1), config_.lease / 8);
  std::set<std::int32_t> due;   // partitions with a present member, whose silence matters
  for (const auto& [id, group] : groups_) {
    if (group->hasPresentMember()) due.insert(group->partition());
  }
  const Millis quiet = config_.lease / 4;
  for (std::int32_t partition : due) {
    Flow& flow = flow_[partition];
    if (flow.last_read && now.mono - *flow.last_read < quiet) continue;
    // One question at a time; another once the last went unanswered for a quarter of a lease
    // (its leader did not answer, or the partition still had records to read).
    if (flow.probe_sent && now.mono - *flow.probe_sent < quiet) continue;
    flow.probe_sent = now.mono;
    out.emplace_back(ProbeFlow{.partition = partition});
  }
}

void Core::runTimers(Instant now, Effects& out) {
  std::vector<TimerQueue::Entry> deferred;
  while (!timers_.entries.empty() && timers_.entries.begin()->first <= now.mono) {
    TimerQueue::Entry entry = std::move(timers_.entries.begin()->second);
    timers_.entries.erase(timers_.entries.begin());
    auto it = groups_.find(entry.group_id);
    if (it == groups_.end()) continue;
    Group& group = *it->second;
    if (entry.peer_id.empty()) {
      group.wake(now, out);
    } else if (!leasesMayLapse(group.partition(), now)) {
      deferred.push_back(std::move(entry));   // looked at again once its partition flows
    } else {
      const bool was_running = !group.finishedAt().has_value();
      group.checkLease(entry.peer_id, now, out);
      if (was_running && group.finishedAt()) scheduleExpiry(group);
      watchMembers(group);
    }
  }
  for (auto& entry : deferred) {
    timers_.at(now.mono + config_.lease / 4, std::move(entry.group_id), std::move(entry.peer_id));
  }
}

void Core::onLeft(const td::v1::PeerLeft& msg, Instant now, Effects& out) {
  Group* group = checkedGroup(validateLeft(msg), "leave", msg.group_id(), out);
  if (group == nullptr) return;
  auto it = peers_.find(msg.peer_id());
  if (it == peers_.end() || it->second.session_id != msg.session_id() ||
      it->second.group_id != msg.group_id()) {
    group->ignore("stale_session", "leave from a session that is not a member", msg.peer_id(),
                  "", 0, now, out);
    return;
  }
  group->removeMember(msg.peer_id(), "left: " + msg.reason(), now, out);
  peers_.erase(it);
  if (group->finishedAt()) scheduleExpiry(*group);
  watchMembers(*group);
}

void Core::onStarted(const td::v1::StepStarted& msg, Instant now, Effects& out) {
  if (Group* group = checkedGroup(validateStarted(msg), "step started", msg.group_id(), out)) {
    group->onStarted(msg, now, out);
  }
}

void Core::onFinished(const td::v1::StepFinished& msg, Instant now, Effects& out) {
  Group* group = checkedGroup(validateFinished(msg), "step finished", msg.group_id(), out);
  if (group == nullptr) return;
  const bool was_running = !group->finishedAt().has_value();
  group->onFinished(msg, now, out);
  if (was_running && group->finishedAt()) scheduleExpiry(*group);
}

void Core::onUniverseStarted(const td::v1::UniverseStarted& msg, Instant now, Effects& out) {
  if (Group* group = checkedGroup(validateUniverseStarted(msg), "universe started",
                                  msg.group_id(), out)) {
    group->onUniverseStarted(msg, now, out);
  }
}

void Core::onUniverseFinished(const td::v1::UniverseFinished& msg, Instant now, Effects& out) {
  if (Group* group = checkedGroup(validateUniverseFinished(msg), "universe finished",
                                  msg.group_id(), out)) {
    group->onUniverseFinished(msg, now, out);
  }
}

void Core::onCancel(const td::v1::CancelGroup& msg, Instant now, Effects& out) {
  if (std::string problem = validateCancel(msg); !problem.empty()) {
    out.emplace_back(DeadLetter{.reason = "invalid cancel request: " + problem});
    return;
  }
  auto it = groups_.find(msg.group_id());
  if (it == groups_.end()) {
    // Unknown here: never existed, forgotten, or on a partition this coordinator does not own
    // (the request went to the wrong partition). Nothing to record it on but the DLQ.
    out.emplace_back(DeadLetter{.reason = "cancel request " + msg.request_id() +
                                          " for unknown group " + msg.group_id()});
    return;
  }
  Group& group = *it->second;
  if (group.status() != td::v1::GROUP_STATUS_RUNNING) {
    // Finished, or cancelled by an earlier copy of this request (replayed after a fail-over).
    group.ignore("group_finished",
                 fmt::format("cancel request {} by {}: the group is {}", msg.request_id(),
                             msg.requested_by(), protocol::statusName(group.status())),
                 "", "", 0, now, out);
    return;
  }
  group.cancel(msg, now, out);
  scheduleExpiry(group);
}

void Core::onTick(Instant now, Effects& out) {
  runTimers(now, out);
  probeQuietPartitions(now, out);
  while (!expiry_.empty() && expiry_.begin()->first <= now.mono) {
    std::string group_id = expiry_.begin()->second;
    expiry_.erase(expiry_.begin());
    auto it = groups_.find(group_id);
    // A group can be scheduled more than once (late joiners); forget it only when due.
    if (it == groups_.end() || !it->second->finishedAt()) continue;
    if (*it->second->finishedAt() + retentionOf(*it->second) > now.mono) continue;
    forget(group_id, now);
  }
  abandonDue(now, out);   // after the expiry loop: abandoned groups are forgotten next tick
  while (!tombstone_expiry_.empty() && tombstone_expiry_.begin()->first <= now.mono) {
    const std::string key = tombstone_expiry_.begin()->second;
    tombstone_expiry_.erase(tombstone_expiry_.begin());
    auto it = tombstones_.find(key);
    if (it == tombstones_.end() || it->second > now.mono) continue;
    tombstones_.erase(it);
    constexpr std::string_view kGroupPrefix = "group\n";
    if (!key.starts_with(kGroupPrefix)) continue;
    auto owned = forgotten_partition_.find(key.substr(kGroupPrefix.size()));
    if (owned == forgotten_partition_.end()) continue;   // its partition moved away
    expired_.emplace_back(owned->first, owned->second);
    forgotten_partition_.erase(owned);
  }
}

}  // namespace td::coordinator
