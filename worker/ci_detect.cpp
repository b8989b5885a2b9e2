#include "worker/ci_detect.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>
#include <unordered_set>

namespace td::worker {

namespace {

std::string get(const EnvMap& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// "org/repo.git/" -> "org/repo".
std::string stripGitSuffix(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() > 4 && path.ends_with(".git")) path.resize(path.size() - 4);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// "refs/heads/main" -> "main", "refs/tags/v1" -> "v1"; anything else unchanged.
std::string shortRef(const std::string& ref) {
  for (std::string_view prefix : {"refs/heads/", "refs/tags/"}) {
    if (startsWith(ref, prefix)) return ref.substr(prefix.size());
  }
  return ref;
}

// Jenkins' GIT_BRANCH is "origin/main" (or "refs/remotes/origin/main").
std::string jenkinsBranch(const std::string& branch) {
  for (std::string_view prefix : {"refs/remotes/origin/", "remotes/origin/", "origin/",
                                  "refs/heads/"}) {
    if (startsWith(branch, prefix)) return branch.substr(prefix.size());
  }
  return branch;
}

// "refs/heads/gh-readonly-queue/release/1.x/pr-12-<sha>" -> {"release/1.x", "12"}.
std::optional<std::pair<std::string, std::string>> mergeQueueRef(const std::string& ref) {
  const std::string prefix = "refs/heads/gh-readonly-queue/";
  if (!startsWith(ref, prefix)) return std::nullopt;
  const std::string rest = ref.substr(prefix.size());
  const auto pr = rest.rfind("/pr-");
  if (pr == std::string::npos || pr == 0) return std::nullopt;
  const auto digits_end = rest.find_first_not_of("0123456789", pr + 4);
  if (digits_end == pr + 4) return std::nullopt;
  return std::make_pair(rest.substr(0, pr), rest.substr(pr + 4, digits_end - (pr + 4)));
}

bool isCommitSha(const std::string& s) {
  return (s.size() == 40 || s.size() == 64) &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

Sourced fromEnv(const EnvMap& env, const std::string& name) {
  auto value = get(env, name);
  return value.empty() ? Sourced{} : Sourced{value, "env " + name};
}

Sourced repositoryFromEnv(const EnvMap& env, const std::string& name) {
  auto raw = get(env, name);
  if (raw.empty()) return {};
  std::string source = "env " + name;
  if (redactCredentials(raw) != raw) source += " (credentials removed)";
  return {normalizeRepositoryUrl(raw), source};
}

void detectGitHub(const EnvMap& env, DetectedRepo& out) {
  out.ci = "GitHub Actions";
  if (auto repo = get(env, "GITHUB_REPOSITORY"); !repo.empty()) {
    auto server = get(env, "GITHUB_SERVER_URL");
    out.repository = {normalizeRepositoryUrl((server.empty() ? "https://github.com" : server) +
                                             "/" + repo),
                      server.empty() ? "env GITHUB_REPOSITORY"
                                     : "env GITHUB_SERVER_URL + GITHUB_REPOSITORY"};
  }
  const auto event = get(env, "GITHUB_EVENT_NAME");
  const auto ref = get(env, "GITHUB_REF");
  if (auto base = fromEnv(env, "GITHUB_BASE_REF"); base.known()) {
    // pull_request(_target): GITHUB_REF is refs/pull/<n>/merge.
    std::string number = ref;
    if (startsWith(number, "refs/pull/")) {
      number = number.substr(10, number.find('/', 10) - 10);
    }
    out.build_kind = "pull request " + number;
    auto head = get(env, "GITHUB_HEAD_REF");
    if (!head.empty()) out.build_kind += " from " + head;
    out.base_ref = base;
    if (event == "pull_request_target") {
      // GITHUB_SHA is the base branch's tip there, the same for every pull request: the
      // change is whatever the job checked out (git HEAD, filled in below).
      out.notes.push_back(
          "pull_request_target: GITHUB_SHA is the base branch's commit, so the change ref "
          "comes from the checkout (or pass --change-ref ${{ "
          "github.event.pull_request.head.sha }})");
    } else {
      out.change_ref = fromEnv(env, "GITHUB_SHA");
    }
  } else if (auto queue = mergeQueueRef(ref); event == "merge_group" || queue) {
    // A merge queue entry: GITHUB_REF is refs/heads/gh-readonly-queue/<base>/pr-<n>-<sha>,
    // a branch of its own for each entry; the base is the branch the queue merges into.
    out.merge_queue = true;
    if (queue) {
      out.base_ref = {queue->first, "env GITHUB_REF (merge queue branch)"};
      out.build_kind = "merge queue, pull request " + queue->second;
    } else {
      out.build_kind = "merge queue";
      out.notes.push_back("merge_group event with GITHUB_REF '" + ref +
                          "': not a gh-readonly-queue branch, pass --base-ref");
    }
    out.change_ref = fromEnv(env, "GITHUB_SHA");
  } else {
    if (!ref.empty()) {
      out.base_ref = {shortRef(ref), "env GITHUB_REF"};
      out.build_kind = (startsWith(ref, "refs/tags/") ? "tag " : "branch ") + shortRef(ref);
    } else {
      out.base_ref = fromEnv(env, "GITHUB_REF_NAME");
    }
    out.change_ref = fromEnv(env, "GITHUB_SHA");
  }
  if (!event.empty()) out.build_kind += (out.build_kind.empty() ? "" : ", ") + ("event " + event);
}

void detectGitLab(const EnvMap& env, DetectedRepo& out) {
  out.ci = "GitLab CI";
  out.repository = repositoryFromEnv(env, "CI_PROJECT_URL");
  if (!out.repository.known()) out.repository = repositoryFromEnv(env, "CI_REPOSITORY_URL");
  if (auto iid = get(env, "CI_MERGE_REQUEST_IID"); !iid.empty()) {
    out.build_kind = "merge request !" + iid;
    auto source = get(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME");
    if (!source.empty()) out.build_kind += " from " + source;
    out.base_ref = fromEnv(env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME");
    // Merged results pipelines and merge trains name the target branch's commit the merge
    // result was made on: the exact base of the changes ahead, fetched or not.
    if (auto sha = get(env, "CI_MERGE_REQUEST_TARGET_BRANCH_SHA"); isCommitSha(sha)) {
      out.base_commit = {sha, "env CI_MERGE_REQUEST_TARGET_BRANCH_SHA"};
    }
    if (get(env, "CI_MERGE_REQUEST_EVENT_TYPE") == "merge_train") {
      out.merge_queue = true;
      out.build_kind = "merge train, " + out.build_kind;
    }
  } else {
    out.base_ref = fromEnv(env, "CI_COMMIT_REF_NAME");
    if (out.base_ref.known()) out.build_kind = "ref " + out.base_ref.value;
  }
  // In a merged-results pipeline this is the merge commit, in a detached MR pipeline the
  // source branch's head: either way every job of the pipeline has the same one.
  out.change_ref = fromEnv(env, "CI_COMMIT_SHA");
}

void detectJenkins(const EnvMap& env, DetectedRepo& out) {
  out.ci = "Jenkins";
  out.repository = repositoryFromEnv(env, "GIT_URL");
  if (auto id = get(env, "CHANGE_ID"); !id.empty()) {
    out.build_kind = "change " + id;
    auto branch = get(env, "CHANGE_BRANCH");
    if (!branch.empty()) out.build_kind += " from " + branch;
    out.base_ref = fromEnv(env, "CHANGE_TARGET");
  } else if (auto branch = get(env, "BRANCH_NAME"); !branch.empty()) {
    out.base_ref = {branch, "env BRANCH_NAME"};
    out.build_kind = "branch " + branch;
  } else if (auto git_branch = get(env, "GIT_BRANCH"); !git_branch.empty()) {
    out.base_ref = {jenkinsBranch(git_branch), "env GIT_BRANCH"};
    out.build_kind = "branch " + out.base_ref.value;
  }
  out.change_ref = fromEnv(env, "GIT_COMMIT");
}

void detectBuildkite(const EnvMap& env, DetectedRepo& out) {
  out.ci = "Buildkite";
  out.repository = repositoryFromEnv(env, "BUILDKITE_REPO");
  auto pr = get(env, "BUILDKITE_PULL_REQUEST");
  if (!pr.empty() && pr != "false") {
    out.build_kind = "pull request " + pr;
    out.base_ref = fromEnv(env, "BUILDKITE_PULL_REQUEST_BASE_BRANCH");
  } else {
    out.base_ref = fromEnv(env, "BUILDKITE_BRANCH");
    if (out.base_ref.known()) out.build_kind = "branch " + out.base_ref.value;
  }
  auto commit = get(env, "BUILDKITE_COMMIT");
  if (isCommitSha(commit)) {
    out.change_ref = {commit, "env BUILDKITE_COMMIT"};
  } else if (!commit.empty()) {
    // A build started by hand may say "HEAD": not a stable name for the change.
    out.notes.push_back("BUILDKITE_COMMIT is '" + commit +
                        "', not a commit; the change ref comes from the checkout");
  }
}

}  // namespace

std::string redactCredentials(std::string_view url) {
  std::string s = trim(url);
  const auto scheme_end = s.find("://");
  if (scheme_end == std::string::npos) return s;
  const auto authority_start = scheme_end + 3;
  const auto authority_end = s.find_first_of("/?#", authority_start);
  const auto at = s.rfind('@', authority_end == std::string::npos ? s.size() : authority_end);
  if (at == std::string::npos || at < authority_start) return s;
  // The whole user info goes: GitHub accepts a token as the user name alone.
  s.erase(authority_start, at + 1 - authority_start);
  return s;
}

std::string normalizeRepositoryUrl(std::string_view url) {
  std::string s = trim(url);
  if (s.empty()) return s;
  if (startsWith(s, "file://") || s.front() == '/' || s.front() == '.' || s.front() == '~') {
    return stripGitSuffix(s);
  }
  const auto scheme_end = s.find("://");
  if (scheme_end != std::string::npos) {
    const std::string scheme = lower(s.substr(0, scheme_end));
    std::string rest = redactCredentials(s).substr(scheme_end + 3);
    const auto slash = rest.find('/');
    std::string authority = lower(rest.substr(0, slash));
    std::string path = slash == std::string::npos ? std::string() : rest.substr(slash + 1);
    if (auto q = path.find_first_of("?#"); q != std::string::npos) path.resize(q);
    if (auto colon = authority.rfind(':'); colon != std::string::npos &&
                                           authority.find(']', colon) == std::string::npos) {
      const std::string port = authority.substr(colon + 1);
      if (port.empty() || port == "22" || port == "80" || port == "443") authority.resize(colon);
    }
    // ssh://git@host:org/repo (scp syntax after a scheme) is left as its path said it.
    path = stripGitSuffix(path);
    while (!path.empty() && path.front() == '/') path.erase(0, 1);
    if (scheme != "http" && scheme != "https" && scheme != "ssh" && scheme != "git" &&
        scheme != "git+ssh" && scheme != "ssh+git") {
      return scheme + "://" + authority + (path.empty() ? "" : "/" + path);
    }
    return path.empty() ? authority : authority + "/" + path;
  }
  // scp-like: [user@]host:path, with the ':' before any '/'.
  const auto colon = s.find(':');
  const auto slash = s.find('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon < slash)) {
    std::string host = s.substr(0, colon);
    if (auto at = host.rfind('@'); at != std::string::npos) host.erase(0, at + 1);
    std::string path = stripGitSuffix(s.substr(colon + 1));
    while (!path.empty() && path.front() == '/') path.erase(0, 1);
    return lower(host) + "/" + path;
  }
  return stripGitSuffix(s);
}

DetectedRepo detectRepo(const EnvMap& env, const GitFacts& git) {
  DetectedRepo out;
  if (get(env, "GITHUB_ACTIONS") == "true") {
    detectGitHub(env, out);
  } else if (get(env, "GITLAB_CI") == "true") {
    detectGitLab(env, out);
  } else if (get(env, "BUILDKITE") == "true") {
    detectBuildkite(env, out);
  } else if (!get(env, "JENKINS_URL").empty()) {
    detectJenkins(env, out);
  }

  if (!out.repository.known() && git.origin_url && !git.origin_url->empty()) {
    out.repository = {normalizeRepositoryUrl(*git.origin_url), "git remote origin"};
  }
  if (!out.change_ref.known() && git.head) {
    out.change_ref = {*git.head, "git HEAD"};
  } else if (out.change_ref.known() && git.head && *git.head != out.change_ref.value) {
    out.notes.push_back("the checkout's HEAD is " + *git.head + "; " + out.change_ref.source +
                        " wins, so every job of the pipeline agrees");
  }
  if (!out.base_ref.known() && !out.ci.empty()) {
    // A CI that does not name the base builds a branch: the branch is the base.
    if (git.upstream_branch) {
      out.base_ref = {*git.upstream_branch,
                      "git upstream of branch " + git.branch.value_or("HEAD")};
    } else if (git.branch) {
      out.base_ref = {*git.branch, "git branch"};
    } else if (git.default_branch) {
      out.base_ref = {*git.default_branch, "git origin/HEAD (detached HEAD)"};
    }
  } else if (!out.base_ref.known()) {
    // Outside CI the base is the branch the change will merge into: the remote's default
    // branch, not the name of the branch the change is on.
    if (git.default_branch && git.default_branch_guessed) {
      out.base_ref = {*git.default_branch,
                      "git origin/" + *git.default_branch + " (origin/HEAD is not set)"};
    } else if (git.default_branch) {
      out.base_ref = {*git.default_branch, "git origin/HEAD (the remote's default branch)"};
    } else if (git.upstream_branch) {
      out.base_ref = {*git.upstream_branch,
                      "git upstream of branch " + git.branch.value_or("HEAD")};
      out.notes.push_back("origin/HEAD is not set, so the base is the branch's upstream; "
                          "`git remote set-head origin --auto` or --base-ref name the branch "
                          "changes merge into");
    } else if (git.branch) {
      out.base_ref = {*git.branch, "git branch"};
      out.notes.push_back("origin/HEAD is not set, so the base is the current branch; "
                          "`git remote set-head origin --auto` or --base-ref name the branch "
                          "changes merge into");
    }
  }
  return out;
}

ChangesAhead changesAhead(const std::vector<CommitInfo>& range, const std::string& tip,
                          std::size_t max) {
  std::unordered_map<std::string, const CommitInfo*> by_sha;
  for (const auto& commit : range) by_sha.emplace(commit.sha, &commit);
  // Every commit of the range reachable from `starts` (the range's own boundary stops it).
  auto reachable = [&](const std::vector<std::string>& starts) {
    std::unordered_set<std::string> seen;
    std::vector<std::string> todo(starts.begin(), starts.end());
    while (!todo.empty()) {
      std::string sha = std::move(todo.back());
      todo.pop_back();
      auto it = by_sha.find(sha);
      if (it == by_sha.end() || !seen.insert(sha).second) continue;
      todo.insert(todo.end(), it->second->parents.begin(), it->second->parents.end());
    }
    return seen;
  };
  std::unordered_set<std::string> own = {tip};
  std::unordered_set<std::string> own_ids;
  if (auto it = by_sha.find(tip); it != by_sha.end()) {
    const CommitInfo& head = *it->second;
    own_ids.insert(head.change_ids.begin(), head.change_ids.end());
    if (head.parents.size() > 1) {
      // A merge: what its other parents bring in, minus what the first already has.
      const auto mainline = reachable({head.parents.front()});
      for (const auto& sha : reachable({head.parents.begin() + 1, head.parents.end()})) {
        if (!mainline.contains(sha)) own.insert(sha);
      }
    }
  }
  ChangesAhead out;
  for (const auto& commit : range) {
    const bool same_change = std::any_of(commit.change_ids.begin(), commit.change_ids.end(),
                                         [&](const auto& id) { return own_ids.contains(id); });
    if (own.contains(commit.sha) || same_change) {
      ++out.own;
      continue;
    }
    if (out.refs.size() == max) {
      out.truncated = true;
      continue;
    }
    out.refs.push_back(commit.sha);
  }
  return out;
}

td::Result<ResolvedRepo> resolveRepo(const std::string& repository_flag,
                                     const std::string& base_ref_flag,
                                     const std::string& change_ref_flag,
                                     const DetectedRepo& detected) {
  auto pick = [](const std::string& flag, const char* name, const Sourced& found) {
    return flag.empty() ? found : Sourced{flag, std::string("flag ") + name};
  };
  ResolvedRepo out{
      .repository = pick(redactCredentials(repository_flag), "--repository", detected.repository),
      .base_ref = pick(base_ref_flag, "--base-ref", detected.base_ref),
      .change_ref = pick(change_ref_flag, "--change-ref", detected.change_ref),
  };
  std::vector<std::string> missing;
  if (!out.repository.known()) missing.push_back("--repository URL");
  if (!out.base_ref.known()) missing.push_back("--base-ref REF");
  if (!out.change_ref.known()) missing.push_back("--change-ref REF");
  if (!missing.empty()) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    return makeError(td::Errc::kInvalidArgument,
                     "could not detect " + names + " from " +
                         (detected.ci.empty() ? std::string("the environment (no CI variables)")
                                              : detected.ci + "'s variables") +
                         " or a git checkout; pass " + names + " (or --repo-state FILE)");
  }
  return out;
}

}  // namespace td::worker
