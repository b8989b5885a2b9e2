#include "benchmarks/sim_worker.h"

#include <algorithm>
#include <memory>
#include <thread>

#include "benchmarks/client_settings.h"
#include "kafka/kafka.h"
#include "td/v1/assignments.pb.h"
#include "td/v1/completions.pb.h"
#include "td/v1/joins.pb.h"
#include "worker/session.h"

namespace td::bench {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPollSlice{50};
constexpr std::chrono::seconds kMetadataTimeout{30};
constexpr std::chrono::seconds kFlushTimeout{10};

double msBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

class SimWorker {
 public:
  explicit SimWorker(const SimWorkerConfig& config)
      : config_(config),
        session_id_(worker::newSessionId()),
        registration_(worker::buildRegistration(config.peer, session_id_, *config.schema)) {}

  td::Result<SimWorkerOutcome> run(std::stop_token stop) {
    if (auto prepared = prepareJoin(); !prepared) {
      config_.gate->arrive();
      return td::unexpected(prepared.error());
    }
    if (!config_.gate->arriveAndWait(stop)) {
      return makeError(td::Errc::kUnavailable, config_.peer.peer_id + ": stopped");
    }
    auto joined = registerAndJoin(stop);
    if (!joined) return td::unexpected(joined.error());
    outcome_.group_id = joined->group_id();
    TD_RETURN_IF_ERROR(follow(*joined, stop));
    return std::move(outcome_);
  }

 private:
  // Everything before the registration: clients, partition, td.joins read from its end.
  td::Status prepareJoin() {
    TD_RETURN_IF_ERROR(openClients());
    const auto& topics = config_.topics;
    auto count = producer_->partitionCount(topics.registrations(), kMetadataTimeout);
    if (!count) return td::unexpected(count.error());
    partition_ = protocol::partitionFor(registration_.compatibility_key(), *count);
    auto marks = reader_->watermarks(topics.joins(), partition_, kMetadataTimeout);
    if (!marks) return td::unexpected(marks.error());
    return reader_->assign({{topics.joins(), partition_, marks->second}});
  }

  td::Status openClients() {
    const std::string client_id = "td-bench-" + config_.peer.peer_id;
    auto producer =
        kafka::Producer::create(producerSettings(config_.bootstrap, client_id, config_.kafka));
    if (!producer) return td::unexpected(producer.error());
    auto reader =
        kafka::PartitionReader::create(readerSettings(config_.bootstrap, client_id, config_.broker_kind, config_.kafka),
                                       kafka::kHotFetchWindow);
    if (!reader) return td::unexpected(reader.error());
    producer_ = std::move(*producer);
    reader_ = std::move(*reader);
    return {};
  }

  // produce + flush, and the broker's acknowledgement checked (td-worker's publish, minus its
  // retry loop: a benchmark reports trouble rather than hiding it).
  td::Status publish(const std::string& topic, const std::string& value) {
    const auto failures_before = delivery_failures_;
    reader_->heat();   // as td-worker: what it writes asks for an answer
    TD_RETURN_IF_ERROR(
        producer_->produce(topic, partition_, registration_.compatibility_key(), value,
                           [this](const td::Status& result, std::int32_t, std::int64_t) {
                             if (!result) {
                               ++delivery_failures_;
                               last_delivery_error_ = result.error().message();
                             }
                           }));
    TD_RETURN_IF_ERROR(producer_->flush(kFlushTimeout));
    if (delivery_failures_ != failures_before) {
      return makeError(td::Errc::kUnavailable, "not delivered: " + last_delivery_error_);
    }
    return {};
  }

