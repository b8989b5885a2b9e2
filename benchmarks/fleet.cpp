#include "benchmarks/fleet.h"

#include <fmt/format.h>

#include <functional>
#include <set>
#include <unordered_map>

#include "benchmarks/client_settings.h"
#include "kafka/kafka.h"
#include "td/v1/assignments.pb.h"
#include "td/v1/completions.pb.h"
#include "td/v1/joins.pb.h"
#include "worker/session.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPollSlice{10};
constexpr std::chrono::milliseconds kHeartbeatScan{50};
constexpr std::chrono::milliseconds kCheckEvery{200};
constexpr std::chrono::seconds kSetupTimeout{30};
constexpr std::chrono::seconds kFlushTimeout{60};
constexpr std::size_t kPollMax = 5000;

double msBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

struct Peer {
  worker::PeerInfo info;
  std::string session_id;
  td::v1::PeerRegistered registration;
  std::int32_t partition = 0;
  std::size_t group = 0;                   // index into State::groups
  std::optional<worker::Session> session;  // from its GroupJoined on
  std::vector<worker::RunStep> held;       // assignments not answered (yet)
  std::optional<SteadyTime> finished_at;   // just before its last StepFinished was produced
  std::chrono::milliseconds heartbeat_every{1000};
  SteadyTime next_heartbeat{};
  bool done = false;  // its session saw the group's result
};

struct Group {
  std::string id;  // empty until one of its peers' GroupJoined arrives
  std::vector<std::size_t> peers;
  // Every assignment record of the group read so far: a peer whose GroupJoined arrives after
  // some of them (another partition, so no order) replays them, as td-worker reads from 0.
  std::vector<td::v1::AssignmentRecord> history;
  std::uint64_t finished = 0;  // StepFinished produced
  bool assigned = false;       // a StepAssigned arrived
  bool parked = false;         // quota reached and an assignment held since
  bool completed = false;
  std::size_t summary_steps = 0;
};
}  // namespace

std::string_view sourceName(FleetSource source) {
  return source == FleetSource::kEvents ? "td.events" : "td.assign.<group>";
}

struct Fleet::State {
  explicit State(const FleetConfig& c) : config(c) {}

  FleetConfig config;
  std::vector<Peer> peers;
  std::vector<Group> groups;
  std::unordered_map<std::string, std::size_t> peer_by_id;
  std::unordered_map<std::string, std::size_t> group_by_id;
  // Records for our peers in groups none of our GroupJoined named yet (kEvents only).
  std::unordered_map<std::string, std::vector<td::v1::AssignmentRecord>> early;
  std::size_t peers_joined = 0;
  std::size_t groups_assigned = 0;
  std::size_t groups_parked = 0;
  std::size_t groups_completed = 0;
  bool answering = false;
  FleetCounters counters;
  std::vector<double> dispatch_ms;
  std::optional<SteadyTime> first_answer;
  SteadyTime last_completion{};
  SteadyTime next_heartbeat_scan{};
  double add_seconds = 0;
  // Written by delivery callbacks (inside produce/poll/flush and the producer's destructor):
  // declared before the producer so they outlive it.
  std::uint64_t delivery_failures = 0;
  std::string last_delivery_error;
  std::unique_ptr<kafka::Producer> producer;
  std::unique_ptr<kafka::PartitionReader> reader;

  td::Status produce(const Peer& peer, const std::string& topic, const std::string& value) {
    return producer->produce(topic, peer.partition, peer.registration.compatibility_key(), value,
                             [this](const td::Status& result, std::int32_t, std::int64_t) {
                               if (!result) {
                                 ++delivery_failures;
                                 last_delivery_error = result.error().message();
                               }
                             });
  }

  td::Status checkDeliveries() const {
    if (delivery_failures == 0) return {};
    return makeError(td::Errc::kUnavailable,
                     fmt::format("fleet: {} records not delivered, the last: {}", delivery_failures,
                                 last_delivery_error));
  }

