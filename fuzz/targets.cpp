#include "fuzz/targets.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/hash.h"
#include "common/log.h"
#include "coordinator/codec.h"
#include "coordinator/core.h"
#include "fuzz/seeds.h"
#include "protocol/protocol.h"
#include "schema/schema.h"
#include "td/v1/state.pb.h"

namespace td::fuzz {

namespace {

using coordinator::Core;
using coordinator::CoreConfig;
using coordinator::Effects;
using coordinator::Input;
using coordinator::Registration;
using coordinator::Tick;

Counters g_counters;

CoreConfig config() {
  CoreConfig config;
  config.coordinator_id = "fuzz";
  return config;
}

int broken(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what.c_str());
  return 1;
}

// A Core populated with a few groups in every state, plus what the harness learned about it
// from the effects (group ids, steps, members, current assignments) so inputs can aim at them.
class World {
 public:
  struct Assignment {
    std::string peer_id;
    std::string session_id;
    std::uint32_t attempt = 0;
  };
  struct KnownGroup {
    std::string id;
    std::vector<std::string> steps;
    std::vector<std::pair<std::string, std::string>> members;  // (peer, session), join order
    std::map<std::string, Assignment> assigned;                // step -> last assignment
  };

  World() : core_(config()) { setUp(); }

  // Applies `input` now, then moves time by `advance` and ticks. Non-zero on a broken invariant.
  int apply(const Input& input, Millis advance) {
    ++used_;
    Effects effects = core_.handle(input, now_);
    bool touched_group = false;
    for (const auto& e : effects) touched_group |= std::holds_alternative<coordinator::PublishEvent>(e);
    if (touched_group) ++g_counters.applied;
    if (int rc = observe(effects); rc != 0) return rc;
    now_.mono += advance;
    now_.wall += advance;
    return observe(core_.handle(Tick{}, now_));
  }

  std::size_t used() const { return used_; }
  Core& core() { return core_; }
  Instant now() const { return now_; }
  const std::vector<KnownGroup>& groups() const { return groups_; }

  const KnownGroup* pickGroup(std::uint8_t pick) const {
    return groups_.empty() ? nullptr : &groups_[pick % groups_.size()];
  }
  const KnownGroup* findGroup(const std::string& id) const {
    auto it = group_index_.find(id);
    return it == group_index_.end() ? nullptr : &groups_[it->second];
  }
  const std::pair<std::string, std::string>* pickPeer(std::uint8_t pick) const {
    return peers_.empty() ? nullptr : &peers_[pick % peers_.size()];
  }

 private:
  void run(const Input& input) {
    // Setup inputs are ours; a broken invariant here is a harness bug, reported at once.
    if (observe(core_.handle(input, now_)) != 0) std::abort();
  }
  void finish(std::size_t group, const std::string& step, td::v1::StepOutcome outcome,
              std::int32_t exit_code) {
    const KnownGroup& g = groups_.at(group);
    const Assignment& a = g.assigned.at(step);
    td::v1::StepFinished f;
    f.set_group_id(g.id);
    f.set_peer_id(a.peer_id);
    f.set_session_id(a.session_id);
    f.set_step_id(step);
    f.set_attempt(a.attempt);
    f.set_outcome(outcome);
    f.set_exit_code(exit_code);
    run(f);
  }

