#include "worker/kafka/worker_app.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "common/log.h"
#include "td/v1/assignments.pb.h"
#include "td/v1/completions.pb.h"
#include "td/v1/joins.pb.h"

namespace td::worker {

namespace {
using Clock = std::chrono::steady_clock;

td::v1::StepOutcome toOutcome(RunOutcome outcome) {
  switch (outcome) {
    case RunOutcome::kSucceeded: return td::v1::STEP_OUTCOME_SUCCEEDED;
    case RunOutcome::kFailed: return td::v1::STEP_OUTCOME_FAILED;
    case RunOutcome::kTimedOut: return td::v1::STEP_OUTCOME_TIMED_OUT;
    case RunOutcome::kAborted: return td::v1::STEP_OUTCOME_ABORTED;
  }
  return td::v1::STEP_OUTCOME_FAILED;
}

// Put in front of the worker logger's sinks while the progress line may be shown: erases the
// line before each log line, so the two never share a terminal row.
class ClearProgressSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  ClearProgressSink(ProgressLine& line, std::vector<spdlog::sink_ptr> inner)
      : line_(line), inner_(std::move(inner)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    line_.clear();
    for (auto& sink : inner_) {
      if (sink->should_log(msg.level)) sink->log(msg);
    }
  }
  void flush_() override {
    for (auto& sink : inner_) sink->flush();
  }

 private:
  ProgressLine& line_;
  std::vector<spdlog::sink_ptr> inner_;
};

// Puts a ClearProgressSink in front of every registered logger's sinks (td_kafka's as well
// as the worker's), and restores them on destruction. Nothing when the line is disabled.
class ProgressAwareLog {
 public:
  explicit ProgressAwareLog(ProgressLine& line) {
    if (!line.enabled()) return;
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) {
      saved_.emplace_back(logger, logger->sinks());
      logger->sinks() = {std::make_shared<ClearProgressSink>(line, logger->sinks())};
    });
  }
  ~ProgressAwareLog() {
    for (auto& [logger, sinks] : saved_) logger->sinks() = sinks;
  }
  ProgressAwareLog(const ProgressAwareLog&) = delete;
  ProgressAwareLog& operator=(const ProgressAwareLog&) = delete;

 private:
  std::vector<std::pair<std::shared_ptr<spdlog::logger>, std::vector<spdlog::sink_ptr>>> saved_;
};

// `error` as the worker reports it. An access-denied error (kafka/error.h) says what was
// refused: "not authorized to write td.registrations: ... (TOPIC_AUTHORIZATION_FAILED)", or
// "authentication failed: ..."; any other error is returned as it is.
td::Error refused(const td::Error& error, const std::string& operation) {
  if (!kafka::isAccessDenied(error.code())) return error;
  if (kafka::isAuthenticationFailure(error.code())) {
    return td::Error(error.code(), "authentication failed: " + error.message());
  }
  return td::Error(error.code(), "not authorized to " + operation + ": " + error.message());
}

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

WorkerApp::WorkerApp(WorkerOptions options, const schema::Schema& schema)
    : options_(std::move(options)),
      schema_(schema),
      session_id_(newSessionId()),
      broker_watch_(options_.broker_timeout, Clock::now()),
      log_(td::log::get("worker")) {}

WorkerApp::~WorkerApp() {
  for (int fd : signal_pipe_) {
    if (fd >= 0) ::close(fd);
  }
}

