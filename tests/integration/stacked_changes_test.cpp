// Changes ahead detected from git (issue 19): a stack of changes A, A<-B, A<-B<-C, each in its
// own clone of one repository and each commit with a Gerrit Change-Id trailer, and an
// unrelated change D. Workers started with no --builds-on, --change-ref, --base-ref or
// --repository: A, B and C form one group, D its own. --print-registration shows where each
// value came from.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kTimeout = std::chrono::seconds(30);
const char* const kGit = "/usr/bin/git";

class StackedChanges : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = dir_.path() / "origin.git";
    git(dir_.path(), {"init", "-q", "--bare", "--initial-branch=main", origin_.string()});
    auto seed = clone("seed");
    commit(seed, "base", "");
    git(seed, {"push", "-q", "origin", "HEAD:refs/heads/main"});
    // Each change is pushed where the next clone fetches it from, like a review system's refs.
    struct Change { std::string name, on, id; };
    for (const Change& change : {Change{"a", "origin/main", "I0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"},
                                 Change{"b", "origin/change-a", "I0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"},
                                 Change{"c", "origin/change-b", "I0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"},
                                 Change{"d", "origin/main", "I0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d"}}) {
      auto checkout = clone(change.name);
      git(checkout, {"checkout", "-q", "-b", "change-" + change.name, change.on});
      sha_[change.name] = commit(checkout, "change " + change.name, change.id);
      git(checkout, {"push", "-q", "origin", "HEAD:refs/heads/change-" + change.name});
      checkouts_[change.name] = checkout;
    }
    schema_ = dir_.path() / "stacked.yaml";
    // Every step waits for the test's go, so the group is still running when all have joined.
    std::string yaml = "name: stacked\nsteps:\n";
    for (const char* step : {"s1", "s2", "s3", "s4"}) {
      yaml += std::string("  - id: ") + step + "\n    run: |\n      " + kMarkCommand +
              "\n      while [ ! -e \"$TD_TEST_MARKS/../go\" ]; do sleep 0.05; done\n";
    }
    std::ofstream(schema_) << yaml;
  }

  std::vector<std::pair<std::string, std::string>> gitEnv() const {
    return {{"GIT_CONFIG_NOSYSTEM", "1"}, {"HOME", dir_.path().string()},
            {"GIT_AUTHOR_NAME", "Test"}, {"GIT_AUTHOR_EMAIL", "test@example.com"},
            {"GIT_COMMITTER_NAME", "Test"}, {"GIT_COMMITTER_EMAIL", "test@example.com"}};
  }

  std::string git(const std::filesystem::path& cwd, std::vector<std::string> args) {
    args.insert(args.begin(), kGit);
    Process p({.args = args, .env = gitEnv(), .cwd = cwd, .output = dir_.path() / "git.out"});
    EXPECT_EQ(p.wait(kTimeout), 0) << p.output();
    std::string out = p.output();
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  std::filesystem::path clone(const std::string& name) {
    auto path = dir_.path() / ("checkout-" + name);
    git(dir_.path(), {"clone", "-q", origin_.string(), path.string()});
    return path;
  }

  // Commits a file named after `subject` with a Change-Id trailer (if any); returns its sha.
  std::string commit(const std::filesystem::path& checkout, const std::string& subject,
                     const std::string& change_id) {
    std::ofstream(checkout / (subject + ".txt")) << subject << "\n";
    git(checkout, {"add", "."});
    std::string message = subject;
    if (!change_id.empty()) message += "\n\nChange-Id: " + change_id;
    git(checkout, {"commit", "-q", "-m", message});
    return git(checkout, {"rev-parse", "HEAD"});
  }

  // The environment of a worker outside any CI, in `change`'s checkout.
  std::vector<std::pair<std::string, std::string>> workerEnv() const {
    return {{"GITHUB_ACTIONS", ""}, {"GITLAB_CI", ""}, {"BUILDKITE", ""}, {"JENKINS_URL", ""},
            {"GIT_CONFIG_NOSYSTEM", "1"}, {"HOME", dir_.path().string()}};
  }

  // td-worker --print-registration in `cwd` with `extra` flags and `env` (default: no CI);
  // fails the test unless it exits 0. Returns its output.
  std::string printRegistration(const std::filesystem::path& cwd,
                                std::vector<std::string> extra = {},
                                std::optional<std::vector<std::pair<std::string, std::string>>>
                                    env = std::nullopt) {
    std::vector<std::string> args = {TD_WORKER_BIN, "--print-registration", "--schema",
                                     schema_.string(), "--peer-id", "w",
                                     "--remote-cache-id", "cache-1"};
    args.insert(args.end(), extra.begin(), extra.end());
    Process p({.args = args,
               .env = env.value_or(workerEnv()),
               .cwd = cwd,
               .output = dir_.path() / ("print-" + std::to_string(++prints_) + ".out")});
    EXPECT_EQ(p.wait(kTimeout), 0) << p.output();
    return p.output();
  }

  // The registration report's row for `field`, its value and source.
  static std::string row(const std::string& out, const std::string& field) {
    auto at = out.find("\n  " + field + " ");
    if (at == std::string::npos) return {};
    auto end = out.find('\n', at + 1);
    return out.substr(at + 1, end - at - 1);
  }

  TempDir dir_;
  std::filesystem::path origin_, schema_;
  std::map<std::string, std::filesystem::path> checkouts_;
  std::map<std::string, std::string> sha_;
  int prints_ = 0;
};

