#include "tests/integration/cluster.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace td::testing {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool processAlive(pid_t pid) {
  // A killed child of another process is a zombie until its parent reaps it: read the state.
  const std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' &&
         stat[close + 2] != 'X';
}

bool processGroupAlive(pid_t pgid) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces and ')'.
    const std::string stat = readFile(entry.path() / "stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (!(rest >> state >> ppid >> pgrp)) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') return true;
  }
  return false;
}

Cluster::Cluster(bool start_coordinator) : Cluster(Options{.start_coordinator = start_coordinator}) {}

Cluster::Broker Cluster::requestedBroker() {
  if (const char* outside = std::getenv("TD_TEST_BOOTSTRAP"); outside && *outside) {
    return Broker::kOutside;
  }
  const char* kind = std::getenv("TD_TEST_BROKER");
  const std::string_view name = kind ? kind : "";
  return name.starts_with("kafka") ? Broker::kKafka : Broker::kEmbedded;
}

Cluster::Cluster(Options options) : speculation_(options.speculation) {
  std::filesystem::create_directories(marks());
  broker_kind_ = requestedBroker();
  switch (broker_kind_) {
    case Broker::kOutside:
      bootstrap_ = std::getenv("TD_TEST_BOOTSTRAP");
      break;
    case Broker::kKafka:
      startApacheKafka(options);
      break;
    case Broker::kEmbedded:
      startEmbeddedBroker(options);
      break;
  }
  // Said once per cluster, so every test's output names the broker it ran on.
  std::cout << "[ broker   ] " << brokerName() << " at " << bootstrap_ << std::endl;
  if (options.start_coordinator) startCoordinator(options.coordinator_args);
}

void Cluster::startEmbeddedBroker(const Options& options) {
  auto file = dir() / "bootstrap";
  std::vector<std::string> args = {TD_BROKER_BIN, "--bootstrap-file", file.string()};
  if (options.broker_control) {
    control_path_ = (dir() / "broker.ctl").string();
    args.insert(args.end(), {"--control", control_path_});
  }
  if (options.partitions > 0) {
    args.insert(args.end(), {"--partitions", std::to_string(options.partitions)});
  }
  broker_ = std::make_unique<Process>(
      Process::Options{.args = args, .output = dir() / "broker.log"});
  const bool up = waitUntil([&] { return !trim(readFile(file)).empty(); },
                            std::chrono::seconds(20));
  EXPECT_TRUE(up) << "td-broker did not write " << file << ":\n" << broker_->output();
  bootstrap_ = trim(readFile(file));
}

void Cluster::startApacheKafka(const Options& options) {
  const char* kind = std::getenv("TD_TEST_BROKER");
  kafka_nodes_ = options.kafka_nodes > 0              ? options.kafka_nodes
                 : std::string_view(kind) == "kafka3" ? 3
                                                      : 1;
  sasl_ = options.sasl;
  auto file = dir() / "bootstrap";
  std::vector<std::string> args = {TD_KAFKA_BROKER_SCRIPT, "run",
                                   "--dir", (dir() / "kafka").string(),
                                   "--bootstrap-file", file.string(),
                                   "--nodes", std::to_string(kafka_nodes_),
                                   "--partitions",
                                   std::to_string(options.partitions > 0 ? options.partitions : 4)};
  if (sasl_) args.push_back("--sasl");
  args.insert(args.end(), options.kafka_args.begin(), options.kafka_args.end());
  broker_ = std::make_unique<Process>(
      Process::Options{.args = args, .output = dir() / "broker.log"});
  // A JVM per node, storage formatted first: a few seconds, far more on a loaded machine.
  const bool up = waitUntil([&] { return !trim(readFile(file)).empty() || !broker_->running(); },
                            std::chrono::seconds(180));
  bootstrap_ = trim(readFile(file));
  EXPECT_TRUE(up && !bootstrap_.empty())
      << "Apache Kafka did not start (scripts/kafka-broker run):\n" << broker_->output();
}

std::string Cluster::brokerName() const {
  switch (broker_kind_) {
    case Broker::kOutside: return "outside broker (TD_TEST_BOOTSTRAP)";
    case Broker::kEmbedded: return "embedded td-broker";
    case Broker::kKafka:
      return "Apache Kafka (" + std::to_string(kafka_nodes_) + (kafka_nodes_ == 1 ? " node" : " nodes") +
             (sasl_ ? ", SASL + ACLs)" : ")");
  }
  return "?";
}