td::Result<std::unique_ptr<WorkerApp>> WorkerApp::create(WorkerOptions options,
                                                         const schema::Schema& schema) {
  std::unique_ptr<WorkerApp> app(new WorkerApp(std::move(options), schema));
  if (::pipe2(app->signal_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return makeError(td::Errc::kIo, "pipe2 failed");
  }
  const auto& o = app->options_;
  const std::string client_id = "td-worker-" + o.peer.peer_id;
  const auto producer_props = kafka::producerSettings(o.bootstrap_servers, client_id, o.kafka);
  const auto reader_props = kafka::readerSettings(o.bootstrap_servers, client_id,
                                                  app->reader_kind_, o.kafka);
  auto producer = kafka::Producer::create(producer_props);
  if (!producer) return td::unexpected(producer.error());
  auto reader = kafka::PartitionReader::create(reader_props, kafka::kHotFetchWindow);
  if (!reader) return td::unexpected(reader.error());
  app->producer_ = std::move(*producer);
  app->producer_settings_ = producer_props;
  app->reader_ = std::move(*reader);
  if (o.log_cap > 0) {
    auto logs = LogShipper::create(o.bootstrap_servers, client_id, o.kafka, o.topics.logs(),
                                   o.log_cap);
    if (!logs) return td::unexpected(logs.error());
    app->logs_ = std::move(*logs);
  }
  app->registration_ = buildRegistration(o.peer, app->session_id_, schema);
  return app;
}

void WorkerApp::stop() {
  stopping_ = 1;
  char byte = 1;
  [[maybe_unused]] auto n = ::write(signal_pipe_[1], &byte, 1);
}

Clock::time_point WorkerApp::leaveDeadline() {
  // Leaving is best effort: with the broker up the last reports are acknowledged in
  // milliseconds; without it nobody would read them anyway.
  if (!leave_deadline_) leave_deadline_ = Clock::now() + std::chrono::seconds(2);
  return *leave_deadline_;
}

void WorkerApp::brokerAnswered() { broker_watch_.contact(Clock::now()); }

td::Status WorkerApp::brokerSilent(std::string_view waiting,
                                   const std::optional<td::Error>& error) {
  const auto now = Clock::now();
  // What the waiting operation saw, and what librdkafka last said about the connection.
  std::string why = error ? error->message() : std::string();
  if (const auto last = producer_->lastError()) {
    why += (why.empty() ? "" : "; ") + last->message();
  }
  if (why.empty()) why = "no answer yet";
  const auto silent = std::chrono::duration_cast<std::chrono::seconds>(
      broker_watch_.silentFor(now));
  const auto bound = std::chrono::duration_cast<std::chrono::seconds>(broker_watch_.bound());
  if (broker_watch_.expired(now)) {
    return makeError(td::Errc::kUnavailable,
                     fmt::format("the Kafka broker at {} did not answer for {} s while {} "
                                 "(--broker-timeout {}): {}",
                                 options_.bootstrap_servers, silent.count(), waiting,
                                 bound.count(), why));
  }
  if (broker_watch_.shouldReport(now)) {
    log_->warn("no answer from the Kafka broker at {} for {} s while {}: {}; giving up after {} s "
               "(--broker-timeout)",
               options_.bootstrap_servers, silent.count(), waiting, why, bound.count());
  }
  return {};
}

void WorkerApp::probeBroker() {
  constexpr auto kEvery = std::chrono::seconds(3);
  const auto now = Clock::now();
  if (broker_watch_.silentFor(now) < kEvery || now - last_probe_ < kEvery) return;
  last_probe_ = now;
  if (producer_->partitionCount(options_.topics.registrations(), std::chrono::seconds(1))) {
    brokerAnswered();
  }
}

template <typename F>
auto WorkerApp::untilAnswered(std::string_view waiting, F request) -> decltype(request()) {
  while (true) {
    auto answer = request();
    if (answer) {
      brokerAnswered();
      return answer;
    }
    if (kafka::isAccessDenied(answer.error().code())) return answer;
    if (stopping_) return makeError(td::Errc::kUnavailable, "interrupted while registering");
    if (auto silent = brokerSilent(waiting, answer.error()); !silent) {
      return td::unexpected(silent.error());
    }
  }
}

td::Status WorkerApp::publish(const std::string& topic, const std::string& value) {
  // A result is kept until the broker acknowledges it. The record is produced once and the
  // producer retries it (idempotently) for message.timeout.ms; only a final delivery failure
  // makes us produce it again, so an outage never duplicates it. The wait ends when the
  // broker stays silent past --broker-timeout, or soon after stop().
  const std::string& key = registration_.compatibility_key();
  const std::string waiting = "waiting for it to acknowledge a record on " + topic;
  // What the worker writes asks for an answer (a GroupJoined, the next assignment): read hot.
  reader_->heat();
  for (int attempt = 1;; ++attempt) {
    td::Status delivered;
    bool done = false;
    auto status = producer_->produce(
        topic, partition_, key, value,
        [&](const td::Status& result, std::int32_t, std::int64_t) {
          delivered = result;
          done = true;
        },
        1000);
    if (status) {
      while (!done) {
        auto flushed = producer_->flush(std::chrono::milliseconds(250));
        if (done) break;
        heartbeatIfDue();
        // Credentials the broker refuses: the record will never be acknowledged.
        if (auto refusal = producer_->refusal(); refusal && kafka::isAccessDenied(refusal->code())) {
          return td::unexpected(refused(*refusal, "write " + topic));
        }
        if (stopping_) {
          if (Clock::now() >= leaveDeadline()) {
            return makeError(td::Errc::kUnavailable, "broker unreachable while leaving");
          }
          continue;
        }
        TD_RETURN_IF_ERROR(brokerSilent(waiting));
      }
      if (delivered) {
        brokerAnswered();
        reader_->heat();   // the answer comes after the acknowledgement, however slow it was
        return {};
      }
      status = delivered;
    }
    // Refused by an ACL (the delivery failed, or the producer failed fatally because its
    // principal may write nothing at all): retrying cannot help.
    if (status.error().code() == kafka::Errc::kFatal && producer_->refusal()) {
      status = td::unexpected(*producer_->refusal());
    }
    if (kafka::isAccessDenied(status.error().code())) {
      return td::unexpected(refused(status.error(), "write " + topic));
    }
    renewProducerIfDead();
    if (stopping_) return status;
    TD_RETURN_IF_ERROR(brokerSilent(waiting, status.error()));
    log_->warn("publishing to {} failed (attempt {}): {}; retrying", topic, attempt,
               status.error().message());
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1000, 200 * attempt)));
  }
}