  td::Result<td::v1::GroupJoined> registerAndJoin(std::stop_token stop) {
    td::v1::RegistrationRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    *record.mutable_registered() = registration_;
    TD_RETURN_IF_ERROR(publish(config_.topics.registrations(), record.SerializeAsString()));

    const auto deadline = Clock::now() + config_.join_timeout;
    while (Clock::now() < deadline && !stop.stop_requested()) {
      auto batch = reader_->poll(100, kPollSlice);
      if (!batch) return td::unexpected(batch.error());
      for (const auto& msg : *batch) {
        td::v1::JoinRecord reply;
        if (!reply.ParseFromString(msg.value)) continue;  // not ours to judge
        if (auto joined = replyFor(reply)) return std::move(*joined);
      }
    }
    return makeError(stop.stop_requested() ? td::Errc::kUnavailable : td::Errc::kTimeout,
                     config_.peer.peer_id + ": no GroupJoined reply");
  }

  // Our GroupJoined; an error for our RegistrationRejected or a finished group; else nothing.
  std::optional<td::Result<td::v1::GroupJoined>> replyFor(const td::v1::JoinRecord& reply) const {
    const auto& me = registration_;
    if (reply.has_rejected() && reply.rejected().peer_id() == me.peer_id() &&
        reply.rejected().session_id() == session_id_) {
      return makeError(td::Errc::kInvalidArgument,
                       me.peer_id() + ": registration rejected: " + reply.rejected().reason());
    }
    if (!reply.has_joined() || reply.joined().peer_id() != me.peer_id() ||
        reply.joined().session_id() != session_id_) {
      return std::nullopt;
    }
    if (reply.joined().status() != td::v1::GROUP_STATUS_RUNNING) {
      return makeError(td::Errc::kInvalidArgument, me.peer_id() + ": joined group " +
                                                       reply.joined().group_id() +
                                                       " that is no longer running");
    }
    return reply.joined();
  }

  td::Status follow(const td::v1::GroupJoined& joined, std::stop_token stop) {
    worker::Session session(registration_.peer_id(), session_id_, joined.group_id(),
                            *config_.schema);
    // Offset 0, as td-worker reads it (worker_app.cpp, WorkerApp::follow).
    TD_RETURN_IF_ERROR(reader_->assign({{joined.assign_topic(), 0, 0}}));
    auto idle_deadline = Clock::now() + config_.idle_timeout;
    const std::chrono::milliseconds heartbeat_every(
        joined.heartbeat_interval_ms() > 0 ? joined.heartbeat_interval_ms() : 1000);
    auto next_heartbeat = Clock::now();
    while (!stop.stop_requested()) {
      if (Clock::now() >= next_heartbeat) {
        TD_RETURN_IF_ERROR(heartbeat(session));
        next_heartbeat = Clock::now() + heartbeat_every;
      }
      auto batch = reader_->poll(100, kPollSlice);
      if (!batch) return td::unexpected(batch.error());
      const auto arrival = Clock::now();
      if (batch->empty()) {
        if (arrival > idle_deadline) {
          return makeError(td::Errc::kTimeout, config_.peer.peer_id + ": no assignment record in " +
                                                   std::to_string(config_.idle_timeout.count()) +
                                                   " ms");
        }
        continue;
      }
      idle_deadline = arrival + config_.idle_timeout;
      for (const auto& msg : *batch) {
        td::v1::AssignmentRecord record;
        if (!record.ParseFromString(msg.value)) continue;
        auto done = onRecord(session, record, arrival);
        if (!done) return td::unexpected(done.error());
        if (*done) return {};
      }
    }
    return makeError(td::Errc::kUnavailable, config_.peer.peer_id + ": stopped");
  }

  // As td-worker's heartbeat(): fire and forget (the next one covers a lost one), so no flush.
  td::Status heartbeat(const worker::Session& session) {
    td::v1::RegistrationRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& beat = *record.mutable_heartbeat();
    beat.set_peer_id(registration_.peer_id());
    beat.set_session_id(session_id_);
    beat.set_group_id(session.groupId());
    TD_RETURN_IF_ERROR(producer_->produce(config_.topics.registrations(), partition_,
                                          registration_.compatibility_key(),
                                          record.SerializeAsString()));
    producer_->poll(0);
    return {};
  }

