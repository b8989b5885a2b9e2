// td-worker in a CI pipeline (issue 8): the real binary in a real temporary git checkout,
// with CI variables as a pipeline would set them. --print-registration needs no broker; the
// last test runs a whole group and checks the captured (non-terminal) output has no escapes.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kTimeout = std::chrono::seconds(30);
const char* const kGit = "/usr/bin/git";
const std::string kToken = "ghp_FAKETOKEN123";

// Variables of the CIs td-worker knows, blanked so the test means the same inside a CI.
std::vector<std::pair<std::string, std::string>> noCi() {
  return {{"GITHUB_ACTIONS", ""}, {"GITLAB_CI", ""}, {"BUILDKITE", ""}, {"JENKINS_URL", ""}};
}

std::vector<std::pair<std::string, std::string>> withEnv(
    std::vector<std::pair<std::string, std::string>> extra) {
  auto env = noCi();
  for (auto& [k, v] : extra) {
    std::erase_if(env, [&](const auto& kv) { return kv.first == k; });
    env.emplace_back(k, v);
  }
  return env;
}

class CiCheckout : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_.path() / "repo";
    std::filesystem::create_directories(repo_);
    git({"init", "-q"});
    git({"checkout", "-q", "-b", "feature"});
    std::ofstream(repo_ / "README") << "hello\n";
    git({"add", "README"});
    git({"-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "-m",
         "first"});
    git({"remote", "add", "origin", "https://ci-bot:" + kToken + "@GitHub.com/Org/App.git"});
    git({"config", "branch.feature.remote", "origin"});
    git({"config", "branch.feature.merge", "refs/heads/feature"});
    head_ = git({"rev-parse", "HEAD"});
    while (!head_.empty() && head_.back() == '\n') head_.pop_back();
    ASSERT_EQ(head_.size(), 40u) << head_;
    schema_ = dir_.path() / "schema.yaml";
    std::ofstream(schema_) << "name: ci_test\nsteps:\n  - id: a\n    run: echo built a\n"
                              "  - id: b\n    run: echo built b\n";
  }

  std::string git(std::vector<std::string> args) {
    args.insert(args.begin(), kGit);
    Process p({.args = args,
               .env = {{"GIT_CONFIG_NOSYSTEM", "1"}, {"HOME", dir_.path().string()}},
               .cwd = repo_,
               .output = dir_.path() / "git.out"});
    EXPECT_EQ(p.wait(kTimeout), 0) << p.output();
    return p.output();
  }

  // td-worker --print-registration with `extra` flags in `cwd` (default: the checkout).
  std::pair<std::optional<int>, std::string> print(
      std::vector<std::string> extra, std::vector<std::pair<std::string, std::string>> env,
      std::filesystem::path cwd = {}) {
    std::vector<std::string> args = {TD_WORKER_BIN, "--print-registration", "--schema",
                                     schema_.string(), "--peer-id", "w1", "--remote-cache-id",
                                     "cache-1"};
    args.insert(args.end(), extra.begin(), extra.end());
    env.emplace_back("HOME", dir_.path().string());
    Process p({.args = args,
               .env = env,
               .cwd = cwd.empty() ? repo_ : cwd,
               .output = dir_.path() / "print.out"});
    auto code = p.wait(kTimeout);
    return {code, p.output()};
  }

  static bool has(const std::string& out, const std::string& what) {
    return out.find(what) != std::string::npos;
  }

  TempDir dir_;
  std::filesystem::path repo_, schema_;
  std::string head_;
};

TEST_F(CiCheckout, PrintRegistrationDetectsTheCheckoutWithoutABroker) {
  auto [code, out] = print({}, noCi());
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(has(out, "github.com/Org/App")) << out;
  EXPECT_TRUE(has(out, "git remote origin")) << out;
  EXPECT_TRUE(has(out, head_)) << out;
  EXPECT_TRUE(has(out, "git HEAD")) << out;
  EXPECT_TRUE(has(out, "feature")) << out;
  EXPECT_TRUE(has(out, "git upstream of branch feature")) << out;
  EXPECT_TRUE(has(out, "ci: none detected")) << out;
  EXPECT_TRUE(has(out, "compatibility_key")) << out;
  EXPECT_FALSE(has(out, "FAKETOKEN")) << out;
  EXPECT_FALSE(has(out, "ci-bot")) << out;
}

TEST_F(CiCheckout, WorkdirIsWhereItLooks) {
  auto [code, out] = print({"--workdir", repo_.string()}, noCi(), dir_.path());
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(has(out, head_)) << out;
}