pid_t Cluster::kafkaNodePid(int node) const {
  const std::string pid =
      trim(readFile(dir() / "kafka" / ("node-" + std::to_string(node) + ".pid")));
  return pid.empty() ? -1 : static_cast<pid_t>(std::stol(pid));
}

void Cluster::signalKafkaNode(int node, int sig) const {
  const pid_t pid = kafkaNodePid(node);
  ASSERT_GT(pid, 0) << "no pid for Apache Kafka node " << node;
  ASSERT_EQ(::kill(pid, sig), 0) << "kill(" << pid << ", " << sig << ")";
}

bool Cluster::restartDeadKafkaNodes() {
  if (broker_kind_ != Broker::kKafka || !broker_) return false;
  // SIGHUP again every 5 s until every node runs: restarting is idempotent (the launcher
  // starts only nodes it saw exit), and on a loaded machine one SIGHUP was seen to go
  // unanswered (the launcher printed no "restarting node" line within 30 s).
  auto next_hup = std::chrono::steady_clock::now();
  return waitUntil(
      [&] {
        if (std::chrono::steady_clock::now() >= next_hup) {
          broker_->signal(SIGHUP);
          next_hup = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        }
        for (int node = 1; node <= kafka_nodes_; ++node) {
          const pid_t now = kafkaNodePid(node);
          if (now <= 0 || !processAlive(now)) return false;
        }
        return true;
      },
      std::chrono::seconds(60));
}

std::filesystem::path Cluster::kafkaToolsDir() const {
  Process fetch(Process::Options{.args = {TD_KAFKA_BROKER_SCRIPT, "fetch"},
                                 .output = dir() / "kafka-fetch.log"});
  EXPECT_EQ(fetch.wait(std::chrono::seconds(300)), 0) << fetch.output();
  // The cache directory is the last line (a first fetch says more before it).
  std::string out = trim(fetch.output());
  return std::filesystem::path(out.substr(out.rfind('\n') + 1)) / "bin";
}

std::map<std::int32_t, int> Cluster::kafkaLeaders(const std::string& topic) const {
  std::map<std::int32_t, int> out;
  const auto [rc, text] = kafkaTool("topics", {"--describe", "--topic", topic});
  EXPECT_EQ(rc, 0) << text;
  // "\tTopic: td.state\tPartition: 0\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,3,1..."
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const auto p = line.find("Partition: ");
    const auto l = line.find("Leader: ");
    if (p == std::string::npos || l == std::string::npos) continue;
    out[std::stoi(line.substr(p + 11))] = std::stoi(line.substr(l + 8));
  }
  return out;
}

void Cluster::takeBrokerDown() {
  if (broker_kind_ == Broker::kKafka) {
    for (int node = 1; node <= kafka_nodes_; ++node) {
      const pid_t pid = kafkaNodePid(node);
      signalKafkaNode(node, SIGKILL);
      // Dead (a zombie until the launcher reaps it) before anyone asks for a restart: the
      // launcher restarts only nodes it has seen exit.
      ASSERT_TRUE(waitUntil([&] { return !processAlive(pid); }, std::chrono::seconds(10)))
          << "Apache Kafka node " << node << " (pid " << pid << ") survived SIGKILL";
    }
  } else {
    ASSERT_EQ(control("down 1"), "ok");
  }
}

void Cluster::bringBrokerUp() {
  if (broker_kind_ == Broker::kKafka) {
    ASSERT_TRUE(restartDeadKafkaNodes()) << "Apache Kafka's nodes did not start again:\n"
                                         << broker_->output();
  } else {
    ASSERT_EQ(control("up 1"), "ok");
  }
}

kafka::Properties Cluster::clientProperties(const std::string& user) const {
  if (!sasl_) return {};
  // PLAIN, not SCRAM: Kafka 4.x refuses librdkafka 2.0.2's SCRAM logins as "invalid
  // credentials" (docs/configuration.md, "SCRAM and Kafka 4").
  return {{"security.protocol", "SASL_PLAINTEXT"},
          {"sasl.mechanism", "PLAIN"},
          {"sasl.username", user},
          {"sasl.password", kafkaPassword(user)}};
}