  td::Status registerAll() {
    for (const auto& peer : peers) {
      td::v1::RegistrationRecord record;
      record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
      *record.mutable_registered() = peer.registration;
      TD_RETURN_IF_ERROR(produce(peer, config.topics.registrations(), record.SerializeAsString()));
      ++counters.registrations;
      producer->poll(0);
    }
    TD_RETURN_IF_ERROR(producer->flush(kFlushTimeout));
    return checkDeliveries();
  }

  // One round: due heartbeats, one poll of the reader, delivery reports.
  td::Status pump() {
    TD_RETURN_IF_ERROR(heartbeatsDue());
    auto batch = reader->poll(kPollMax, kPollSlice);
    if (!batch) return td::unexpected(batch.error());
    const auto arrival = Clock::now();
    for (const auto& msg : *batch) TD_RETURN_IF_ERROR(onMessage(msg, arrival));
    producer->poll(0);
    return checkDeliveries();
  }

  td::Status heartbeatsDue() {
    const auto now = Clock::now();
    if (now < next_heartbeat_scan) return {};
    next_heartbeat_scan = now + kHeartbeatScan;
    for (auto& peer : peers) {
      if (!peer.session || peer.done || now < peer.next_heartbeat) continue;
      td::v1::RegistrationRecord record;
      record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
      auto& beat = *record.mutable_heartbeat();
      beat.set_peer_id(peer.info.peer_id);
      beat.set_session_id(peer.session_id);
      beat.set_group_id(peer.session->groupId());
      if (!peer.held.empty()) {
        beat.set_running_step_id(peer.held.front().step->id);
        beat.set_running_attempt(peer.held.front().attempt);
      }
      TD_RETURN_IF_ERROR(produce(peer, config.topics.registrations(), record.SerializeAsString()));
      ++counters.heartbeats;
      peer.next_heartbeat = now + peer.heartbeat_every;
    }
    return {};
  }

  td::Status onMessage(const kafka::Message& msg, SteadyTime arrival) {
    if (msg.topic == config.topics.joins()) {
      td::v1::JoinRecord reply;
      if (!reply.ParseFromString(msg.value)) return {};  // not ours to judge
      return onJoinReply(reply, arrival);
    }
    if (msg.topic == config.topics.events()) {
      td::v1::Event event;
      if (!event.ParseFromString(msg.value)) return {};
      td::v1::AssignmentRecord record;
      record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
      if (event.has_step_assigned()) {
        *record.mutable_assigned() = event.step_assigned();
      } else if (event.has_group_completed()) {
        *record.mutable_completed() = event.group_completed();
      } else if (event.has_group_failed()) {
        *record.mutable_failed() = event.group_failed();
      } else {
        return {};
      }
      return onAssignment(event.group_id(), std::move(record), arrival);
    }
    td::v1::AssignmentRecord record;
    if (!record.ParseFromString(msg.value)) return {};
    return onAssignment(msg.key, std::move(record), arrival);
  }

  td::Status onJoinReply(const td::v1::JoinRecord& reply, SteadyTime arrival) {
    if (reply.has_rejected()) {
      auto it = peer_by_id.find(reply.rejected().peer_id());
      if (it == peer_by_id.end() || peers[it->second].session_id != reply.rejected().session_id()) {
        return {};
      }
      return makeError(td::Errc::kInvalidArgument,
                       fmt::format("fleet: peer {}: registration rejected: {}",
                                   reply.rejected().peer_id(), reply.rejected().reason()));
    }
    if (!reply.has_joined()) return {};
    const auto& joined = reply.joined();
    auto it = peer_by_id.find(joined.peer_id());
    if (it == peer_by_id.end()) return {};
    Peer& peer = peers[it->second];
    if (peer.session_id != joined.session_id() || peer.session) return {};
    if (joined.status() != td::v1::GROUP_STATUS_RUNNING) {
      return makeError(td::Errc::kInvalidArgument,
                       fmt::format("fleet: peer {} joined group {} that is no longer running",
                                   peer.info.peer_id, joined.group_id()));
    }
    TD_RETURN_IF_ERROR(mapGroup(peer, joined.group_id()));
    peer.session.emplace(peer.info.peer_id, peer.session_id, joined.group_id(), *config.schema);
    peer.heartbeat_every = std::chrono::milliseconds(
        joined.heartbeat_interval_ms() > 0 ? joined.heartbeat_interval_ms() : 1000);
    peer.next_heartbeat = arrival + peer.heartbeat_every;
    ++peers_joined;
    // What the group's topic held before this reply was read, in order.
    for (const auto& record : groups[peer.group].history) {
      TD_RETURN_IF_ERROR(deliver(peer, record, arrival));
    }
    return {};
  }