bool WorkerApp::renewProducerIfDead() {
  const auto refusal = producer_->refusal();
  if (!refusal || kafka::isAccessDenied(refusal->code())) return false;
  auto fresh = kafka::Producer::create(producer_settings_);
  if (!fresh) {
    log_->warn("peer={} the producer failed for good ({}) and a new one could not be made: {}",
               registration_.peer_id(), refusal->message(), fresh.error().message());
    return false;
  }
  log_->warn("peer={} the producer failed for good ({}); a new one takes over",
             registration_.peer_id(), refusal->message());
  // The old one's undelivered records fail now, in its destructor (their callbacks see it).
  producer_ = std::move(*fresh);
  return true;
}

void WorkerApp::heartbeatIfDue() {
  if (!heartbeating_ || Clock::now() < next_heartbeat_) return;
  heartbeat();
  next_heartbeat_ = Clock::now() + heartbeat_every_;
}

void WorkerApp::heartbeat() {
  renewProducerIfDead();
  td::v1::RegistrationRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& hb = *record.mutable_heartbeat();
  hb.set_peer_id(registration_.peer_id());
  hb.set_session_id(session_id_);
  hb.set_group_id(session_->groupId());
  if (running_) {
    hb.set_running_step_id(running_->step_id);
    hb.set_running_attempt(running_->attempt);
  }
  hb.set_sent_at_ms(wallMs());
  // Fire and forget: a lost heartbeat is covered by the next one, well within the lease. Its
  // acknowledgement shows the broker answers (the callback runs on this thread, in poll()).
  auto status = producer_->produce(
      options_.topics.registrations(), partition_, registration_.compatibility_key(),
      record.SerializeAsString(),
      [this](const td::Status& result, std::int32_t, std::int64_t) {
        if (result) brokerAnswered();
      },
      /*block_ms=*/0);
  if (!status) log_->debug("heartbeat not queued: {}", status.error().message());
  producer_->poll(0);
}

td::Status WorkerApp::adoptBrokerKind() {
  // The broker answered (a metadata request), so the cluster's id is known.
  const auto kind = kafka::brokerKindOf(producer_->clusterId(std::chrono::milliseconds(1000)));
  if (kind == reader_kind_) return {};
  const std::string client_id = "td-worker-" + options_.peer.peer_id;
  auto reader = kafka::PartitionReader::create(
      kafka::readerSettings(options_.bootstrap_servers, client_id, kind, options_.kafka),
      kafka::kHotFetchWindow);
  if (!reader) return td::unexpected(reader.error());
  reader_ = std::move(*reader);   // nothing assigned or read yet
  reader_kind_ = kind;
  return {};
}