  void setUp() {
    now_ = Instant{Millis(1'000'000), Millis(1'700'000'000'000)};
    run(Registration{.partition = 0, .peer = familyPeer('A', "p1", "c1")});          // G1
    run(Registration{.partition = 0, .peer = familyPeer('A', "p2", "c1")});          // joins G1
    run(Registration{.partition = 1, .peer = familyPeer('A', "p3", "c2", {}, true)});  // G2
    run(Registration{.partition = 0, .peer = familyPeer('A', "p4", "c3", {"c1", "c2"})});
    run(Registration{.partition = 2, .peer = familyPeer('B', "p5", "c1")});  // G3
    run(Registration{.partition = 3, .peer = familyPeer('C', "p6", "c6")});  // G4, completes
    finish(3, "only", td::v1::STEP_OUTCOME_SUCCEEDED, 0);
    run(Registration{.partition = 3, .peer = familyPeer('D', "p7", "c7")});  // G5, fails
    finish(4, "x", td::v1::STEP_OUTCOME_FAILED, 1);
    finish(0, "build", td::v1::STEP_OUTCOME_SUCCEEDED, 0);                     // G1 moves on
    // Input flows for a while so leases may lapse; p2 goes silent and is lost soon after.
    for (int second = 1; second <= 6; ++second) {
      now_.mono += Millis(1000);
      now_.wall += Millis(1000);
      for (const auto& g : groups_) {
        for (const auto& [peer, session] : g.members) {
          if (peer == "p2" && second > 2) continue;
          td::v1::PeerHeartbeat hb;
          hb.set_group_id(g.id);
          hb.set_peer_id(peer);
          hb.set_session_id(session);
          run(hb);
        }
      }
      run(Tick{});
    }
  }

  KnownGroup& groupNamed(const std::string& id) {
    auto [it, inserted] = group_index_.try_emplace(id, groups_.size());
    if (inserted) groups_.push_back(KnownGroup{.id = id});
    return groups_[it->second];
  }

  int observe(const Effects& effects) {
    for (const auto& effect : effects) {
      if (const auto* dl = std::get_if<coordinator::DeadLetter>(&effect)) {
        ++g_counters.dead_letters;
        if (dl->reason.empty()) return broken("dead letter without a reason");
        continue;
      }
      if (const auto* pa = std::get_if<coordinator::PublishAssignment>(&effect)) {
        if (pa->group_id.empty()) return broken("assignment record without a group");
        continue;
      }
      const auto* pe = std::get_if<coordinator::PublishEvent>(&effect);
      if (pe == nullptr) continue;
      const td::v1::Event& ev = pe->event;
      if (ev.group_id().empty()) return broken("event without a group id");
      // A group id can come back after its group was forgotten; its numbering restarts then.
      if (ev.has_group_created()) last_sequence_[ev.group_id()] = 0;
      std::uint64_t& last = last_sequence_[ev.group_id()];
      if (ev.sequence() != last + 1) {
        return broken(fmt::format("group {}: event sequence {} after {}", ev.group_id(),
                                  ev.sequence(), last));
      }
      last = ev.sequence();
      KnownGroup& g = groupNamed(ev.group_id());
      if (ev.has_group_created()) {
        g.steps.clear();
        g.members.clear();
        g.assigned.clear();
        for (const auto& s : ev.group_created().steps()) g.steps.push_back(s.id());
      } else if (ev.has_peer_joined()) {
        std::pair<std::string, std::string> member{ev.peer_joined().peer_id(),
                                                   ev.peer_joined().session_id()};
        g.members.push_back(member);
        peers_.push_back(std::move(member));
      } else if (ev.has_step_assigned()) {
        const auto& a = ev.step_assigned();
        auto [it, inserted] = g.assigned.try_emplace(a.step_id());
        if (!inserted && a.attempt() <= it->second.attempt) {
          return broken(fmt::format("group {} step {}: attempt {} assigned after {}",
                                    ev.group_id(), a.step_id(), a.attempt(),
                                    it->second.attempt));
        }
        it->second = Assignment{a.peer_id(), a.session_id(), a.attempt()};
      }
    }
    return 0;
  }

