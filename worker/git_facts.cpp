#include "worker/git_facts.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <sstream>

extern char** environ;

namespace td::worker {

namespace {
using Clock = std::chrono::steady_clock;

std::string withoutPrefix(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0 ? s.substr(prefix.size()) : s;
}
}  // namespace

std::optional<std::string> runGit(const std::filesystem::path& dir,
                                  const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return std::nullopt;
  std::vector<std::string> argv_strings = {"git"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Our environment, minus what would make git prompt, page, translate or look elsewhere.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (entry.rfind("GIT_DIR=", 0) == 0 || entry.rfind("GIT_WORK_TREE=", 0) == 0 ||
        entry.rfind("LC_ALL=", 0) == 0 || entry.rfind("GIT_TERMINAL_PROMPT=", 0) == 0) {
      continue;
    }
    env_strings.push_back(std::move(entry));
  }
  env_strings.push_back("GIT_TERMINAL_PROMPT=0");
  env_strings.push_back("LC_ALL=C");
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  if (!dir.empty()) posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "git", &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return std::nullopt;
  }
  std::string output;
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd fd{out[0], POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;   // the deadline check above ends the loop
    char buffer[4096];
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<std::size_t>(n));
    if (output.size() > (1 << 20)) {   // a fact is one line; something is wrong
      timed_out = true;
      break;
    }
  }
  ::close(out[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return output;
}

GitFacts readGitFacts(const std::filesystem::path& dir, std::chrono::milliseconds timeout) {
  GitFacts facts;
  auto git = [&](std::vector<std::string> args) -> std::optional<std::string> {
    auto out = runGit(dir, args, timeout);
    if (out && out->empty()) return std::nullopt;
    return out;
  };
  facts.head = git({"rev-parse", "--verify", "--quiet", "HEAD"});
  if (!facts.head) {
    // Not a checkout (or an empty one): nothing else to learn.
    if (!git({"rev-parse", "--git-dir"})) return facts;
  }
  facts.origin_url = git({"remote", "get-url", "origin"});
  facts.branch = git({"symbolic-ref", "--quiet", "--short", "HEAD"});
  if (facts.branch) {
    if (auto merge = git({"config", "--get", "branch." + *facts.branch + ".merge"})) {
      facts.upstream_branch = withoutPrefix(*merge, "refs/heads/");
    }
  }
  if (auto head = git({"symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"})) {
    facts.default_branch = withoutPrefix(*head, "origin/");
  } else if (facts.origin_url) {
    // A clone of an empty repository, or a remote added by hand: no origin/HEAD.
    for (const char* name : {"main", "master"}) {
      if (git({"rev-parse", "--verify", "--quiet", std::string("refs/remotes/origin/") + name})) {
        facts.default_branch = name;
        facts.default_branch_guessed = true;
        break;
      }
    }
  }
  return facts;
}

std::vector<CommitInfo> parseCommitLog(const std::string& text) {
  std::vector<CommitInfo> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\x1e', start);
    if (end == std::string::npos) end = text.size();
    std::string record = text.substr(start, end - start);
    start = end + 1;
    while (!record.empty() && (record.front() == '\n' || record.front() == '\r')) {
      record.erase(0, 1);
    }
    if (record.empty()) continue;
    const auto sep = record.find('\x1f');
    std::istringstream shas(record.substr(0, sep));
    CommitInfo commit;
    if (!(shas >> commit.sha)) continue;
    for (std::string parent; shas >> parent;) commit.parents.push_back(parent);
    if (sep != std::string::npos) {
      std::istringstream ids(record.substr(sep + 1));
      for (std::string id; std::getline(ids, id, ',');) {
        while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
        while (!id.empty() && std::isspace(static_cast<unsigned char>(id.front()))) id.erase(0, 1);
        if (!id.empty()) commit.change_ids.push_back(id);
      }
    }
    out.push_back(std::move(commit));
  }
  return out;
}

std::optional<CommitRange> readCommitRange(const std::filesystem::path& dir,
                                           const std::vector<std::string>& tip_candidates,
                                           const std::vector<std::string>& base_candidates,
                                           std::size_t max_commits,
                                           std::chrono::milliseconds timeout) {
  // The commit id of the first candidate that names one, and that candidate.
  auto firstCommit = [&](const std::vector<std::string>& candidates)
      -> std::optional<std::pair<std::string, std::string>> {
    for (const auto& candidate : candidates) {
      if (candidate.empty() || candidate.front() == '-') continue;   // never an option to git
      auto sha =
          runGit(dir, {"rev-parse", "--verify", "--quiet", candidate + "^{commit}"}, timeout);
      if (sha && !sha->empty()) return std::make_pair(*sha, candidate);
    }
    return std::nullopt;
  };
  auto tip = firstCommit(tip_candidates);
  if (!tip) return std::nullopt;
  auto base = firstCommit(base_candidates);
  if (!base) return std::nullopt;
  CommitRange range;
  range.tip = tip->first;
  range.base = base->second;
  const std::string base_commit = base->first;
  auto log = runGit(dir,
                    {"log", "--topo-order", "--no-color",
                     "--max-count=" + std::to_string(max_commits + 1),
                     "--format=%H %P%x1f%(trailers:key=Change-Id,valueonly,separator=%x2C)%x1e",
                     base_commit + ".." + range.tip, "--"},
                    timeout);
  if (!log) return std::nullopt;
  range.commits = parseCommitLog(*log);
  if (range.commits.size() > max_commits) {
    range.commits.resize(max_commits);
    range.complete = false;
  }
  return range;
}

EnvMap processEnvironment() {
  EnvMap env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

}  // namespace td::worker