TEST_F(CiCheckout, CiVariablesWinOverTheCheckout) {
  const std::string sha = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
  auto [code, out] = print(
      {}, withEnv({{"GITLAB_CI", "true"},
                   {"CI_REPOSITORY_URL",
                    "https://gitlab-ci-token:glcbt-" + kToken + "@gitlab.example.com/g/app.git"},
                   {"CI_COMMIT_SHA", sha},
                   {"CI_COMMIT_REF_NAME", "feature"},
                   {"CI_MERGE_REQUEST_IID", "5"},
                   {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "develop"}}));
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(has(out, "ci: GitLab CI (merge request !5")) << out;
  EXPECT_TRUE(has(out, "gitlab.example.com/g/app")) << out;
  EXPECT_TRUE(has(out, "env CI_REPOSITORY_URL (credentials removed)")) << out;
  EXPECT_TRUE(has(out, "develop")) << out;
  EXPECT_TRUE(has(out, "env CI_MERGE_REQUEST_TARGET_BRANCH_NAME")) << out;
  EXPECT_TRUE(has(out, sha)) << out;
  EXPECT_TRUE(has(out, "env CI_COMMIT_SHA")) << out;
  EXPECT_TRUE(has(out, "note: the checkout's HEAD is " + head_)) << out;
  EXPECT_FALSE(has(out, "FAKETOKEN")) << out;
}

TEST_F(CiCheckout, ExplicitFlagsWinOverCiVariablesAndTheCheckout) {
  auto [code, out] = print(
      {"--repository", "https://bot:" + kToken + "@example.com/app.git", "--base-ref", "release",
       "--change-ref", "refs/changes/12/3412/2"},
      withEnv({{"GITHUB_ACTIONS", "true"},
               {"GITHUB_REPOSITORY", "org/other"},
               {"GITHUB_SHA", "1111111111111111111111111111111111111111"},
               {"GITHUB_REF", "refs/heads/main"}}));
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(has(out, "https://example.com/app.git")) << out;
  EXPECT_TRUE(has(out, "flag --repository")) << out;
  EXPECT_TRUE(has(out, "release")) << out;
  EXPECT_TRUE(has(out, "flag --base-ref")) << out;
  EXPECT_TRUE(has(out, "refs/changes/12/3412/2")) << out;
  EXPECT_TRUE(has(out, "flag --change-ref")) << out;
  EXPECT_FALSE(has(out, "org/other")) << out;
  EXPECT_FALSE(has(out, head_)) << out;
  EXPECT_FALSE(has(out, "FAKETOKEN")) << out;
}

TEST_F(CiCheckout, OutsideACheckoutMissingValuesAreAUsageErrorNamingTheFlags) {
  auto outside = dir_.path() / "elsewhere";
  std::filesystem::create_directories(outside);
  auto [code, out] = print({"--base-ref", "main"}, noCi(), outside);
  EXPECT_EQ(code, 2) << out;
  EXPECT_TRUE(has(out, "--repository")) << out;
  EXPECT_TRUE(has(out, "--change-ref")) << out;
  EXPECT_FALSE(has(out, "--base-ref REF")) << out;   // that one was given
}

// Runs `args` with stdout and stderr on a fresh pseudo-terminal (80 columns) in `cwd`, `env`
// added to ours; returns the exit code (nullopt at the timeout, after SIGKILL) and everything
// written to the terminal.
std::pair<std::optional<int>, std::string> runOnTerminal(
    std::vector<std::string> args, const std::vector<std::pair<std::string, std::string>>& env,
    const std::filesystem::path& cwd, std::chrono::seconds timeout) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) return {};
  const std::string slave_name = ::ptsname(master);
  winsize ws{.ws_row = 24, .ws_col = 80, .ws_xpixel = 0, .ws_ypixel = 0};
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    bool overridden = false;
    for (const auto& [k, v] : env) overridden |= entry.rfind(k + "=", 0) == 0;
    if (!overridden) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    int slave = ::open(slave_name.c_str(), O_RDWR);
    int null = ::open("/dev/null", O_RDONLY);
    if (slave < 0 || null < 0 || ::chdir(cwd.c_str()) != 0) ::_exit(127);
    ::ioctl(slave, TIOCSWINSZ, &ws);
    ::dup2(null, 0);
    ::dup2(slave, 1);
    ::dup2(slave, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<int> code;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd fd{master, POLLIN, 0};
    if (::poll(&fd, 1, 100) > 0) {
      char buffer[4096];
      const ssize_t n = ::read(master, buffer, sizeof buffer);
      if (n > 0) {
        output.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      // EIO: every writer closed the terminal.
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // Drain what is left.
      char buffer[4096];
      ssize_t n;
      while ((n = ::read(master, buffer, sizeof buffer)) > 0) {
        output.append(buffer, static_cast<std::size_t>(n));
      }
      break;
    }
  }
  if (!code) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  ::close(master);
  return {code, output};
}