  Core core_;
  Instant now_;
  std::size_t used_ = 0;
  std::vector<KnownGroup> groups_;
  std::unordered_map<std::string, std::size_t> group_index_;
  std::vector<std::pair<std::string, std::string>> peers_;  // every (peer, session) that joined
  std::unordered_map<std::string, std::uint64_t> last_sequence_;
};

World& longLivedWorld() {
  static std::unique_ptr<World> world;
  if (!world || world->used() >= kLongLivedResetEvery) world = std::make_unique<World>();
  return *world;
}

struct Header {
  std::uint8_t flags = 0;
  std::uint8_t b1 = 0;
  std::uint8_t b2 = 0;
  std::uint8_t advance = 0;
  std::string_view record;
};

Header splitHeader(const std::uint8_t* data, std::size_t size) {
  std::uint8_t h[kRecordHeaderBytes] = {};
  const std::size_t n = size < kRecordHeaderBytes ? size : kRecordHeaderBytes;
  for (std::size_t i = 0; i < n; ++i) h[i] = data[i];
  return Header{h[0], h[1], h[2], h[3],
                std::string_view(reinterpret_cast<const char*>(data) + n, size - n)};
}

// Runs `input` against a fresh populated World, or the long-lived one; `aim` may rewrite the
// input's ids from what the World knows before it is applied.
template <typename Aim>
int runRecord(Input input, const Header& h, Aim&& aim) {
  const Millis advance(50 * static_cast<int>(h.advance));
  if (h.flags & kUseLongLived) {
    World& world = longLivedWorld();
    aim(world, input);
    return world.apply(input, advance);
  }
  World world;
  aim(world, input);
  return world.apply(input, advance);
}

int checkDecodeError(const td::Error& error) {
  if (error.context().empty()) return broken("decode error without a reason");
  if (error.code().category() != coordinator::codecCategory()) {
    return broken("decode error outside the codec category: " + error.message());
  }
  return 0;
}

// Points a worker message (StepStarted or StepFinished) at known ids, as the flags say.
template <typename Msg>
void aimCompletion(const World& world, Msg& msg, const Header& h) {
  const World::KnownGroup* g = nullptr;
  if (h.flags & kDoneKnownGroup) {
    g = world.pickGroup(h.b1);
    if (g != nullptr) msg.set_group_id(g->id);
  } else {
    g = world.findGroup(msg.group_id());
  }
  if (g == nullptr) return;
  if ((h.flags & kDoneKnownStep) && !g->steps.empty()) {
    msg.set_step_id(g->steps[(h.b2 & 0x3f) % g->steps.size()]);
  }
  const World::Assignment* a = nullptr;
  if (auto it = g->assigned.find(msg.step_id()); it != g->assigned.end()) a = &it->second;
  if (h.flags & kDoneKnownPeer) {
    if (a != nullptr) {
      msg.set_peer_id(a->peer_id);
      msg.set_session_id(a->session_id);
    } else if (!g->members.empty()) {
      const auto& m = g->members[(h.b1 >> 4) % g->members.size()];
      msg.set_peer_id(m.first);
      msg.set_session_id(m.second);
    }
  }
  if (h.flags & kDoneKnownAttempt) {
    const std::int64_t base = a != nullptr ? a->attempt : 1;
    msg.set_attempt(static_cast<std::uint32_t>(std::max<std::int64_t>(0, base + (h.b2 >> 6) - 1)));
  }
}

// Points a universe report (UniverseStarted or UniverseFinished) at a known group and member,
// as the flags say.
template <typename Msg>
void aimUniverse(const World& world, Msg& msg, const Header& h) {
  const World::KnownGroup* g =
      (h.flags & kDoneKnownGroup) ? world.pickGroup(h.b1) : world.findGroup(msg.group_id());
  if (g == nullptr) return;
  msg.set_group_id(g->id);
  if ((h.flags & kDoneKnownPeer) && !g->members.empty()) {
    const auto& m = g->members[(h.b1 >> 4) % g->members.size()];
    msg.set_peer_id(m.first);
    msg.set_session_id(m.second);
  }
}

}  // namespace

void quietLogs() {
  protocol::routeProtobufLogs();
  (void)td::log::setLevel("off");
}

const Counters& countersForTest() { return g_counters; }