  // Ties our group index to the coordinator's group id on its first GroupJoined.
  td::Status mapGroup(const Peer& peer, const std::string& group_id) {
    Group& group = groups[peer.group];
    if (group.id == group_id) return {};
    if (!group.id.empty() || group_by_id.contains(group_id)) {
      return makeError(td::Errc::kInternal,
                       fmt::format("fleet: peer {} joined group {}, but its group is {} and that "
                                   "group is another change ref's",
                                   peer.info.peer_id, group_id, group.id));
    }
    group.id = group_id;
    group_by_id.emplace(group_id, peer.group);
    if (config.source == FleetSource::kAssignTopics) {
      const auto start = Clock::now();
      TD_RETURN_IF_ERROR(reader->add({config.topics.assign(group_id), 0, 0}));
      add_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    } else if (auto it = early.find(group_id); it != early.end()) {
      group.history = std::move(it->second);
      early.erase(it);
    }
    return {};
  }

  td::Status onAssignment(const std::string& group_id, td::v1::AssignmentRecord record,
                          SteadyTime arrival) {
    auto it = group_by_id.find(group_id);
    if (it == group_by_id.end()) {
      // Only td.events brings records of groups we do not know yet (or someone else's).
      if (record.has_assigned() && peer_by_id.contains(record.assigned().peer_id())) {
        early[group_id].push_back(std::move(record));
      }
      return {};
    }
    Group& group = groups[it->second];
    group.history.push_back(std::move(record));
    const auto& stored = group.history.back();
    for (const std::size_t index : group.peers) {
      if (peers[index].session) TD_RETURN_IF_ERROR(deliver(peers[index], stored, arrival));
    }
    return {};
  }

  td::Status deliver(Peer& peer, const td::v1::AssignmentRecord& record, SteadyTime arrival) {
    const worker::Action action = peer.session->onRecord(record);
    if (const auto* run = std::get_if<worker::RunStep>(&action)) return onRun(peer, *run, arrival);
    if (const auto* reject = std::get_if<worker::RejectStep>(&action)) {
      return makeError(td::Errc::kInvalidArgument,
                       fmt::format("fleet: peer {}: assigned an unknown step {}", peer.info.peer_id,
                                   reject->step_id));
    }
    if (const auto* done = std::get_if<worker::GroupDone>(&action)) {
      if (done->exit_code != 0 || !done->record.has_completed()) {
        return makeError(td::Errc::kUnavailable,
                         fmt::format("fleet: group {} failed: {}", peer.session->groupId(),
                                     done->record.failed().reason()));
      }
      peer.done = true;
      Group& group = groups[peer.group];
      if (!group.completed) {
        group.completed = true;
        group.summary_steps = static_cast<std::size_t>(done->record.completed().steps_size());
        ++groups_completed;
        last_completion = arrival;
      }
    }
    return {};
  }

  td::Status onRun(Peer& peer, const worker::RunStep& run, SteadyTime arrival) {
    Group& group = groups[peer.group];
    if (!group.assigned) {
      group.assigned = true;
      ++groups_assigned;
    }
    if (peer.finished_at) {
      dispatch_ms.push_back(msBetween(*peer.finished_at, arrival));
      peer.finished_at.reset();
    }
    return act(peer, run);
  }

