// The worker's I/O shell: registers, learns its group from td.joins, follows the group's
// assignment topic, runs the steps it is given as child processes and reports them on
// td.completions. One thread; it waits with poll(2) on Kafka, the running step and signals.
#pragma once

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/log.h"
#include "common/result.h"
#include "kafka/kafka.h"
#include "protocol/protocol.h"
#include "schema/schema.h"
#include "td/v1/completions.pb.h"
#include "td/v1/joins.pb.h"
#include "worker/broker_watch.h"
#include "worker/identity.h"
#include "worker/kafka/log_shipper.h"
#include "worker/report.h"
#include "worker/session.h"
#include "worker/step_runner.h"
#include "worker/worker_options.h"

namespace td::worker {

class WorkerApp {
 public:
  // `schema` must outlive the app.
  static td::Result<std::unique_ptr<WorkerApp>> create(WorkerOptions options,
                                                       const schema::Schema& schema);
  ~WorkerApp();

  // Registers and runs until the group completes (0) or fails (1); 4 when a newer session of
  // this peer id replaced this one (its running step is killed first); a session the
  // coordinator declared lost (it was silent for the lease, e.g. frozen) kills its step and
  // registers again with a new session, which joins the group like a late joiner; 2 when the
  // coordinator rejected the registration, or the broker refused this worker's credentials or an
  // operation it needs (an ACL: logged naming the operation and topic, and what the worker's
  // principal needs); 3 (logged, naming the bootstrap address and how long it waited) when
  // the broker did not answer for options.broker_timeout, no coordinator replied within
  // options.join_timeout, or the client failed for good; 130 after stop(), within a few
  // seconds even when the broker is gone (the final reports are then best effort).
  int run();
  // Async-signal-safe: asks run() to abort the running step, leave and return.
  void stop();

 private:
  WorkerApp(WorkerOptions options, const schema::Schema& schema);
  td::Result<int> joinAndFollow();
  // Once the broker answered: on the embedded broker, remakes reader_ (not assigned yet) with
  // its fetch wait (kafka::fetchWait). Errors: making it.
  td::Status adoptBrokerKind();
  td::Result<td::v1::GroupJoined> registerAndJoin();
  td::Result<int> follow(const td::v1::GroupJoined& joined);
  // follow()'s result when the session was declared lost: joinAndFollow() registers again.
  static constexpr int kRejoin = -1;
  // What follow() does once the coordinator ended this session and nothing runs any more:
  // kExitReplaced or kRejoin.
  int sessionEnded(const EndSession& ended);
  // A fresh session id and registration, for registering again after being declared lost.
  void newSession();
  void logSilentPeer(const WarnSilentPeer& silent);
  td::Status publish(const std::string& topic, const std::string& value);
  // A producer that failed for good (a fatal error that is not a refusal of this principal,
  // e.g. an idempotence sequence desynchronisation after a leader change) delivers nothing
  // more: replaces it with a new one (a new producer id). True if it did. Records sent again
  // through the new one may arrive twice; every report is idempotent at the coordinator.
  bool renewProducerIfDead();
  // The broker answered (BrokerWatch::contact).
  void brokerAnswered();
  // Nothing usable came from the broker while `waiting` ("registering", ...): logs why, rarely
  // (`error`, else the producer's latest client error); the error that ends the run once the
  // silence reaches options.broker_timeout.
  td::Status brokerSilent(std::string_view waiting, const std::optional<td::Error>& error = {});
  // While the broker has been silent for a while, asks it for metadata (at most every few
  // seconds, waiting up to 1 s): an answer is contact. Heartbeat acknowledgements keep a
  // following worker in contact; this covers the join wait and long heartbeat intervals.
  void probeBroker();
  // A metadata or watermark request retried until it succeeds, the broker stays silent past
  // the bound, the broker refuses it (returned at once) or stop().
  template <typename F>
  auto untilAnswered(std::string_view waiting, F request) -> decltype(request());
  // When a stopping worker stops waiting for the broker: a few seconds after it noticed.
  std::chrono::steady_clock::time_point leaveDeadline();
  void heartbeat();
  // Sends a heartbeat if one is due while following a group (also from inside publish(): a
  // report waiting for td.completions' leader must not cost the lease, which td.registrations
  // carries, when only one of the two partitions lost its leader).
  void heartbeatIfDue();
  td::Status startStep(const RunStep& run);
  // A StepFinished for this worker's group, peer and session.
  td::v1::StepFinished finished(const std::string& step_id, std::uint32_t attempt,
                                td::v1::StepOutcome outcome) const;
  td::Status publishFinished(td::v1::StepFinished finished);
  td::Status finishStep(const RunResult& result);
  td::Status reportRejected(const RejectStep& reject);
  void printSummary(const td::v1::AssignmentRecord& record);
  // Runs the schema's universe after its group completed (supervised, like a step, output
  // echoed as "[universe] ..."), says how it ended under the summary; 0 if it succeeded, 1 if
  // not, 130 after stop().
  int runUniverse();
  // The universe run's reports on td.completions (docs/protocol.md, "The universe"): the
  // UniverseStarted before it runs (`started_at_ms`), and how it ended. Best effort: produced
  // without waiting, then awaited with the final flush, for at most kUniverseReportWait; a
  // report the broker did not take is logged (a warning) and the worker exits with the
  // universe's result all the same.
  void reportUniverseStarted(std::int64_t started_at_ms);
  void reportUniverseFinished(td::v1::UniverseFinished finished);
  void produceUniverseReport(td::v1::CompletionRecord record);
  static constexpr std::chrono::seconds kUniverseReportWait{2};
  // How a step (or the universe) runs here: supervised, in options_.working_dir, with the
  // TD_GROUP_ID, TD_STEP_ID, TD_ATTEMPT, TD_PEER_ID and TD_SCHEMA variables.
  StepSpecToRun specToRun(const std::string& id, const std::string& command,
                          std::chrono::milliseconds timeout, std::uint32_t attempt) const;
  // Redraws the terminal's progress line (a no-op when stderr is not a terminal).
  void drawProgress(std::chrono::steady_clock::time_point now);

