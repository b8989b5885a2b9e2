// td-broker's logic: the embedded broker as a process, with a fault-control socket.
//
// Control protocol (for tests and operators; --control PATH): a Unix stream socket at PATH
// (created at start, mode 0600, removed at exit; loopback only, no TCP). Each request is one
// line of space-separated words; each is answered by one line, "ok" or "error: <reason>".
// A connection may send any number of requests.
//   ping                            -> ok
//   bootstrap                       -> ok HOST:PORT[,...]
//   down BROKER_ID                  broker refuses and drops connections
//   up BROKER_ID                    undo `down`
//   rtt BROKER_ID MS                add MS ms latency to its responses (0 clears)
//   errors API_KEY ERR [ERR...]     the next requests with this API key fail with these
//                                   rd_kafka_resp_err_t numbers, one each (e.g. `errors 0 6 6`:
//                                   two Produce requests get NOT_LEADER_FOR_PARTITION)
//   leader TOPIC PARTITION BROKER_ID move a partition's leadership
//   topic NAME PARTITIONS           create a topic
// Empty or unknown lines get an error reply; a last line without '\n' at EOF still counts.
// Broker ids are 1..--brokers. Example: `echo 'down 1' | socat - UNIX-CONNECT:/tmp/ctl`, or
// python3: s = socket.socket(socket.AF_UNIX); s.connect(path); s.sendall(b"down 1\n").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "kafka/embedded_broker.h"

namespace td::broker {

// The topics td-broker pre-creates; td.joins has the same partition count as td.registrations.
// td.state must match td.registrations too: its partition p holds input partition p's groups.
// td.step-stats (duration history, key-hashed, read whole by every coordinator) gets the same
// count only because one flag sets them all; any count works for it, and for td.logs.
inline const std::vector<std::string> kTopics = {"td.registrations", "td.completions", "td.joins",
                                                 "td.events",        "td.dlq",         "td.state",
                                                 "td.step-stats",    "td.logs"};

struct ServerOptions {
  std::string bootstrap_file;  // required: gets "HOST:PORT\n", written atomically (temp+rename)
  int partitions = 4;          // of every pre-created topic
  int brokers = 1;             // brokers in the cluster
  std::string control_path;    // Unix socket for the control protocol; empty = none
};

// Executes one control line against `broker`; returns the reply line without "\n".
std::string executeControl(kafka::EmbeddedBroker& broker, std::string_view line);

// Writes `content` to `path` atomically: a temp file in the same directory, then rename(2).
td::Status writeFileAtomically(const std::string& path, std::string_view content);

// Blocks SIGINT and SIGTERM in the calling thread (and every thread it starts later: call it
// before anything starts a thread) and returns a signalfd that becomes readable on them.
td::Result<int> blockTerminationSignals();

// Owns the broker and the control socket. Single-threaded: run() serves the control socket.
class Server {
 public:
  // Starts the cluster, creates the topics, opens the control socket, writes bootstrap_file.
  static td::Result<std::unique_ptr<Server>> start(const ServerOptions& options);
  ~Server();  // closes and unlinks the control socket; the bootstrap file is left in place
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const std::string& bootstrapServers() const { return broker_->bootstrapServers(); }

  // Serves control connections until `stop_fd` becomes readable (e.g. a signalfd).
  td::Status run(int stop_fd);

 private:
  Server() = default;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::string control_path_;
  int listen_fd_ = -1;
};

}  // namespace td::broker