td::Result<td::v1::GroupJoined> WorkerApp::registerAndJoin() {
  const auto& topics = options_.topics;
  // Errors name what was refused: describing a topic comes with WRITE and READ on it. Each
  // request is asked again until the broker answers or stays silent past --broker-timeout.
  auto count = untilAnswered("registering (metadata of " + topics.registrations() + ")", [&] {
    return producer_->partitionCount(topics.registrations(), std::chrono::seconds(2));
  });
  if (!count) return td::unexpected(refused(count.error(), "write " + topics.registrations()));
  partition_ = protocol::partitionFor(registration_.compatibility_key(), *count);
  TD_RETURN_IF_ERROR(adoptBrokerKind());
  auto marks = untilAnswered("registering (watermarks of " + topics.joins() + ")", [&] {
    return reader_->watermarks(topics.joins(), partition_, std::chrono::seconds(2));
  });
  if (!marks) return td::unexpected(refused(marks.error(), "read " + topics.joins()));
  if (auto assigned = reader_->assign({{topics.joins(), partition_, marks->second}}); !assigned) {
    return td::unexpected(refused(assigned.error(), "read " + topics.joins()));
  }

  td::v1::RegistrationRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *record.mutable_registered() = registration_;
  TD_RETURN_IF_ERROR(publish(topics.registrations(), record.SerializeAsString()));
  log_->info("peer={} session={} registered (schema {} digest {}, key {}, partition {})",
             registration_.peer_id(), session_id_.substr(0, 8), schema_.name,
             schema_.digest.substr(0, 12), registration_.compatibility_key().substr(0, 12),
             partition_);

  const auto deadline = Clock::now() + options_.join_timeout;
  while (Clock::now() < deadline && !stopping_) {
    auto batch = reader_->poll(100, std::chrono::milliseconds(100));
    if (!batch) return td::unexpected(refused(batch.error(), "read " + topics.joins()));
    if (!batch->empty()) brokerAnswered();
    probeBroker();
    TD_RETURN_IF_ERROR(brokerSilent("waiting for a coordinator's reply on " + topics.joins()));
    for (const auto& msg : *batch) {
      td::v1::JoinRecord reply;
      if (!reply.ParseFromString(msg.value)) {
        log_->warn("ignoring an undecodable record on {}[{}]@{}", msg.topic, msg.partition,
                   msg.offset);
        continue;
      }
      if (reply.has_rejected() && reply.rejected().peer_id() == registration_.peer_id() &&
          reply.rejected().session_id() == session_id_) {
        return makeError(td::Errc::kInvalidArgument,
                         "the coordinator rejected the registration: " + reply.rejected().reason());
      }
      if (reply.has_joined() && reply.joined().peer_id() == registration_.peer_id() &&
          reply.joined().session_id() == session_id_) {
        return reply.joined();
      }
    }
  }
  if (stopping_) return makeError(td::Errc::kUnavailable, "interrupted while joining");
  return makeError(td::Errc::kTimeout,
                   fmt::format("no reply from a coordinator within the join timeout ({} s, "
                               "--join-timeout); the broker at {} answers, so is a coordinator "
                               "running on it with the same --topic-prefix?",
                               std::chrono::duration_cast<std::chrono::seconds>(
                                   options_.join_timeout).count(),
                               options_.bootstrap_servers));
}

int WorkerApp::run() {
  auto code = joinAndFollow();
  // The steps' output, for td-audit logs: best effort, bounded like the other final reports.
  if (logs_) logs_->flush(std::chrono::seconds(stopping_ ? 2 : 10));
  if (code) return *code;
  // Leaving on a signal: whatever failed on the way out (the broker gone) does not matter.
  if (stopping_) return kExitInterrupted;
  if (!kafka::isAccessDenied(code.error().code())) {
    // Infrastructure, not the build: a CI system may retry the job (docs/operations.md).
    log_->critical("{}; exiting {} (infrastructure)", code.error().message(),
                   kExitInfrastructure);
    return kExitInfrastructure;
  }
  // A configuration error of the deployment, not broker trouble (docs/operations.md).
  const auto& topics = options_.topics;
  log_->critical(
      "{}. {} (docs/configuration.md, \"Secure clusters\")", code.error().message(),
      kafka::isAuthenticationFailure(code.error().code())
          ? std::string("Check the credentials (sasl.username and sasl.password, or the TLS "
                        "key) and sasl.mechanism")
          : fmt::format("td-worker's principal needs WRITE on {} and {}, and READ on {} and on "
                        "the topics prefixed {}, as deploy/create-acls.sh grants",
                        topics.registrations(), topics.completions(), topics.joins(),
                        topics.assign("")));
  return kExitUsage;
}

td::Result<int> WorkerApp::joinAndFollow() {
  while (true) {
    auto joined = registerAndJoin();
    if (!joined) {
      if (stopping_) return kExitInterrupted;
      if (joined.error().code() == td::Errc::kInvalidArgument) {
        log_->error("{}", joined.error().message());
        return kExitUsage;
      }
      return td::unexpected(joined.error());
    }
    log_->info("peer={} joined group={} ({}, members: {})", registration_.peer_id(),
               joined->group_id(), protocol::statusName(joined->status()),
               fmt::join(joined->member_peer_ids(), ","));
    auto code = follow(*joined);
    if (!code || *code != kRejoin) return code;
    newSession();
  }
}

void WorkerApp::newSession() {
  session_id_ = newSessionId();
  registration_ = buildRegistration(options_.peer, session_id_, schema_);
  session_.reset();
  pending_.clear();
}

int WorkerApp::sessionEnded(const EndSession& ended) {
  progress_.clear();
  if (ended.cause == EndSession::Cause::kReplaced) {
    log_->error("peer={} session={} group={}: {}. Another td-worker process registered with "
                "this --peer-id (a retried CI job?) and takes this one's place; this one stops "
                "without running more steps (exit {})",
                registration_.peer_id(), session_id_.substr(0, 8), session_->groupId(),
                ended.reason, kExitReplaced);
    return kExitReplaced;
  }
  log_->warn("peer={} session={} group={}: declared lost by the coordinator ({}); its steps "
             "went to other peers. Registering again with a new session to take new work",
             registration_.peer_id(), session_id_.substr(0, 8), session_->groupId(),
             ended.reason);
  return kRejoin;
}