TEST_F(StackedChanges, PrintRegistrationShowsTheChangesAheadAndWhereTheyCameFrom) {
  std::map<std::string, std::string> out;
  for (const char* change : {"a", "b", "c", "d"}) {
    const std::string text = printRegistration(checkouts_.at(change));
    out[change] = text;
    // Outside CI: the repository from origin, the base from origin/HEAD (not the branch the
    // change is on), the change from HEAD.
    EXPECT_NE(row(text, "base_ref").find("main"), std::string::npos) << text;
    EXPECT_NE(row(text, "base_ref").find("git origin/HEAD (the remote's default branch)"),
              std::string::npos) << text;
    EXPECT_NE(row(text, "change_ref").find(sha_.at(change) + " "), std::string::npos) << text;
    EXPECT_NE(row(text, "change_ref").find("git HEAD"), std::string::npos) << text;
    EXPECT_NE(row(text, "repository").find("git remote origin"), std::string::npos) << text;
  }
  auto builds_on = [&](const std::string& change) { return row(out[change], "builds_on"); };
  EXPECT_NE(builds_on("a").find("git: 1 commit between refs/remotes/origin/main and the change, "
                                "1 of them its own change"),
            std::string::npos) << out["a"];
  EXPECT_NE(builds_on("b").find(sha_["a"] + " "), std::string::npos) << out["b"];
  EXPECT_NE(builds_on("b").find("git: 2 commits between refs/remotes/origin/main and the change, "
                                "1 of them its own change"),
            std::string::npos) << out["b"];
  EXPECT_NE(builds_on("c").find(sha_["b"] + "," + sha_["a"]), std::string::npos) << out["c"];
  EXPECT_NE(builds_on("c").find("git: 3 commits"), std::string::npos) << out["c"];
  EXPECT_EQ(builds_on("d").find(sha_["a"]), std::string::npos) << out["d"];
  EXPECT_NE(builds_on("d").find("git: 1 commit"), std::string::npos) << out["d"];
  // One compatibility key for all four: grouping is left to the change refs.
  const std::string key = row(out["a"], "compatibility_key");
  ASSERT_FALSE(key.empty()) << out["a"];
  for (const char* change : {"b", "c", "d"}) EXPECT_EQ(row(out[change], "compatibility_key"), key);
}

// An explicit --builds-on wins, and a base that is not in the checkout is said, not guessed.
TEST_F(StackedChanges, FlagsWinAndAMissingBaseIsANote) {
  const std::string flagged =
      printRegistration(checkouts_.at("c"), {"--builds-on", "other-change"});
  EXPECT_NE(row(flagged, "builds_on").find("other-change"), std::string::npos) << flagged;
  EXPECT_NE(row(flagged, "builds_on").find("flag --builds-on"), std::string::npos) << flagged;
  EXPECT_EQ(flagged.find(sha_["a"]), std::string::npos) << flagged;

  const std::string missing =
      printRegistration(checkouts_.at("c"), {"--base-ref", "no-such-branch"});
  EXPECT_NE(missing.find("note: base ref no-such-branch is not a commit in the checkout"),
            std::string::npos) << missing;
}

