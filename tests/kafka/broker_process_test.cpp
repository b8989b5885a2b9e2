// The td-broker binary as a real process: startup, the bootstrap file, the control socket,
// clean exit on SIGTERM, and its command line.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "kafka/kafka.h"
#include "tests/kafka/kafka_test_util.h"

extern char** environ;

namespace td::kafka {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;
using testing::uniqueName;
using testing::waitUntil;

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child process with stdout+stderr in `log`; killed (SIGKILL) if still running at the end.
class Child {
 public:
  Child(std::vector<std::string> args, const std::filesystem::path& log) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }
  void signal(int sig) const { ::kill(pid_, sig); }
  // The exit code, or -1 if it did not exit normally within `timeout`.
  int wait(std::chrono::milliseconds timeout) {
    int status = 0;
    const bool exited = waitUntil(
        [&] {
          if (::waitpid(pid_, &status, WNOHANG) == pid_) return true;
          pollOnce();
          return false;
        },
        timeout);
    if (!exited) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  // Waiting for a child has no fd to poll here; a 10 ms poll(2) keeps the loop from spinning.
  static void pollOnce() { ::poll(nullptr, 0, 10); }
  pid_t pid_ = -1;
};

// Sends one control line to the Unix socket at `path` and returns the reply line.
std::string control(const std::filesystem::path& path, const std::string& line) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string request = line + "\n";
  [[maybe_unused]] auto n = ::write(fd, request.data(), request.size());
  std::string reply;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') reply.push_back(c);
  ::close(fd);
  return reply;
}

TEST(BrokerProcessTest, ServesKafkaUntilSigtermThenExitsZero) {
  TempDir dir;
  const auto bootstrap_file = dir.path() / "bootstrap";
  const auto control_path = dir.path() / "ctl";
  Child broker({TD_BROKER_BIN, "--bootstrap-file", bootstrap_file.string(), "--partitions", "3",
                "--control", control_path.string()},
               dir.path() / "broker.log");
  ASSERT_TRUE(broker.started());
  std::string bootstrap;
  ASSERT_TRUE(waitUntil(
      [&] {
        bootstrap = readFile(bootstrap_file);
        if (!bootstrap.empty()) return true;
        ::poll(nullptr, 0, 10);
        return false;
      },
      10s))
      << readFile(dir.path() / "broker.log");
  ASSERT_EQ(bootstrap.back(), '\n');
  bootstrap.pop_back();
  EXPECT_THAT(bootstrap, ::testing::StartsWith("127.0.0.1:"));
  EXPECT_THAT(readFile(dir.path() / "broker.log"), ::testing::HasSubstr(bootstrap + "\n"));

  {  // clients go before the broker does
    auto producer = Producer::create({{"bootstrap.servers", bootstrap}});
    ASSERT_TRUE(producer) << producer.error().message();
    for (const char* topic :
         {"td.registrations", "td.joins", "td.completions", "td.events", "td.dlq"}) {
      auto count = (*producer)->partitionCount(topic, 5s);
      ASSERT_TRUE(count) << count.error().message();
      EXPECT_EQ(*count, 3) << topic;
    }

    // The control socket.
    EXPECT_EQ(control(control_path, "ping"), "ok");
    const auto topic = uniqueName("ctl");
    EXPECT_EQ(control(control_path, "topic " + topic + " 5"), "ok");
    EXPECT_THAT(control(control_path, "topic " + topic + " 5"), ::testing::StartsWith("error: "));
    EXPECT_THAT(control(control_path, "down 7"), ::testing::StartsWith("error: "));
    EXPECT_THAT(control(control_path, "fly away"), ::testing::StartsWith("error: "));
    EXPECT_EQ(*(*producer)->partitionCount(topic, 5s), 5);

    // Produce and consume through it.
    bool delivered = false;
    ASSERT_TRUE((*producer)->produce(
        topic, 4, "k", "through td-broker",
        [&](const td::Status& s, std::int32_t, std::int64_t) { delivered = s.has_value(); }));
    ASSERT_TRUE((*producer)->flush(10s));
    EXPECT_TRUE(delivered);
    auto reader = PartitionReader::create({{"bootstrap.servers", bootstrap}});
    ASSERT_TRUE(reader);
    ASSERT_TRUE((*reader)->assign({{topic, 4, kOffsetBeginning}}));
    std::vector<Message> got;
    waitUntil(
        [&] {
          auto batch = (*reader)->poll(10, 100ms);
          if (batch) got.insert(got.end(), batch->begin(), batch->end());
          return !got.empty();
        },
        10s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].value, "through td-broker");
  }

  broker.signal(SIGTERM);
  EXPECT_EQ(broker.wait(10s), 0) << readFile(dir.path() / "broker.log");
  EXPECT_FALSE(std::filesystem::exists(control_path));
}

TEST(BrokerProcessTest, HelpExitsZeroAndDescribesEveryFlag) {
  TempDir dir;
  Child help({TD_BROKER_BIN, "--help"}, dir.path() / "out");
  ASSERT_TRUE(help.started());
  EXPECT_EQ(help.wait(10s), 0);
  const auto text = readFile(dir.path() / "out");
  for (const char* flag : {"--bootstrap-file", "--partitions", "--brokers", "--control"}) {
    EXPECT_THAT(text, ::testing::HasSubstr(flag));
  }
}

TEST(BrokerProcessTest, BadFlagsExitTwo) {
  TempDir dir;
  Child bad({TD_BROKER_BIN, "--bootstrap-file", (dir.path() / "b").string(), "--partitions", "0"},
            dir.path() / "out");
  EXPECT_EQ(bad.wait(10s), 2);
  Child unknown({TD_BROKER_BIN, "--bootstrap-file", (dir.path() / "b").string(), "--bogus"},
                dir.path() / "out2");
  EXPECT_EQ(unknown.wait(10s), 2);
  EXPECT_THAT(readFile(dir.path() / "out2"), ::testing::HasSubstr("bogus"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "b"));
}

}  // namespace
}  // namespace td::kafka
