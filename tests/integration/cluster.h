// A real Task Director cluster for integration tests: a broker, td-coordinator processes (one
// unless told otherwise; more share its consumer group) and any number of td-worker processes,
// all writing their output to files in a fresh temporary directory.
//
// The broker is chosen by TD_TEST_BROKER (CTest sets it; see tests/CMakeLists.txt):
//   embedded (or unset)  td-broker, the embedded broker (librdkafka's mock cluster)
//   kafka                Apache Kafka in KRaft mode on loopback, one node (scripts/kafka-broker)
//   kafka3               Apache Kafka, three nodes, replication factor 3, min.insync.replicas 2
// or TD_TEST_BOOTSTRAP=HOST:PORT names an outside broker. Every test prints which it ran on.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/kafka.h"
#include "td/v1/events.pb.h"
#include "tests/support/process.h"

namespace td::testing {

struct WorkerSpec {
  std::string peer_id;
  std::string change_ref;
  std::vector<std::string> builds_on;
  std::vector<std::string> extra_args;
};

// A shell snippet for a step's `run:` that records the run (see Cluster::marksWritten): the
// file "$TD_STEP_ID.$TD_ATTEMPT.$TD_GROUP_ID" in $TD_TEST_MARKS holding
// "$TD_PEER_ID <wall-clock ms at start> <pid of the step's shell = its process group>".
// Written to a dot-file first and renamed, so a reader never sees it half written.
inline const std::string kMarkCommand =
    "m=\"$TD_TEST_MARKS/$TD_STEP_ID.$TD_ATTEMPT.$TD_GROUP_ID\"; "
    "echo \"$TD_PEER_ID $(date +%s%3N) $$\" > \"$TD_TEST_MARKS/.$$.tmp\" && "
    "mv \"$TD_TEST_MARKS/.$$.tmp\" \"$m\"";

// Wall-clock milliseconds since the epoch (comparable with the marks' times).
std::int64_t wallMs();

// True if process `pid` exists and is not a zombie (any parent).
bool processAlive(pid_t pid);

// True if any process of process group `pgid` is alive (zombies waiting to be reaped do not
// count: they run nothing).
bool processGroupAlive(pid_t pgid);

class Cluster {
 public:
  struct Options {
    bool start_coordinator = true;
    std::vector<std::string> coordinator_args;  // e.g. {"--lease-ms", "3000"}
    bool broker_control = false;                // start td-broker with --control (see control())
    int partitions = 0;                         // partitions of the td.* topics (0: 4)
    int kafka_nodes = 0;                        // Apache Kafka nodes (0: TD_TEST_BROKER's)
    bool sasl = false;                          // Apache Kafka with SASL and ACLs
    std::vector<std::string> kafka_args;        // more `kafka-broker run` arguments
    bool speculation = false;                   // coordinators race stragglers (below)
  };
  enum class Broker { kEmbedded, kKafka, kOutside };
  // What TD_TEST_BROKER asks for.
  static Broker requestedBroker();
  // True when TD_TEST_BROKER names Apache Kafka (tests that only it can run check this).
  static bool onApacheKafka() { return requestedBroker() == Broker::kKafka; }
  // Starts the broker and (unless told not to) a coordinator; fails the test on trouble.
  explicit Cluster(bool start_coordinator = true);
  explicit Cluster(Options options);
  // Stops every process, then kills step processes the test's workers left behind (a safety
  // net: a td-worker's step supervisor kills its step's tree when the worker dies, but a test
  // that fails half-way must not leak a step either).
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  // Where steps of the test schemas leave their marks ($TD_TEST_MARKS).
  std::filesystem::path marks() const { return dir_.path() / "marks"; }

  // Coordinators run with --no-speculation unless allowSpeculation() was called: the tests
  // written before speculative attempts (issue 18) hold steps on a gate while other peers
  // idle, and count each step's runs; a speculative twin of a held step would run it twice.
  Process& startCoordinator(std::vector<std::string> extra_args = {});
  // Another td-coordinator of the same consumer group, named `id` (--coordinator-id) on
  // td.events; its output goes to coordinator-<id>.log.
  Process& startCoordinator(const std::string& id, std::vector<std::string> extra_args);
  // Coordinators started from now on race stragglers (docs/architecture.md, "Speculative
  // attempts").
  void allowSpeculation() { speculation_ = true; }
  // Writes `yaml` to a schema file and returns its path.
  std::filesystem::path writeSchema(const std::string& name, const std::string& yaml);
  Process& startWorker(const std::filesystem::path& schema, const WorkerSpec& spec);

  // What the test schemas' steps wrote: one file per run, "$TD_STEP_ID.$TD_ATTEMPT.$TD_GROUP_ID"
  // in marks(), holding "$TD_PEER_ID" and, when written by kMarkCommand, the start time and
  // the step's process group.
  struct Mark {
    std::string step;
    std::uint32_t attempt = 0;
    std::string group;
    std::string peer;
    std::int64_t at_ms = 0;  // wall clock; 0 if not recorded
    pid_t pgid = 0;          // 0 if not recorded
  };
  std::vector<Mark> marksWritten() const;
  // Runs of `step` (in any group).
  int runsOf(const std::string& step) const;
  // The mark of (step, attempt) in any group, if written.
  std::optional<Mark> findMark(const std::string& step, std::uint32_t attempt) const;