  // Acts on one record; true once the group completed.
  td::Result<bool> onRecord(worker::Session& session, const td::v1::AssignmentRecord& record,
                            SteadyTime arrival) {
    const worker::Action action = session.onRecord(record);
    if (const auto* run = std::get_if<worker::RunStep>(&action)) {
      TD_RETURN_IF_ERROR(runStep(session, *run, arrival));
      return false;
    }
    if (const auto* reject = std::get_if<worker::RejectStep>(&action)) {
      return makeError(td::Errc::kInvalidArgument,
                       config_.peer.peer_id + ": assigned an unknown step " + reject->step_id);
    }
    if (const auto* done = std::get_if<worker::GroupDone>(&action)) {
      if (done->exit_code != 0 || !done->record.has_completed()) {
        return makeError(td::Errc::kUnavailable,
                         session.groupId() + " failed: " + done->record.failed().reason());
      }
      outcome_.completed_at = arrival;
      outcome_.summary_steps = static_cast<std::size_t>(done->record.completed().steps_size());
      return true;
    }
    return false;  // NothingToDo, or an AbortStep for a step that is already finished
  }

  td::Status runStep(const worker::Session& session, const worker::RunStep& run,
                     SteadyTime arrival) {
    if (!outcome_.first_assignment) outcome_.first_assignment = arrival;
    // How long this peer waited for it: 0 for a step it already held (taken ahead, slots > 1).
    if (finished_at_) {
      outcome_.dispatch_ms.push_back(std::max(0.0, msBetween(*finished_at_, arrival)));
    }
    td::v1::CompletionRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    if (config_.report_started) {
      auto& started = *record.mutable_started();
      started.set_peer_id(registration_.peer_id());
      started.set_session_id(session_id_);
      started.set_group_id(session.groupId());
      started.set_step_id(run.step->id);
      started.set_attempt(run.attempt);
      TD_RETURN_IF_ERROR(publish(config_.topics.completions(), record.SerializeAsString()));
    }
    // MAKESPAN (issue 7): the step's simulated run time.
    std::uint64_t slept_ms = 0;
    if (config_.step_duration) {
      const auto slept_from = Clock::now();
      std::this_thread::sleep_for(config_.step_duration(run.step->id));
      const double slept = msBetween(slept_from, Clock::now());
      outcome_.busy_ms += slept;
      slept_ms = static_cast<std::uint64_t>(slept);
    }
    outcome_.steps_run.push_back(run.step->id);
    auto& finished = *record.mutable_finished();  // replaces `started` in the oneof
    finished.set_peer_id(registration_.peer_id());
    finished.set_session_id(session_id_);
    finished.set_group_id(session.groupId());
    finished.set_step_id(run.step->id);
    finished.set_attempt(run.attempt);
    finished.set_outcome(td::v1::STEP_OUTCOME_SUCCEEDED);
    finished.set_duration_ms(slept_ms);
    finished_at_ = Clock::now();
    outcome_.last_finished = finished_at_;
    TD_RETURN_IF_ERROR(publish(config_.topics.completions(), record.SerializeAsString()));
    ++outcome_.steps_finished;
    return {};
  }

  const SimWorkerConfig& config_;
  std::string session_id_;
  td::v1::PeerRegistered registration_;
  std::int32_t partition_ = 0;
  SimWorkerOutcome outcome_;
  std::optional<SteadyTime> finished_at_;  // just before our last StepFinished was produced
  // Written by delivery callbacks, which run on this thread inside produce()/flush() and in
  // the producer's destructor: declared before producer_ so they outlive it.
  std::uint64_t delivery_failures_ = 0;
  std::string last_delivery_error_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::PartitionReader> reader_;
};
}  // namespace

td::Result<SimWorkerOutcome> runSimWorker(const SimWorkerConfig& config, std::stop_token stop) {
  SimWorker worker(config);
  return worker.run(stop);
}

}  // namespace td::bench