  // Answers the assignment, or holds it (not answering yet, or the group's quota reached).
  td::Status act(Peer& peer, const worker::RunStep& run) {
    Group& group = groups[peer.group];
    const bool over_quota = group.finished >= static_cast<std::uint64_t>(config.quota_per_group);
    if (!answering || over_quota) {
      peer.held.push_back(run);
      if (answering && over_quota && !group.parked) {
        group.parked = true;
        ++groups_parked;
      }
      return {};
    }
    if (!first_answer) first_answer = Clock::now();
    const std::string& group_id = peer.session->groupId();
    td::v1::CompletionRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    if (config.report_started) {
      auto& started = *record.mutable_started();
      started.set_peer_id(peer.info.peer_id);
      started.set_session_id(peer.session_id);
      started.set_group_id(group_id);
      started.set_step_id(run.step->id);
      started.set_attempt(run.attempt);
      TD_RETURN_IF_ERROR(produce(peer, config.topics.completions(), record.SerializeAsString()));
      ++counters.started;
    }
    auto& finished = *record.mutable_finished();  // replaces `started` in the oneof
    finished.set_peer_id(peer.info.peer_id);
    finished.set_session_id(peer.session_id);
    finished.set_group_id(group_id);
    finished.set_step_id(run.step->id);
    finished.set_attempt(run.attempt);
    finished.set_outcome(td::v1::STEP_OUTCOME_SUCCEEDED);
    peer.finished_at = Clock::now();
    TD_RETURN_IF_ERROR(produce(peer, config.topics.completions(), record.SerializeAsString()));
    ++counters.finished;
    ++group.finished;
    return {};
  }

  td::Status answerHeld() {
    for (auto& peer : peers) {
      auto held = std::move(peer.held);
      peer.held.clear();
      for (const auto& run : held) TD_RETURN_IF_ERROR(act(peer, run));
    }
    return {};
  }

  td::Status pumpUntil(const std::function<bool()>& reached, SteadyTime deadline,
                       std::string_view what) {
    auto next_check = Clock::now();
    while (!reached()) {
      if (config.check && Clock::now() >= next_check) {
        TD_RETURN_IF_ERROR(config.check());
        next_check = Clock::now() + kCheckEvery;
      }
      if (Clock::now() >= deadline) {
        return makeError(td::Errc::kTimeout,
                         fmt::format("fleet: {} not reached in time: {}/{} peers joined, {}/{} "
                                     "groups assigned, {} parked, {} completed",
                                     what, peers_joined, peers.size(), groups_assigned,
                                     groups.size(), groups_parked, groups_completed));
      }
      TD_RETURN_IF_ERROR(pump());
    }
    return {};
  }
};