std::string Cluster::kafkaPassword(const std::string& user) const {
  // USER=PASSWORD lines that scripts/kafka-broker --sasl writes beside its data.
  std::istringstream lines(readFile(dir() / "kafka" / "passwords"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(user + "=", 0) == 0) return line.substr(user.size() + 1);
  }
  ADD_FAILURE() << "scripts/kafka-broker gave no password to " << user;
  return "";
}

std::vector<std::string> Cluster::clientArgs(const std::string& user) const {
  std::vector<std::string> args;
  for (const auto& [key, value] : clientProperties(user)) {
    args.insert(args.end(), {"-X", key + "=" + value});
  }
  return args;
}

std::pair<int, std::string> Cluster::kafkaTool(const std::string& name,
                                               std::vector<std::string> args) const {
  std::vector<std::string> full = {TD_KAFKA_BROKER_SCRIPT, "tool", name, "--bootstrap-server",
                                   bootstrap_};
  if (sasl_) full.insert(full.end(), {"--command-config", (dir() / "kafka" / "admin.properties")});
  full.insert(full.end(), args.begin(), args.end());
  static int runs = 0;
  const auto output = dir() / ("kafka-tool-" + std::to_string(++runs) + ".log");
  Process tool(Process::Options{.args = full, .output = output});
  const auto code = tool.wait(std::chrono::seconds(120));
  return {code.value_or(-1), tool.output()};
}

Cluster::~Cluster() {
  processes_.clear();   // SIGKILLs and reaps whatever still runs
  killStrayStepProcesses();
}

Process& Cluster::startCoordinator(std::vector<std::string> extra_args) {
  std::vector<std::string> args = {TD_COORDINATOR_BIN, "--bootstrap-server", bootstrap_,
                                   "--log-level", "debug"};
  for (auto& a : clientArgs("td-coordinator")) args.push_back(std::move(a));
  if (!speculation_) args.emplace_back("--no-speculation");
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto name = "coordinator-" + std::to_string(processes_.size()) + ".log";
  processes_.push_back(
      std::make_unique<Process>(Process::Options{.args = args, .output = dir() / name}));
  return *processes_.back();
}

Process& Cluster::startCoordinator(const std::string& id, std::vector<std::string> extra_args) {
  std::vector<std::string> args = {TD_COORDINATOR_BIN, "--bootstrap-server", bootstrap_,
                                   "--coordinator-id", id};
  for (auto& a : clientArgs("td-coordinator")) args.push_back(std::move(a));
  if (!speculation_) args.emplace_back("--no-speculation");
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  processes_.push_back(std::make_unique<Process>(
      Process::Options{.args = args, .output = dir() / ("coordinator-" + id + ".log")}));
  return *processes_.back();
}

std::filesystem::path Cluster::writeSchema(const std::string& name, const std::string& yaml) {
  auto path = dir() / (name + ".yaml");
  std::ofstream(path) << yaml;
  return path;
}

Process& Cluster::startWorker(const std::filesystem::path& schema, const WorkerSpec& spec) {
  std::vector<std::string> args = {TD_WORKER_BIN,
                                   "--bootstrap-server", bootstrap_,
                                   "--schema", schema.string(),
                                   "--peer-id", spec.peer_id,
                                   "--repository", "https://example.com/app.git",
                                   "--base-ref", "main",
                                   "--change-ref", spec.change_ref,
                                   "--remote-cache-id", "cache-1",
                                   "--join-timeout", "60"};
  for (auto& a : clientArgs("td-worker")) args.push_back(std::move(a));
  for (const auto& ref : spec.builds_on) {
    args.push_back("--builds-on");
    args.push_back(ref);
  }
  args.insert(args.end(), spec.extra_args.begin(), spec.extra_args.end());
  auto workdir = dir() / ("work-" + spec.peer_id);
  std::filesystem::create_directories(workdir);
  // The same peer id again (a replaced session) writes to worker-<peer>.2.log, ...
  auto log = dir() / ("worker-" + spec.peer_id + ".log");
  for (int n = 2; std::filesystem::exists(log); ++n) {
    log = dir() / ("worker-" + spec.peer_id + "." + std::to_string(n) + ".log");
  }
  processes_.push_back(std::make_unique<Process>(
      Process::Options{.args = args,
                       .env = {{"TD_TEST_MARKS", marks().string()}},
                       .cwd = workdir,
                       .output = log}));
  return *processes_.back();
}