// A GitHub merge queue: entry 1 merges change a into main, entry 2 merges change d on top of
// entry 1. Entry 2 builds on entry 1 (whose jobs register its merge commit as their change
// ref) and what it merged, not on its own pull request's commit; entry 1 builds on nothing.
TEST_F(StackedChanges, AMergeQueueEntryBuildsOnTheEntriesAhead) {
  auto queue = clone("queue");
  git(queue, {"checkout", "-q", "-b", "gh-readonly-queue/main/pr-1", "origin/main"});
  git(queue, {"merge", "-q", "--no-ff", "-m", "Merge pull request #1", "origin/change-a"});
  const std::string entry1 = git(queue, {"rev-parse", "HEAD"});
  git(queue, {"merge", "-q", "--no-ff", "-m", "Merge pull request #2", "origin/change-d"});
  const std::string entry2 = git(queue, {"rev-parse", "HEAD"});
  auto print = [&](const std::string& sha, int pr) {
    auto env = workerEnv();
    std::erase_if(env, [](const auto& kv) { return kv.first == "GITHUB_ACTIONS"; });
    for (auto kv : std::vector<std::pair<std::string, std::string>>{
             {"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"},
             {"GITHUB_EVENT_NAME", "merge_group"}, {"GITHUB_SHA", sha},
             {"GITHUB_REF", "refs/heads/gh-readonly-queue/main/pr-" + std::to_string(pr) + "-" +
                                sha_.at(pr == 1 ? "a" : "d")}}) {
      env.push_back(kv);
    }
    return printRegistration(queue, {}, env);
  };
  const std::string second = print(entry2, 2);
  EXPECT_NE(second.find("ci: GitHub Actions (merge queue, pull request 2"), std::string::npos)
      << second;
  EXPECT_NE(row(second, "base_ref").find("env GITHUB_REF (merge queue branch)"),
            std::string::npos) << second;
  EXPECT_NE(row(second, "change_ref").find(entry2), std::string::npos) << second;
  EXPECT_NE(row(second, "builds_on").find(entry1 + "," + sha_["a"] + " "), std::string::npos)
      << second;
  EXPECT_NE(row(second, "builds_on").find("4 commits between refs/remotes/origin/main and the "
                                          "change, 2 of them its own change (merge queue"),
            std::string::npos) << second;
  // The first entry's jobs run on its merge commit even where HEAD is the second's.
  const std::string first = print(entry1, 1);
  EXPECT_NE(row(first, "change_ref").find(entry1), std::string::npos) << first;
  EXPECT_NE(row(first, "builds_on").find("2 commits between refs/remotes/origin/main and the "
                                         "change, 2 of them its own change"),
            std::string::npos) << first;
  EXPECT_EQ(row(first, "builds_on").find(sha_["a"]), std::string::npos) << first;
}

TEST_F(StackedChanges, AStackFormsOneGroupAndAnUnrelatedChangeItsOwn) {
  Cluster cluster;
  std::filesystem::create_directories(cluster.marks());
  std::map<std::string, std::unique_ptr<Process>> workers;
  for (const char* change : {"a", "b", "c", "d"}) {
    std::vector<std::string> args = {TD_WORKER_BIN, "--bootstrap-server", cluster.bootstrap(),
                                     "--schema", schema_.string(), "--peer-id",
                                     std::string("w-") + change, "--remote-cache-id", "cache-1",
                                     "--join-timeout", "60"};
    for (auto& a : cluster.clientArgs("td-worker")) args.push_back(std::move(a));
    auto env = workerEnv();
    env.emplace_back("TD_TEST_MARKS", cluster.marks().string());
    workers[change] = std::make_unique<Process>(
        Process::Options{.args = args,
                         .env = env,
                         .cwd = checkouts_.at(change),
                         .output = cluster.dir() / ("worker-" + std::string(change) + ".log")});
  }
  // Wait until all four have joined a group, then let the steps finish.
  std::map<std::string, std::string> group_of;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (group_of.size() < 4 && std::chrono::steady_clock::now() < deadline) {
    group_of.clear();
    for (const auto& e : cluster.events()) {
      if (e.has_peer_joined()) group_of[e.peer_joined().peer_id()] = e.group_id();
    }
    if (group_of.size() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::ofstream(cluster.marks() / ".." / "go") << "go\n";
  ASSERT_EQ(group_of.size(), 4u) << cluster.logs();
  for (auto& [change, worker] : workers) {
    ASSERT_EQ(worker->wait(std::chrono::seconds(90)), 0)
        << "worker " << change << ":\n" << worker->output() << cluster.logs();
  }
  EXPECT_EQ(group_of["w-b"], group_of["w-a"]);
  EXPECT_EQ(group_of["w-c"], group_of["w-a"]);
  EXPECT_NE(group_of["w-d"], group_of["w-a"]);
  // Each step ran once in each of the two groups.
  std::map<std::string, std::set<std::string>> groups_of_step;
  for (const auto& mark : cluster.marksWritten()) groups_of_step[mark.step].insert(mark.group);
  for (const char* step : {"s1", "s2", "s3", "s4"}) {
    EXPECT_EQ(cluster.runsOf(step), 2) << step;
    EXPECT_EQ(groups_of_step[step].size(), 2u) << step;
  }
  // Who joined whom, as the coordinator saw it: B and C shared refs with the group.
  for (const auto& e : cluster.events()) {
    if (!e.has_peer_joined() || e.group_id() != group_of["w-a"]) continue;
    const auto& repos = e.peer_joined().repos();
    ASSERT_EQ(repos.size(), 1);
    if (e.peer_joined().peer_id() == "w-c") {
      EXPECT_EQ(std::vector<std::string>(repos[0].builds_on().begin(), repos[0].builds_on().end()),
                (std::vector<std::string>{sha_["b"], sha_["a"]}));
    }
  }
}

}  // namespace
}  // namespace td::testing