  Broker broker() const { return broker_kind_; }
  // "embedded td-broker", "Apache Kafka (3 nodes)" or "outside broker".
  std::string brokerName() const;

  // Apache Kafka only: the pid of node `node` (1-based) as it runs now, or -1.
  pid_t kafkaNodePid(int node) const;
  // Apache Kafka only: signals node `node` (SIGKILL, SIGSTOP, SIGCONT, ...).
  void signalKafkaNode(int node, int sig) const;
  // Apache Kafka only: starts again every node that died (on its old ports and data) and
  // waits until each has a new pid; false on trouble.
  bool restartDeadKafkaNodes();
  // Where Kafka's own tools are (the cache's bin/: kafka-topics.sh, kafka-acls.sh, ...), for
  // scripts that take their path (deploy/create-topics.sh's KAFKA_TOPICS).
  std::filesystem::path kafkaToolsDir() const;
  // Apache Kafka only: partition -> node id of its leader now (kafka-topics --describe).
  std::map<std::int32_t, int> kafkaLeaders(const std::string& topic) const;
  // The broker unreachable, then back, as each broker allows: the embedded broker's control
  // socket ("down"/"up" of broker 1; needs Options::broker_control); Apache Kafka's every
  // node SIGKILLed, then started again on its old ports and data (restartDeadKafkaNodes).
  void takeBrokerDown();
  void bringBrokerUp();
  // Client properties to reach this cluster's brokers as `user` (SASL clusters: SASL/PLAIN
  // with the password scripts/kafka-broker gave that user; others: nothing).
  kafka::Properties clientProperties(const std::string& user = "admin") const;
  // Arguments for td-coordinator/td-worker/td-audit (-X ...) that clientProperties(user) gives.
  std::vector<std::string> clientArgs(const std::string& user = "admin") const;
  // Runs one of Kafka's own tools (scripts/kafka-broker tool NAME --bootstrap-server ...
  // [--command-config admin's] ARGS...) against this cluster as the admin user; returns its
  // exit code and output.
  std::pair<int, std::string> kafkaTool(const std::string& name,
                                        std::vector<std::string> args) const;

  // True when this cluster's td-broker serves a --control socket (not with TD_TEST_BOOTSTRAP).
  bool hasControl() const { return !control_path_.empty(); }
  // Sends one line of td-broker's control protocol (broker/server.h) and returns the reply
  // line ("ok", "ok ...", "error: ..."), or "error: <why>" if the socket cannot be used.
  std::string control(const std::string& line) const;

  // A producer / a reader on this cluster's broker (extra properties applied last).
  std::unique_ptr<kafka::Producer> producer(const kafka::Properties& extra = {}) const;
  // Every record of `topic` (all partitions) from the beginning up to the high watermarks
  // as they are now (committed records only where transactions wrote), in partition then
  // offset order. Fails the test on trouble.
  std::vector<kafka::Message> readTopic(const std::string& topic) const;
  // Every record of td.events decoded (undecodable ones are skipped), in readTopic's order:
  // per group in sequence order, since a group's events share one partition.
  std::vector<td::v1::Event> events() const;

  // Runs td-audit SUBCOMMAND ARGS... --bootstrap-server <this cluster> (with clientArgs()),
  // its output in dir()/<name>.out; returns its exit code (nullopt: it did not end within
  // 60 s) and output.
  std::pair<std::optional<int>, std::string> audit(const std::vector<std::string>& args,
                                                   const std::string& name) const;

  // td-ctl ARGS... --bootstrap-server <this cluster> (with clientArgs()), its output in
  // dir()/<name>.out: started (it ends with the cluster at the latest), or run to its end
  // (exit code, nullopt if it did not end within 60 s, and output).
  Process& startCtl(const std::vector<std::string>& args, const std::string& name);
  std::pair<std::optional<int>, std::string> ctl(const std::vector<std::string>& args,
                                                 const std::string& name) const;

  // SIGKILLs every process group of a step started by this cluster's workers that is still
  // alive (found by $TD_TEST_MARKS and $TD_STEP_ID in /proc/*/environ); returns how many
  // process groups it signalled. Called by the destructor.
  int killStrayStepProcesses() const;

  // Dumps every process's output (for a failing test).
  std::string logs() const;
  // The same for the broker and the processes whose log file name starts with `prefix`
  // (e.g. "coordinator"), for tests with too many workers to dump them all.
  std::string logs(std::string_view prefix) const;

 private:
  // The password scripts/kafka-broker --sasl gave `user`.
  std::string kafkaPassword(const std::string& user) const;
  void startEmbeddedBroker(const Options& options);
  void startApacheKafka(const Options& options);
  // BINARY ARGS... --bootstrap-server <this cluster> plus clientArgs().
  std::vector<std::string> toolCommand(const std::string& binary,
                                       const std::vector<std::string>& args) const;

  TempDir dir_;
  Broker broker_kind_ = Broker::kEmbedded;
  int kafka_nodes_ = 0;
  bool sasl_ = false;
  std::string bootstrap_;
  bool speculation_ = false;   // see allowSpeculation()
  std::string control_path_;
  std::unique_ptr<Process> broker_;
  std::vector<std::unique_ptr<Process>> processes_;
};

// `td-audit verify --json` over the whole of td.events: exit 0, no violation. Prints its
// summary.
void expectAuditClean(const Cluster& cluster, const std::string& name);

}  // namespace td::testing
