#include "simulation/sim_worker.h"

#include <fmt/format.h>

#include <deque>
#include <optional>

#include "protocol/protocol.h"
#include "td/v1/assignments.pb.h"
#include "td/v1/completions.pb.h"
#include "td/v1/joins.pb.h"
#include "worker/identity.h"
#include "worker/session.h"

namespace td::sim {

namespace {

class SimWorker {
 public:
  SimWorker(MemoryBus& bus, const WorkerSpec& spec, std::vector<Execution>& executions,
            WorkerOutcome& outcome)
      : bus_(bus), s_(bus.scheduler()), spec_(spec), executions_(executions), outcome_(outcome) {}

  void run() {
    for (int sessions = 0; sessions < 5; ++sessions) {
      const auto joined = join();
      if (!joined) return;
      if (!follow(*joined)) return;   // done, replaced or failed
    }
    outcome_.error = "registered five sessions and none ended with its group";
  }

 private:
  // Registers with a new session and waits for the reply; nullopt on a rejection.
  std::optional<td::v1::GroupJoined> join() {
    session_ = fmt::format("{}-s{:x}", spec_.peer_id, s_.rng().next() & 0xffffffffULL);
    worker::PeerInfo info;
    info.peer_id = spec_.peer_id;
    info.repos.push_back(spec_.repo);
    info.remote_cache_id = "cache";
    registration_ = worker::buildRegistration(info, session_, *spec_.schema);
    key_ = registration_.compatibility_key();
    const auto& topics = bus_.options().topics;
    partition_ = protocol::partitionFor(key_, bus_.partitionCount(topics.registrations()));
    std::int64_t next = bus_.high(topics.joins(), partition_);
    td::v1::RegistrationRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    *record.mutable_registered() = registration_;
    send(topics.registrations(), record.SerializeAsString());
    while (true) {
      const auto& log = bus_.log(topics.joins(), partition_);
      for (; next < static_cast<std::int64_t>(log.size()); ++next) {
        td::v1::JoinRecord reply;
        if (!reply.ParseFromString(log[static_cast<std::size_t>(next)].value)) continue;
        if (reply.has_rejected() && reply.rejected().session_id() == session_) {
          outcome_.error = "registration rejected: " + reply.rejected().reason();
          return std::nullopt;
        }
        if (reply.has_joined() && reply.joined().session_id() == session_) return reply.joined();
      }
      s_.await(kNever, [&] { return bus_.high(topics.joins(), partition_) > next; });
    }
  }

  // Follows the group; true when the session ended as lost (register again).
  bool follow(const td::v1::GroupJoined& joined) {
    outcome_.group_id = joined.group_id();
    worker::Session session(spec_.peer_id, session_, joined.group_id(), *spec_.schema);
    const std::string topic = joined.assign_topic();
    const Millis heartbeat_every{joined.heartbeat_interval_ms() > 0
                                     ? static_cast<std::int64_t>(joined.heartbeat_interval_ms())
                                     : 1000};
    Millis next_heartbeat = s_.now();
    std::int64_t next = 0;
    std::deque<worker::RunStep> pending;
    std::optional<std::size_t> running;   // index into executions_
    Millis ends_at = kNever;
    std::optional<int> done;
    std::optional<worker::EndSession> ended;
    while (true) {
      if (!done && !ended && s_.now() >= next_heartbeat) {
        heartbeat(joined.group_id(), running);
        next_heartbeat = s_.now() + heartbeat_every;
      }
      const auto& log = bus_.log(topic, 0);
      for (; next < static_cast<std::int64_t>(log.size()); ++next) {
        td::v1::AssignmentRecord record;
        if (!record.ParseFromString(log[static_cast<std::size_t>(next)].value)) {
          outcome_.error = "undecodable record on " + topic;
          continue;
        }
        auto action = session.onRecord(record);
        if (auto* run = std::get_if<worker::RunStep>(&action)) {
          pending.push_back(*run);
        } else if (auto* abort = std::get_if<worker::AbortRunning>(&action)) {
          if (running && executions_[*running].step_id == abort->step_id &&
              executions_[*running].attempt == abort->attempt) {
            finish(*running, td::v1::STEP_OUTCOME_ABORTED);
            running.reset();
            ends_at = kNever;
          }
          std::erase_if(pending, [&](const worker::RunStep& p) {
            return p.step->id == abort->step_id && p.attempt == abort->attempt;
          });
        } else if (auto* group_done = std::get_if<worker::GroupDone>(&action)) {
          done = group_done->exit_code;
        } else if (auto* end = std::get_if<worker::EndSession>(&action)) {
          ended = *end;
          pending.clear();
          if (running) {
            finish(*running, td::v1::STEP_OUTCOME_ABORTED);
            running.reset();
            ends_at = kNever;
          }
        }
      }
      if (running && s_.now() >= ends_at) {
        const bool ok = !s_.rng().chance(spec_.fail_percent);
        finish(*running, ok ? td::v1::STEP_OUTCOME_SUCCEEDED : td::v1::STEP_OUTCOME_FAILED);
        running.reset();
        ends_at = kNever;
      }
      if (ended && !running) {
        if (ended->cause == worker::EndSession::Cause::kLost) return true;
        outcome_.finished = true;
        outcome_.exit_code = 4;
        return false;
      }
      if (done && !running) {
        outcome_.finished = true;
        outcome_.exit_code = *done;
        return false;
      }
      if (!running && !pending.empty() && !done) {
        const auto step = pending.front();
        pending.pop_front();
        running = start(joined.group_id(), step);
        ends_at = s_.now() + s_.rng().between(spec_.min_step, spec_.max_step);
      }
      const Millis wake = std::min(ends_at, (done || ended) ? kNever : next_heartbeat);
      s_.await(wake, [&] { return bus_.high(topic, 0) > next; });
    }
  }