int fuzzRegistrationRecord(const std::uint8_t* data, std::size_t size) {
  ++g_counters.inputs;
  const Header h = splitHeader(data, size);
  auto decoded = coordinator::decodeRegistrationRecord(h.record, static_cast<std::int8_t>(h.b1));
  if (!decoded) return checkDecodeError(decoded.error());
  ++g_counters.decoded;
  if (const auto* reg = std::get_if<Registration>(&*decoded);
      reg != nullptr && reg->partition != static_cast<std::int8_t>(h.b1)) {
    return broken("decoded registration lost its partition");
  }
  return runRecord(std::move(*decoded), h, [&](const World& world, Input& input) {
    const std::uint8_t pick = h.b2;
    if (auto* reg = std::get_if<Registration>(&input)) {
      if (h.flags & kRegKnownPeer) {
        if (const auto* peer = world.pickPeer(pick)) {
          reg->peer.set_peer_id(peer->first);
          if (h.flags & kRegKnownSession) reg->peer.set_session_id(peer->second);
        }
      }
      if (h.flags & kRegFixKey) {
        reg->peer.set_compatibility_key(protocol::compatibilityKey(reg->peer));
      }
      return;
    }
    if (!(h.flags & kRegKnownGroup)) return;
    const World::KnownGroup* g = world.pickGroup(pick);
    if (g == nullptr || g->members.empty()) return;
    const auto& m = g->members[(pick >> 4) % g->members.size()];
    std::visit(
        [&](auto& msg) {
          using T = std::decay_t<decltype(msg)>;
          if constexpr (std::is_same_v<T, td::v1::PeerHeartbeat> ||
                        std::is_same_v<T, td::v1::PeerLeft>) {
            msg.set_group_id(g->id);
            msg.set_peer_id(m.first);
            msg.set_session_id(m.second);
          }
        },
        input);
  });
}

int fuzzCompletionRecord(const std::uint8_t* data, std::size_t size) {
  ++g_counters.inputs;
  const Header h = splitHeader(data, size);
  auto decoded = coordinator::decodeCompletionRecord(h.record);
  if (!decoded) return checkDecodeError(decoded.error());
  ++g_counters.decoded;
  return runRecord(std::move(*decoded), h, [&](const World& world, Input& input) {
    std::visit(
        [&](auto& msg) {
          using T = std::decay_t<decltype(msg)>;
          if constexpr (std::is_same_v<T, td::v1::StepStarted> ||
                        std::is_same_v<T, td::v1::StepFinished>) {
            aimCompletion(world, msg, h);
          }
          if constexpr (std::is_same_v<T, td::v1::UniverseStarted> ||
                        std::is_same_v<T, td::v1::UniverseFinished>) {
            aimUniverse(world, msg, h);
          }
        },
        input);
  });
}