void WorkerApp::logSilentPeer(const WarnSilentPeer& silent) {
  // A spell that must be over by now (the member was heard, or lost, since): a late joiner
  // reading the topic's history, not a wait. Generous, for clock differences between hosts.
  if (wallMs() > silent.heard_at_ms + 2 * static_cast<std::int64_t>(silent.lease_ms)) return;
  const double silent_s = static_cast<double>(silent.silent_for_ms) / 1000.0;
  const double lease_s = static_cast<double>(silent.lease_ms) / 1000.0;
  if (silent.about_me) {
    log_->warn("peer={} group={}: the coordinator has not heard from this worker for {:.1f} s "
               "(are its heartbeats getting through?); it is declared lost after the {:g} s "
               "lease",
               registration_.peer_id(), session_->groupId(), silent_s, lease_s);
    return;
  }
  log_->info("peer={} group={} waiting for peer {} (running {}), silent for {:.1f} s; it is "
             "declared lost after the {:g} s lease and its step handed to another peer",
             registration_.peer_id(), session_->groupId(), silent.peer_id, silent.step_id,
             silent_s, lease_s);
}

td::Status WorkerApp::startStep(const RunStep& run) {
  const schema::Step& step = *run.step;
  StepSpecToRun spec = specToRun(step.id, step.run, step.timeout, run.attempt);
  if (logs_) spec.on_output = [logs = logs_.get()](std::string_view data) { logs->output(data); };
  td::v1::CompletionRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& started = *record.mutable_started();
  started.set_peer_id(registration_.peer_id());
  started.set_session_id(session_id_);
  started.set_group_id(session_->groupId());
  started.set_step_id(step.id);
  started.set_attempt(run.attempt);
  started.set_started_at_ms(wallMs());
  TD_RETURN_IF_ERROR(publish(options_.topics.completions(), record.SerializeAsString()));

  if (logs_) {
    logs_->begin(session_->groupId(), step.id, run.attempt, registration_.peer_id(), session_id_);
  }
  auto process = StepProcess::start(spec);
  if (!process) {
    // Could not even start it (fork failed, bad working directory): a failed attempt.
    log_->error("step={} attempt={} could not start: {}", step.id, run.attempt,
                process.error().message());
    running_ = Running{nullptr, step.id, run.attempt};
    return finishStep(RunResult{.outcome = RunOutcome::kFailed,
                                .exit_code = -1,
                                .signal = 0,
                                .duration = std::chrono::milliseconds(0),
                                .output_tail = process.error().message()});
  }
  log_->info("peer={} group={} step={} attempt={} started", registration_.peer_id(),
             session_->groupId(), step.id, run.attempt);
  running_ = Running{std::move(*process), step.id, run.attempt};
  step_started_at_ = Clock::now();
  return {};
}

td::v1::StepFinished WorkerApp::finished(const std::string& step_id, std::uint32_t attempt,
                                         td::v1::StepOutcome outcome) const {
  td::v1::StepFinished finished;
  finished.set_peer_id(registration_.peer_id());
  finished.set_session_id(session_id_);
  finished.set_group_id(session_->groupId());
  finished.set_step_id(step_id);
  finished.set_attempt(attempt);
  finished.set_outcome(outcome);
  return finished;
}

td::Status WorkerApp::publishFinished(td::v1::StepFinished finished) {
  td::v1::CompletionRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *record.mutable_finished() = std::move(finished);
  return publish(options_.topics.completions(), record.SerializeAsString());
}

td::Status WorkerApp::finishStep(const RunResult& result) {
  auto report = finished(running_->step_id, running_->attempt, toOutcome(result.outcome));
  report.set_exit_code(result.exit_code);
  report.set_signal(result.signal);
  report.set_duration_ms(static_cast<std::uint64_t>(result.duration.count()));
  report.set_output_tail(result.output_tail);
  if (logs_) logs_->end(report.outcome(), result.exit_code, result.signal);
  log_->info("peer={} group={} step={} attempt={} {} ({}) in {} ms", registration_.peer_id(),
             session_->groupId(), running_->step_id, running_->attempt,
             protocol::outcomeName(report.outcome()),
             protocol::describeExit(result.exit_code, result.signal), result.duration.count());
  running_.reset();
  ++own_done_;
  return publishFinished(std::move(report));
}