  std::size_t start(const std::string& group_id, const worker::RunStep& step) {
    Execution e;
    e.group_id = group_id;
    e.step_id = step.step->id;
    e.attempt = step.attempt;
    e.peer_id = spec_.peer_id;
    e.session_id = session_;
    e.started = s_.now();
    executions_.push_back(e);
    const std::size_t index = executions_.size() - 1;   // before send(): others append too
    td::v1::CompletionRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& started = *record.mutable_started();
    started.set_peer_id(spec_.peer_id);
    started.set_session_id(session_);
    started.set_group_id(group_id);
    started.set_step_id(e.step_id);
    started.set_attempt(e.attempt);
    started.set_started_at_ms(s_.now().count());
    send(bus_.options().topics.completions(), record.SerializeAsString());
    return index;
  }

  void finish(std::size_t index, td::v1::StepOutcome outcome) {
    Execution& e = executions_[index];
    e.ended = s_.now();
    e.succeeded = outcome == td::v1::STEP_OUTCOME_SUCCEEDED;
    e.aborted = outcome == td::v1::STEP_OUTCOME_ABORTED;
    td::v1::CompletionRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& finished = *record.mutable_finished();
    finished.set_peer_id(e.peer_id);
    finished.set_session_id(e.session_id);
    finished.set_group_id(e.group_id);
    finished.set_step_id(e.step_id);
    finished.set_attempt(e.attempt);
    finished.set_outcome(outcome);
    finished.set_exit_code(e.succeeded ? 0 : 1);
    finished.set_duration_ms(static_cast<std::uint64_t>((e.ended - e.started).count()));
    send(bus_.options().topics.completions(), record.SerializeAsString());
  }

  void heartbeat(const std::string& group_id, std::optional<std::size_t> running) {
    td::v1::RegistrationRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& hb = *record.mutable_heartbeat();
    hb.set_peer_id(spec_.peer_id);
    hb.set_session_id(session_);
    hb.set_group_id(group_id);
    if (running) {
      hb.set_running_step_id(executions_[*running].step_id);
      hb.set_running_attempt(executions_[*running].attempt);
    }
    hb.set_sent_at_ms(s_.now().count());
    send(bus_.options().topics.registrations(), record.SerializeAsString());
  }

  // Produces and waits for the acknowledgement (through outages), as td-worker's publish().
  void send(const std::string& topic, const std::string& value) {
    s_.hop();
    if (bus_.down()) s_.await(bus_.downUntil());
    bus_.append(topic, partition_, key_, value);
    s_.hop();
  }

  MemoryBus& bus_;
  Scheduler& s_;
  const WorkerSpec& spec_;
  std::vector<Execution>& executions_;
  WorkerOutcome& outcome_;
  td::v1::PeerRegistered registration_;
  std::string session_;
  std::string key_;
  std::int32_t partition_ = 0;
};

}  // namespace

void runWorker(MemoryBus& bus, const WorkerSpec& spec, std::vector<Execution>& executions,
               WorkerOutcome& outcome) {
  SimWorker(bus, spec, executions, outcome).run();
}

}  // namespace td::sim