int fuzzStateRecord(const std::uint8_t* data, std::size_t size) {
  ++g_counters.inputs;
  if (size == 0) return 0;
  const Millis advance(500 * static_cast<int>(data[0]));
  td::v1::StateRecord record;
  if (!record.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  if (!record.has_group() && !record.has_forgotten()) return 0;
  ++g_counters.decoded;
  Core core(config());
  Instant now{Millis(5'000'000), Millis(1'700'000'100'000)};
  const std::int32_t partition =
      record.has_group() ? record.group().partition() : record.forgotten().partition();
  std::vector<td::v1::GroupSnapshot> snapshots;
  std::vector<td::v1::ForgottenGroup> forgotten;
  if (record.has_group()) snapshots.push_back(record.group());
  if (record.has_forgotten()) forgotten.push_back(record.forgotten());
  const std::uint64_t epoch =
      record.has_group() ? std::max<std::uint64_t>(record.group().coordinator_epoch(), 1) + 1 : 2;
  Effects effects = core.restore(partition, epoch, snapshots, forgotten, now);
  for (const auto& e : effects) {
    if (const auto* dl = std::get_if<coordinator::DeadLetter>(&e)) {
      ++g_counters.dead_letters;
      if (dl->reason.empty()) return broken("dead letter without a reason");
    }
    if (std::holds_alternative<coordinator::PublishEvent>(e)) ++g_counters.applied;
  }
  // A restored group runs on: ticks (leases, backoff, expiry), then its own snapshot must
  // restore again.
  (void)core.handle(Tick{}, now);
  now.mono += advance;
  now.wall += advance;
  (void)core.handle(Tick{}, now);
  if (record.has_group()) {
    if (auto again = core.snapshot(record.group().group_id(), now)) {
      Core copy(config());
      Effects second = copy.restore(partition, epoch + 1, {*again}, {}, now);
      for (const auto& e : second) {
        if (const auto* dl = std::get_if<coordinator::DeadLetter>(&e)) {
          return broken("a restored group's own snapshot does not restore: " + dl->reason);
        }
      }
    }
  }
  return 0;
}

std::vector<std::string> stateSeeds() {
  World world;
  std::vector<std::string> seeds;
  for (const auto& g : world.groups()) {
    auto snapshot = world.core().snapshot(g.id, world.now());
    if (!snapshot) continue;
    td::v1::StateRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    *record.mutable_group() = std::move(*snapshot);
    seeds.push_back(std::string(1, '\x04') + record.SerializeAsString());
  }
  td::v1::StateRecord forgotten;
  auto& f = *forgotten.mutable_forgotten();
  f.set_group_id("s-forgotten");
  f.set_partition(1);
  f.add_peer_ids("p9");
  f.add_session_ids("p9-s");
  f.set_until_ms(1'700'000'200'000);
  seeds.push_back(std::string(1, '\x01') + forgotten.SerializeAsString());
  return seeds;
}

int fuzzSchema(const std::uint8_t* data, std::size_t size) {
  ++g_counters.inputs;
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  schema::ParseOptions options;
  if (flags & kSchemaTaskCommand) options.task_command = "make {task}";
  auto parsed = schema::parse(text, "fuzz.yaml", options);
  if (!parsed) {
    const td::Error& e = parsed.error();
    if (e.code().category() != schema::schemaCategory()) {
      return broken("schema error outside the schema category: " + e.message());
    }
    if (!e.context().starts_with("fuzz.yaml")) {
      return broken("schema error does not start with the source name: " + e.context());
    }
    return 0;
  }
  ++g_counters.schemas_parsed;
  const schema::Schema& s = *parsed;
  if (s.digest.size() != 64 ||
      s.digest.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return broken("digest is not 64 lower-case hex characters: " + s.digest);
  }
  if (s.digest != td::sha256Hex(schema::canonicalForm(s))) return broken("digest mismatch");
  if (s.source != "fuzz.yaml") return broken("source is " + s.source);
  if (s.name.empty() || s.steps.empty()) return broken("parsed schema without name or steps");
  const schema::Schema copy = s;  // find() must keep working on copies
  for (std::size_t i = 0; i < s.steps.size(); ++i) {
    const schema::Step& step = s.steps[i];
    if (s.find(step.id) != &step) return broken("find() misses step " + step.id);
    if (copy.find(step.id) != &copy.steps[i]) return broken("find() on a copy misses " + step.id);
    if (step.run.empty()) return broken("step " + step.id + " has an empty run");
    if (step.max_attempts < 1 || step.max_attempts > schema::kMaxAttemptsLimit) {
      return broken("step " + step.id + " max_attempts out of range");
    }
    if (step.timeout <= Millis(0) || step.timeout > schema::kMaxTimeout) {
      return broken("step " + step.id + " timeout out of range");
    }
    for (const auto& dep : step.depends_on) {
      if (dep == step.id || s.find(dep) == nullptr) {
        return broken("step " + step.id + " depends on " + dep);
      }
    }
  }
  if (s.find("not a step id") != nullptr) return broken("find() found an impossible id");
  return 0;
}

std::vector<std::string> populatedGroupIdsForTest() {
  World world;
  std::vector<std::string> ids;
  for (const auto& g : world.groups()) ids.push_back(g.id);
  return ids;
}

}  // namespace td::fuzz