td::Status WorkerApp::reportRejected(const RejectStep& reject) {
  log_->error("peer={} group={} step={} attempt={} rejected: {}", registration_.peer_id(),
              session_->groupId(), reject.step_id, reject.attempt, reject.reason);
  auto report = finished(reject.step_id, reject.attempt, td::v1::STEP_OUTCOME_REJECTED);
  report.set_exit_code(-1);
  report.set_output_tail(reject.reason);
  return publishFinished(std::move(report));
}

td::Result<int> WorkerApp::follow(const td::v1::GroupJoined& joined) {
  // The session fences stale owners by the epochs it reads on the assignment topic, not by
  // joined.coordinator_epoch(): see worker/session.h for why.
  session_ = std::make_unique<Session>(registration_.peer_id(), session_id_, joined.group_id(),
                                       schema_);
  log_->debug("peer={} group={} joined through coordinator epoch {}", registration_.peer_id(),
              joined.group_id(), joined.coordinator_epoch());
  // From absolute offset 0 rather than kOffsetBeginning: a logical offset needs a lookup that
  // librdkafka retries only after 500 ms when the topic is new; auto.offset.reset=earliest
  // covers a log whose start was deleted.
  if (auto assigned = reader_->assign({{joined.assign_topic(), 0, 0}}); !assigned) {
    return td::unexpected(refused(assigned.error(), "read " + joined.assign_topic()));
  }
  ProgressAwareLog progress_aware_log(progress_);
  joined_at_ = Clock::now();
  next_draw_ = joined_at_;
  heartbeat_every_ = std::chrono::milliseconds(
      joined.heartbeat_interval_ms() > 0 ? joined.heartbeat_interval_ms() : 1000);
  next_heartbeat_ = Clock::now();
  std::optional<GroupDone> done;
  std::optional<EndSession> ended;   // the coordinator ended this session
  struct StopHeartbeats {
    bool& on;
    ~StopHeartbeats() { on = false; }
  } stop_heartbeats{heartbeating_};
  while (true) {
    heartbeating_ = !done && !ended;
    heartbeatIfDue();
    if (!stopping_ && !done) {
      probeBroker();
      TD_RETURN_IF_ERROR(brokerSilent("following group " + session_->groupId()));
    }
    // Wait for Kafka, the running step or a signal; at most 100 ms so nothing is missed.
    std::vector<pollfd> fds;
    fds.push_back({signal_pipe_[0], POLLIN, 0});
    fds.push_back({reader_->eventFd(), POLLIN, 0});
    if (running_ && running_->process) {
      for (int fd : running_->process->pollFds()) fds.push_back({fd, POLLIN, 0});
    }
    auto wake_at = std::min(next_heartbeat_, Clock::now() + std::chrono::milliseconds(100));
    if (running_ && running_->process) wake_at = std::min(wake_at, running_->process->deadline());
    if (logs_) wake_at = std::min(wake_at, logs_->deadline());
    const int wait_ms = static_cast<int>(std::clamp<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - Clock::now()).count(), 0,
        100));
    ::poll(fds.data(), fds.size(), wait_ms);
    // Step output is about to be echoed: take the progress line away first.
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents != 0 && options_.echo_output) progress_.clear();
    }

    if (stopping_) {
      if (running_ && running_->process) running_->process->abort();
    }
    if (running_ && running_->process) {
      if (auto result = running_->process->service()) TD_RETURN_IF_ERROR(finishStep(*result));
    }
    if (logs_) logs_->tick();
    if (stopping_ && !running_) {
      td::v1::RegistrationRecord record;
      record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
      auto& left = *record.mutable_left();
      left.set_peer_id(registration_.peer_id());
      left.set_session_id(session_id_);
      left.set_group_id(session_->groupId());
      left.set_reason("signal");
      TD_RETURN_IF_ERROR(publish(options_.topics.registrations(), record.SerializeAsString()));
      log_->warn("peer={} left group={} on a signal", registration_.peer_id(),
                 session_->groupId());
      progress_.clear();
      return kExitInterrupted;
    }
    if (ended && !running_) return sessionEnded(*ended);
    if (done && !running_) {
      printSummary(done->record);
      // The universe runs only after a completed group (its steps filled the cache).
      if (done->exit_code == kExitCompleted && schema_.universe) return runUniverse();
      return done->exit_code;
    }

    constexpr std::size_t kBatch = 100;
    auto batch = reader_->poll(kBatch, std::chrono::milliseconds(0));
    if (!batch) return td::unexpected(refused(batch.error(), "read " + joined.assign_topic()));
    if (!batch->empty()) brokerAnswered();
    // A full batch may have more behind it, such as a SessionEnded for this session (a worker
    // that was frozen catches up on everything written meanwhile): start nothing until the
    // topic is read to its end.
    const bool caught_up = batch->size() < kBatch;
    for (const auto& msg : *batch) {
      td::v1::AssignmentRecord record;
      if (!record.ParseFromString(msg.value) ||
          record.protocol_version() != td::v1::PROTOCOL_VERSION_1) {
        log_->warn("ignoring an undecodable record on {}[{}]@{}", msg.topic, msg.partition,
                   msg.offset);
        continue;
      }
      if (record.has_assigned() && record.assigned().group_id() == session_->groupId()) {
        steps_assigned_.insert(record.assigned().step_id());
      }
      const std::uint64_t owner_before = session_->ownerEpoch();
      Action action = session_->onRecord(record);
      if (session_->ownerEpoch() > owner_before && owner_before != 0) {
        log_->info("peer={} group={} owner epoch {} -> {}{}", registration_.peer_id(),
                   session_->groupId(), owner_before, session_->ownerEpoch(),
                   record.has_owner() ? " (coordinator " + record.owner().coordinator_id() + ")"
                                      : std::string());
      }
      if (auto* stale = std::get_if<IgnoredStale>(&action)) {
        log_->warn("peer={} group={} ignoring a stale record from epoch {} (owner epoch {}): {} "
                   "at {}[{}]@{}",
                   registration_.peer_id(), session_->groupId(), stale->record_epoch,
                   stale->owner_epoch, stale->what, msg.topic, msg.partition, msg.offset);
      } else if (auto* run = std::get_if<RunStep>(&action)) {
        pending_.push_back(*run);
      } else if (auto* reject = std::get_if<RejectStep>(&action)) {
        TD_RETURN_IF_ERROR(reportRejected(*reject));
      } else if (auto* abort = std::get_if<AbortRunning>(&action)) {
        if (running_ && running_->process && running_->step_id == abort->step_id &&
            running_->attempt == abort->attempt) {
          log_->warn("peer={} step={} attempt={} aborting: {}", registration_.peer_id(),
                     abort->step_id, abort->attempt, abort->reason);
          running_->process->abort();
        }
        std::erase_if(pending_, [&](const RunStep& p) {
          return p.step->id == abort->step_id && p.attempt == abort->attempt;
        });
      } else if (auto* end = std::get_if<EndSession>(&action)) {
        // Its steps were handed to others: what it still runs must not go on (its result would
        // not count anyway), and what it was to run is someone else's now. The killed step's
        // aborted result is still reported: it tells the auditor when that attempt ended.
        ended = *end;
        heartbeating_ = false;
        pending_.clear();
        if (running_ && running_->process) {
          log_->warn("peer={} step={} attempt={} killing it, this session ended: {}",
                     registration_.peer_id(), running_->step_id, running_->attempt, end->reason);
          running_->process->abort();
        }
      } else if (auto* silent = std::get_if<WarnSilentPeer>(&action)) {
        logSilentPeer(*silent);
      } else if (auto* group_done = std::get_if<GroupDone>(&action)) {
        done = *group_done;
        heartbeating_ = false;
        pending_.clear();
        if (running_ && running_->process) running_->process->abort();
      }
    }
    if (!running_ && !pending_.empty() && !done && !ended && !stopping_ && caught_up) {
      RunStep next = pending_.front();
      pending_.erase(pending_.begin());
      TD_RETURN_IF_ERROR(startStep(next));
    }
    if (!done && Clock::now() >= next_draw_) {
      drawProgress(Clock::now());
      next_draw_ = Clock::now() + std::chrono::milliseconds(250);
    }
  }
}