// On a terminal: the live progress line, redrawn in place and erased before other lines, and
// NO_COLOR keeps the log lines plain.
TEST_F(CiCheckout, OnATerminalAProgressLineIsRedrawnInPlace) {
  Cluster cluster;
  std::ofstream(schema_) << "name: ci_tty\nsteps:\n  - id: slow\n    run: sleep 1.2\n";
  auto env = noCi();
  env.emplace_back("TERM", "xterm-256color");
  env.emplace_back("NO_COLOR", "1");
  env.emplace_back("HOME", dir_.path().string());
  auto [code, out] = runOnTerminal(
      {TD_WORKER_BIN, "--bootstrap-server", cluster.bootstrap(), "--schema", schema_.string(),
       "--peer-id", "w1", "--remote-cache-id", "cache-1", "--join-timeout", "60"},
      env, repo_, std::chrono::seconds(90));
  ASSERT_EQ(code, 0) << out << cluster.logs();
  EXPECT_TRUE(has(out, "\r\033[Ktd-worker ")) << out;
  EXPECT_TRUE(has(out, "running slow (attempt 1")) << out;
  EXPECT_TRUE(has(out, "COMPLETED")) << out;
  EXPECT_FALSE(has(out, "\033[3")) << "a colour escape despite NO_COLOR:\n" << out;
  // The line is erased before the summary, so the summary starts a fresh line.
  const auto summary = out.find("group ");
  ASSERT_NE(summary, std::string::npos);
  const auto last_erase = out.rfind("\r\033[K");
  EXPECT_LT(last_erase, out.find("COMPLETED")) << out;
}

// A whole group with a worker that detects everything from its checkout, its output captured
// to a file as a CI runner does, and a TERM that would allow colour: no escape sequence, the
// summary table at the end.
TEST_F(CiCheckout, RealRunDetectsTheCheckoutAndItsLogHasNoEscapes) {
  Cluster cluster;
  auto env = noCi();
  env.emplace_back("TERM", "xterm-256color");
  env.emplace_back("HOME", dir_.path().string());
  Process worker({.args = {TD_WORKER_BIN, "--bootstrap-server", cluster.bootstrap(), "--schema",
                           schema_.string(), "--peer-id", "w1", "--remote-cache-id", "cache-1",
                           "--join-timeout", "60"},
                  .env = env,
                  .cwd = repo_,
                  .output = dir_.path() / "worker.log"});
  ASSERT_EQ(worker.wait(std::chrono::seconds(90)), 0) << worker.output() << cluster.logs();
  const std::string out = worker.output();
  EXPECT_TRUE(has(out, "COMPLETED")) << out;
  EXPECT_TRUE(has(out, "this peer (w1): 2 steps")) << out;
  EXPECT_TRUE(has(out, "[a] built a")) << out;
  EXPECT_EQ(out.find('\033'), std::string::npos) << "escape byte in a non-terminal log:\n" << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "carriage return in a non-terminal log";
  EXPECT_FALSE(has(out, "FAKETOKEN")) << out;
}

}  // namespace
}  // namespace td::testing

namespace td::testing {
namespace {

// The schema the CI examples share parses, and a GitHub matrix leg registers the values the
// docs promise.
TEST(CiExamples, BazelSchemaRegistersFromGitHubVariables) {
  TempDir dir;
  auto env = noCi();
  for (auto kv : std::vector<std::pair<std::string, std::string>>{
           {"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"},
           {"GITHUB_SERVER_URL", "https://github.com"},
           {"GITHUB_SHA", "1234567890123456789012345678901234567890"},
           {"GITHUB_REF", "refs/pull/17/merge"}, {"GITHUB_BASE_REF", "main"},
           {"GITHUB_HEAD_REF", "feature"}, {"GITHUB_EVENT_NAME", "pull_request"}}) {
    std::erase_if(env, [&](const auto& e) { return e.first == kv.first; });
    env.push_back(kv);
  }
  Process p({.args = {TD_WORKER_BIN, "--print-registration", "--schema",
                      std::string(TD_SOURCE_DIR) + "/examples/ci/bazel-schema.yaml", "--peer-id",
                      "gh-1-1-0", "--remote-cache-id", "grpcs://bazel-cache.example.com"},
             .env = env,
             .cwd = dir.path(),
             .output = dir.path() / "out"});
  ASSERT_EQ(p.wait(kTimeout), 0) << p.output();
  const std::string out = p.output();
  EXPECT_NE(out.find("ci: GitHub Actions (pull request 17 from feature"), std::string::npos)
      << out;
  EXPECT_NE(out.find("github.com/org/app"), std::string::npos) << out;
  EXPECT_NE(out.find("1234567890123456789012345678901234567890"), std::string::npos) << out;
  EXPECT_NE(out.find("app_ci"), std::string::npos) << out;
}

}  // namespace
}  // namespace td::testing