std::vector<Cluster::Mark> Cluster::marksWritten() const {
  std::vector<Mark> out;
  for (const auto& entry : std::filesystem::directory_iterator(marks())) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;   // kMarkCommand's file being written
    const auto first = name.find('.');
    const auto second = name.find('.', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    Mark mark{.step = name.substr(0, first),
              .attempt = static_cast<std::uint32_t>(
                  std::stoul(name.substr(first + 1, second - first - 1))),
              .group = name.substr(second + 1)};
    std::istringstream content(readFile(entry.path()));
    content >> mark.peer >> mark.at_ms >> mark.pgid;
    out.push_back(std::move(mark));
  }
  return out;
}

int Cluster::runsOf(const std::string& step) const {
  int runs = 0;
  for (const auto& mark : marksWritten()) runs += mark.step == step ? 1 : 0;
  return runs;
}

std::optional<Cluster::Mark> Cluster::findMark(const std::string& step,
                                               std::uint32_t attempt) const {
  for (auto& mark : marksWritten()) {
    if (mark.step == step && mark.attempt == attempt) return mark;
  }
  return std::nullopt;
}

std::string Cluster::control(const std::string& line) const {
  if (control_path_.empty()) return "error: td-broker was started without --control";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "error: socket: " + std::string(std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, control_path_.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return "error: connect " + control_path_ + ": " + why;
  }
  const std::string request = line + "\n";
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "error: short write";
  }
  std::string reply;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') reply.push_back(c);   // blocks until the reply
  ::close(fd);
  return reply;
}

std::unique_ptr<kafka::Producer> Cluster::producer(const kafka::Properties& extra) const {
  kafka::Properties props{{"bootstrap.servers", bootstrap_}, {"client.id", "td-test"}};
  for (auto& p : clientProperties()) props.push_back(std::move(p));
  props.insert(props.end(), extra.begin(), extra.end());
  auto p = kafka::Producer::create(props);
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message());
  return p ? std::move(*p) : nullptr;
}