StepSpecToRun WorkerApp::specToRun(const std::string& id, const std::string& command,
                                   std::chrono::milliseconds timeout,
                                   std::uint32_t attempt) const {
  return StepSpecToRun{
      .step_id = id,
      .command = command,
      // Ourselves, in step-supervisor mode: nothing of the step survives us (issue 15).
      .supervisor = "/proc/self/exe",
      .timeout = timeout,
      .working_dir = options_.working_dir,
      .extra_env = {{"TD_GROUP_ID", session_->groupId()},
                    {"TD_STEP_ID", id},
                    {"TD_ATTEMPT", std::to_string(attempt)},
                    {"TD_PEER_ID", registration_.peer_id()},
                    {"TD_SCHEMA", schema_.name}},
      .echo_output = options_.echo_output,
  };
}

int WorkerApp::runUniverse() {
  StepSpecToRun spec = specToRun("universe", *schema_.universe, schema_.universe_timeout, 1);
  spec.extra_env.emplace_back("TD_UNIVERSE", "1");
  td::v1::UniverseFinished report;
  report.set_started_at_ms(wallMs());
  reportUniverseStarted(report.started_at_ms());
  log_->info("peer={} group={} universe started", registration_.peer_id(), session_->groupId());
  // Wakes on the signal pipe; stop() aborts it.
  auto result = runToCompletion(spec, signal_pipe_[0], [this] { return stopping_ != 0; });
  if (!result) {
    log_->error("peer={} universe could not run: {}", registration_.peer_id(),
                result.error().message());
    std::fprintf(stdout, "  universe: could not run: %s\n", result.error().message().c_str());
    std::fflush(stdout);
    report.set_outcome(td::v1::STEP_OUTCOME_FAILED);
    report.set_exit_code(-1);
    report.set_output_tail(result.error().message());
    reportUniverseFinished(std::move(report));
    return kExitFailed;
  }
  const std::string how = fmt::format(
      "{} ({}) in {}", protocol::outcomeName(toOutcome(result->outcome)),
      protocol::describeExit(result->exit_code, result->signal),
      formatDuration(static_cast<std::uint64_t>(result->duration.count())));
  log_->info("peer={} group={} universe {}", registration_.peer_id(), session_->groupId(), how);
  std::fprintf(stdout, "  universe: %s\n", how.c_str());
  std::fflush(stdout);
  report.set_outcome(toOutcome(result->outcome));
  report.set_exit_code(result->exit_code);
  report.set_signal(result->signal);
  report.set_duration_ms(static_cast<std::uint64_t>(result->duration.count()));
  report.set_output_tail(result->output_tail);
  reportUniverseFinished(std::move(report));
  if (stopping_) return kExitInterrupted;
  return result->outcome == RunOutcome::kSucceeded ? kExitCompleted : kExitFailed;
}

