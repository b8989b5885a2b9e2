#include "tests/integration/cluster.h"

#include <cstdlib>
#include <fstream>

namespace td::testing {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

Cluster::Cluster(bool start_coordinator) {
  std::filesystem::create_directories(marks());
  if (const char* outside = std::getenv("TD_TEST_BOOTSTRAP"); outside && *outside) {
    bootstrap_ = outside;
  } else {
    auto file = dir() / "bootstrap";
    broker_ = std::make_unique<Process>(Process::Options{
        .args = {TD_BROKER_BIN, "--bootstrap-file", file.string()},
        .output = dir() / "broker.log"});
    const bool up = waitUntil([&] { return !trim(readFile(file)).empty(); },
                              std::chrono::seconds(20));
    EXPECT_TRUE(up) << "td-broker did not write " << file << ":\n" << broker_->output();
    bootstrap_ = trim(readFile(file));
  }
  if (start_coordinator) startCoordinator();
}

Process& Cluster::startCoordinator(std::vector<std::string> extra_args) {
  std::vector<std::string> args = {TD_COORDINATOR_BIN, "--bootstrap-server", bootstrap_,
                                   "--log-level", "debug"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto name = "coordinator-" + std::to_string(processes_.size()) + ".log";
  processes_.push_back(
      std::make_unique<Process>(Process::Options{.args = args, .output = dir() / name}));
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
  for (const auto& ref : spec.builds_on) {
    args.push_back("--builds-on");
    args.push_back(ref);
  }
  args.insert(args.end(), spec.extra_args.begin(), spec.extra_args.end());
  auto workdir = dir() / ("work-" + spec.peer_id);
  std::filesystem::create_directories(workdir);
  processes_.push_back(std::make_unique<Process>(
      Process::Options{.args = args,
                       .env = {{"TD_TEST_MARKS", marks().string()}},
                       .cwd = workdir,
                       .output = dir() / ("worker-" + spec.peer_id + ".log")}));
  return *processes_.back();
}

std::vector<Cluster::Mark> Cluster::marksWritten() const {
  std::vector<Mark> out;
  for (const auto& entry : std::filesystem::directory_iterator(marks())) {
    const std::string name = entry.path().filename().string();
    const auto first = name.find('.');
    const auto second = name.find('.', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    out.push_back(Mark{.step = name.substr(0, first),
                       .attempt = static_cast<std::uint32_t>(
                           std::stoul(name.substr(first + 1, second - first - 1))),
                       .group = name.substr(second + 1),
                       .peer = trim(readFile(entry.path()))});
  }
  return out;
}

int Cluster::runsOf(const std::string& step) const {
  int runs = 0;
  for (const auto& mark : marksWritten()) runs += mark.step == step ? 1 : 0;
  return runs;
}

std::string Cluster::logs() const {
  std::string out;
  if (broker_) out += "---- broker\n" + broker_->output();
  for (const auto& p : processes_) {
    out += "---- " + p->outputPath().filename().string() + "\n" + p->output();
  }
  return out;
}

}  // namespace td::testing