td::Result<std::unique_ptr<Fleet>> Fleet::create(const FleetConfig& config) {
  if (config.groups.empty() || config.groups.front().empty() || config.schema == nullptr) {
    return makeError(td::Errc::kInvalidArgument, "fleet: no peers or no schema");
  }
  auto state = std::make_unique<State>(config);
  const std::string client_id = "td-bench-fleet-" + config.groups.front().front().peer_id;
  auto producer =
      kafka::Producer::create(producerSettings(config.bootstrap, client_id, config.kafka));
  if (!producer) return td::unexpected(producer.error());
  auto reader =
      kafka::PartitionReader::create(readerSettings(config.bootstrap, client_id, config.broker_kind, config.kafka));
  if (!reader) return td::unexpected(reader.error());
  state->producer = std::move(*producer);
  state->reader = std::move(*reader);
  const auto& topics = config.topics;
  auto count = state->producer->partitionCount(topics.registrations(), kSetupTimeout);
  if (!count) return td::unexpected(count.error());
  std::set<std::pair<std::string, std::int32_t>> reads;
  for (std::size_t g = 0; g < config.groups.size(); ++g) {
    state->groups.emplace_back();
    for (const auto& info : config.groups[g]) {
      Peer peer{.info = info, .session_id = worker::newSessionId()};
      peer.registration = worker::buildRegistration(info, peer.session_id, *config.schema);
      peer.partition = protocol::partitionFor(peer.registration.compatibility_key(), *count);
      peer.group = g;
      reads.emplace(topics.joins(), peer.partition);
      state->groups.back().peers.push_back(state->peers.size());
      state->peer_by_id.emplace(info.peer_id, state->peers.size());
      state->peers.push_back(std::move(peer));
    }
  }
  if (config.source == FleetSource::kEvents) {
    auto events = state->producer->partitionCount(topics.events(), kSetupTimeout);
    if (!events) return td::unexpected(events.error());
    for (int p = 0; p < *events; ++p) reads.emplace(topics.events(), p);
  }
  std::vector<kafka::TopicPartitionOffset> from_end;
  for (const auto& [topic, partition] : reads) {
    auto marks = state->reader->watermarks(topic, partition, kSetupTimeout);
    if (!marks) return td::unexpected(marks.error());
    from_end.push_back({topic, partition, marks->second});
  }
  TD_RETURN_IF_ERROR(state->reader->assign(from_end));
  return std::unique_ptr<Fleet>(new Fleet(std::move(state)));
}

Fleet::Fleet(std::unique_ptr<State> state) : state_(std::move(state)) {}
Fleet::~Fleet() = default;

td::Status Fleet::join(SteadyTime deadline) {
  auto& s = *state_;
  s.answering = false;
  TD_RETURN_IF_ERROR(s.registerAll());
  return s.pumpUntil(
      [&s] { return s.peers_joined == s.peers.size() && s.groups_assigned == s.groups.size(); },
      deadline, "every peer joined and every group assigned");
}

td::Status Fleet::drive(Goal goal, SteadyTime deadline) {
  auto& s = *state_;
  s.answering = true;
  TD_RETURN_IF_ERROR(s.answerHeld());
  const std::size_t groups = s.groups.size();
  auto status =
      goal == Goal::kAllCompleted
          ? s.pumpUntil([&s, groups] { return s.groups_completed == groups; }, deadline,
                        "every group completed")
          : s.pumpUntil([&s, groups] { return s.groups_parked + s.groups_completed == groups; },
                        deadline, "every group at its quota");
  s.answering = false;
  return status;
}

td::Status Fleet::idle(SteadyTime until) {
  state_->answering = false;
  return state_->pumpUntil([until] { return Clock::now() >= until; }, until + kSetupTimeout,
                           "idle period");
}

td::Status Fleet::checkCompleted() const {
  const auto steps = state_->config.schema->steps.size();
  for (const auto& group : state_->groups) {
    if (!group.completed || group.finished != steps || group.summary_steps != steps) {
      return makeError(td::Errc::kInternal,
                       fmt::format("fleet: group {} {}: {} steps finished, GroupCompleted lists "
                                   "{}, expected {}",
                                   group.id.empty() ? "(never joined)" : group.id,
                                   group.completed ? "completed" : "did not complete",
                                   group.finished, group.summary_steps, steps));
    }
  }
  return {};
}

const FleetCounters& Fleet::counters() const { return state_->counters; }
const std::vector<double>& Fleet::dispatchMs() const { return state_->dispatch_ms; }
std::optional<SteadyTime> Fleet::firstAnswer() const { return state_->first_answer; }
SteadyTime Fleet::lastCompletion() const { return state_->last_completion; }
std::size_t Fleet::groupCount() const { return state_->groups.size(); }
std::size_t Fleet::groupsAssigned() const { return state_->groups_assigned; }
std::size_t Fleet::peerCount() const { return state_->peers.size(); }
double Fleet::addSeconds() const { return state_->add_seconds; }

}  // namespace td::bench