void WorkerApp::reportUniverseStarted(std::int64_t started_at_ms) {
  td::v1::CompletionRecord record;
  auto& started = *record.mutable_universe_started();
  started.set_peer_id(registration_.peer_id());
  started.set_session_id(session_id_);
  started.set_group_id(session_->groupId());
  started.set_started_at_ms(started_at_ms);
  produceUniverseReport(std::move(record));
}

void WorkerApp::reportUniverseFinished(td::v1::UniverseFinished finished) {
  finished.set_peer_id(registration_.peer_id());
  finished.set_session_id(session_id_);
  finished.set_group_id(session_->groupId());
  td::v1::CompletionRecord record;
  *record.mutable_universe_finished() = std::move(finished);
  produceUniverseReport(std::move(record));
  // The start's report too, if it is still on its way.
  if (auto flushed = producer_->flush(kUniverseReportWait); !flushed) {
    log_->warn("peer={} group={} the universe's reports did not reach the broker at {} within "
               "{} s ({}); td.events will not show this run",
               registration_.peer_id(), session_->groupId(), options_.bootstrap_servers,
               kUniverseReportWait.count(), flushed.error().message());
  }
}

void WorkerApp::produceUniverseReport(td::v1::CompletionRecord record) {
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  const bool finished = record.has_universe_finished();
  auto status = producer_->produce(
      options_.topics.completions(), partition_, registration_.compatibility_key(),
      record.SerializeAsString(),
      // May run in the producer's destructor, after log_ is gone: holds its own logger.
      [this, log = log_, peer = registration_.peer_id(), finished](
          const td::Status& result, std::int32_t, std::int64_t) {
        if (result) {
          brokerAnswered();
          return;
        }
        log->warn("peer={} the universe's {} report was not delivered: {}", peer,
                  finished ? "finish" : "start", result.error().message());
      },
      /*block_ms=*/0);
  if (!status) {
    log_->warn("peer={} the universe's {} report could not be queued: {}",
               registration_.peer_id(), finished ? "finish" : "start", status.error().message());
  }
}

void WorkerApp::drawProgress(Clock::time_point now) {
  if (!progress_.enabled()) return;
  ProgressState state{
      .group_id = session_->groupId(),
      .steps_total = schema_.steps.size(),
      .steps_assigned = steps_assigned_.size(),
      .own_done = own_done_,
      .elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - joined_at_),
  };
  if (running_) {
    state.running_step = running_->step_id;
    state.running_attempt = running_->attempt;
    state.running_for =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - step_started_at_);
  }
  progress_.draw(state);
}

void WorkerApp::printSummary(const td::v1::AssignmentRecord& record) {
  progress_.clear();
  // Where the failing step's whole output is: this worker's bootstrap servers (never the -X
  // properties, which may hold credentials) and a topic prefix other than the default.
  std::string audit_args;
  if (logs_) {
    audit_args = "--bootstrap-server " + options_.bootstrap_servers;
    if (options_.topics.prefix() != "td.") {
      audit_args += " --topic-prefix " + options_.topics.prefix();
    }
  }
  const std::string out = formatSummary(record, registration_.peer_id(), audit_args);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace td::worker