std::vector<kafka::Message> Cluster::readTopic(const std::string& topic) const {
  std::vector<kafka::Message> out;
  auto meta = producer();
  if (!meta) return out;
  auto count = meta->partitionCount(topic, std::chrono::seconds(10));
  EXPECT_TRUE(count.has_value()) << topic << ": " << (count ? "" : count.error().message());
  if (!count) return out;
  kafka::Properties reader_props{{"bootstrap.servers", bootstrap_}, {"fetch.wait.max.ms", "10"},
                                 {"receive.message.max.bytes", "100000000"}};
  for (auto& p : clientProperties()) reader_props.push_back(std::move(p));
  auto reader = kafka::PartitionReader::create(reader_props);
  EXPECT_TRUE(reader.has_value()) << (reader ? "" : reader.error().message());
  if (!reader) return out;
  std::map<std::int32_t, std::int64_t> high;   // partition -> offset to read up to
  std::vector<kafka::TopicPartitionOffset> assignment;
  for (std::int32_t p = 0; p < *count; ++p) {
    auto marks = (*reader)->watermarks(topic, p, std::chrono::seconds(10));
    EXPECT_TRUE(marks.has_value()) << topic << "[" << p << "]";
    if (!marks || marks->second <= marks->first) continue;
    high[p] = marks->second;
    assignment.push_back({topic, p, marks->first});
  }
  if (assignment.empty()) return out;
  EXPECT_TRUE((*reader)->assign(assignment).has_value());
  std::map<std::int32_t, std::vector<kafka::Message>> by_partition;
  // A partition is read once its last record is, or once the reader's position is past the
  // high watermark: a transactional log (--exactly-once) ends with a marker, never handed out.
  auto done = [&] {
    for (const auto& [p, h] : high) {
      auto& msgs = by_partition[p];
      if (!msgs.empty() && msgs.back().offset + 1 >= h) continue;
      if ((*reader)->position(topic, p) >= h) continue;
      return false;
    }
    return true;
  };
  const bool all = waitUntil(
      [&] {
        auto batch = (*reader)->poll(1000, std::chrono::milliseconds(100));
        if (batch) {
          for (auto& m : *batch) {
            if (high.contains(m.partition) && m.offset < high[m.partition]) {
              by_partition[m.partition].push_back(std::move(m));
            }
          }
        }
        return done();
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(all) << "could not read " << topic << " up to its high watermarks";
  for (auto& [p, msgs] : by_partition) {
    for (auto& m : msgs) out.push_back(std::move(m));
  }
  return out;
}

std::vector<td::v1::Event> Cluster::events() const {
  std::vector<td::v1::Event> out;
  for (const auto& m : readTopic("td.events")) {
    td::v1::Event e;
    if (e.ParseFromString(m.value)) out.push_back(std::move(e));
  }
  return out;
}

int Cluster::killStrayStepProcesses() const {
  const std::string marks_var = "TD_TEST_MARKS=" + marks().string();
  std::set<pid_t> groups;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string environ = readFile(entry.path() / "environ");   // ours only: same uid
    bool ours = false, step = false;
    std::size_t start = 0;
    while (start < environ.size()) {
      std::size_t end = environ.find('\0', start);
      if (end == std::string::npos) end = environ.size();
      std::string_view var(environ.data() + start, end - start);
      ours |= var == marks_var;
      step |= var.rfind("TD_STEP_ID=", 0) == 0;
      start = end + 1;
    }
    if (!ours || !step) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    const pid_t pgid = ::getpgid(pid);
    if (pgid > 0 && pgid != ::getpgrp()) groups.insert(pgid);
  }
  int signalled = 0;
  for (pid_t pgid : groups) signalled += ::kill(-pgid, SIGKILL) == 0 ? 1 : 0;
  return signalled;
}

std::string Cluster::logs() const { return logs(""); }

std::string Cluster::logs(std::string_view prefix) const {
  std::string out = "---- ran on " + brokerName() + " at " + bootstrap_ + "\n";
  if (broker_) out += "---- broker\n" + broker_->output();
  for (const auto& p : processes_) {
    const std::string name = p->outputPath().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    out += "---- " + name + "\n" + p->output();
  }
  return out;
}

std::vector<std::string> Cluster::toolCommand(const std::string& binary,
                                              const std::vector<std::string>& args) const {
  std::vector<std::string> command = {binary};
  command.insert(command.end(), args.begin(), args.end());
  command.insert(command.end(), {"--bootstrap-server", bootstrap_});
  for (auto& arg : clientArgs()) command.push_back(std::move(arg));
  return command;
}

std::pair<std::optional<int>, std::string> Cluster::audit(const std::vector<std::string>& args,
                                                          const std::string& name) const {
  Process audit({.args = toolCommand(TD_AUDIT_BIN, args), .output = dir() / (name + ".out")});
  const auto rc = audit.wait(std::chrono::seconds(60));
  return {rc, audit.output()};
}

Process& Cluster::startCtl(const std::vector<std::string>& args, const std::string& name) {
  processes_.push_back(std::make_unique<Process>(
      Process::Options{.args = toolCommand(TD_CTL_BIN, args), .output = dir() / (name + ".out")}));
  return *processes_.back();
}

std::pair<std::optional<int>, std::string> Cluster::ctl(const std::vector<std::string>& args,
                                                        const std::string& name) const {
  Process ctl({.args = toolCommand(TD_CTL_BIN, args), .output = dir() / (name + ".out")});
  const auto rc = ctl.wait(std::chrono::seconds(60));
  return {rc, ctl.output()};
}

void expectAuditClean(const Cluster& cluster, const std::string& name) {
  const auto [rc, out] = cluster.audit({"verify", "--json"}, name);
  std::smatch m;
  const std::string summary =
      std::regex_search(out, m,
                        std::regex(R"("redelivered":[0-9]+,"restores":[0-9]+,.*"violation_count":[0-9]+)"))
          ? m.str()
          : out.substr(0, 300);
  std::printf("[ audit    ] %s: %s\n", name.c_str(), summary.c_str());
  EXPECT_EQ(rc, std::optional<int>(0)) << out;
  EXPECT_NE(out.find("\"violation_count\":0"), std::string::npos) << out;
}

}  // namespace td::testing