  WorkerOptions options_;
  const schema::Schema& schema_;
  std::string session_id_;
  td::v1::PeerRegistered registration_;
  std::int32_t partition_ = 0;
  // Before the clients: their destructors may run delivery callbacks that touch it.
  BrokerWatch broker_watch_;
  std::chrono::steady_clock::time_point last_probe_{};
  std::optional<std::chrono::steady_clock::time_point> leave_deadline_;
  std::unique_ptr<kafka::Producer> producer_;
  kafka::Properties producer_settings_;   // what renewProducerIfDead() makes a new one from
  std::unique_ptr<kafka::PartitionReader> reader_;
  // What reader_ was made for: Apache Kafka until the broker answers (adoptBrokerKind()).
  kafka::BrokerKind reader_kind_ = kafka::BrokerKind::kApacheKafka;
  std::unique_ptr<LogShipper> logs_;  // null with --log-cap 0
  std::unique_ptr<Session> session_;
  std::shared_ptr<spdlog::logger> log_;
  int signal_pipe_[2] = {-1, -1};
  volatile std::sig_atomic_t stopping_ = 0;

  struct Running {
    std::unique_ptr<StepProcess> process;
    std::string step_id;
    std::uint32_t attempt = 0;
  };
  std::optional<Running> running_;
  std::vector<RunStep> pending_;

  // For people watching: the live line on a terminal (see worker/report.h).
  ProgressLine progress_{STDERR_FILENO};
  std::set<std::string> steps_assigned_;   // distinct steps of the group handed to anyone
  std::size_t own_done_ = 0;
  std::chrono::steady_clock::time_point joined_at_, step_started_at_, next_draw_;
  // Heartbeats: sent every heartbeat_every_ while heartbeating_ (following, not done or ended).
  bool heartbeating_ = false;
  std::chrono::milliseconds heartbeat_every_{1000};
  std::chrono::steady_clock::time_point next_heartbeat_;
};

}  // namespace td::worker
