// What td-worker can learn about its checkout without being told: the repository, base ref
// and change ref from a CI system's environment variables (GitHub Actions, GitLab CI, Jenkins,
// Buildkite) and from the git checkout it runs in. Pure: the environment and the git facts
// are inputs (worker/git_facts.h reads the latter), so every CI is testable with fixtures.
//
// Precedence, per value: an explicit flag > the CI's variables > the git checkout. The
// mapping of each CI's variables is the table in docs/ci.md; it is chosen so that every job of
// one pipeline run on one commit (a matrix, parallel jobs) produces the same values, and a new
// commit of the same pull request produces a different change ref (it must not join the
// previous commit's completed group).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace td::worker {

using EnvMap = std::map<std::string, std::string>;

// What `git` says about the checkout; an unknown fact is nullopt (not a checkout, no remote
// named origin, detached HEAD, no upstream, git missing or timed out).
struct GitFacts {
  std::optional<std::string> origin_url;      // git remote get-url origin (raw, may hold a token)
  std::optional<std::string> head;            // git rev-parse HEAD
  std::optional<std::string> branch;          // git symbolic-ref --short HEAD (none if detached)
  std::optional<std::string> upstream_branch; // branch.<branch>.merge without refs/heads/
  std::optional<std::string> default_branch;  // refs/remotes/origin/HEAD without origin/,
                                              // else main or master if origin has it
  bool default_branch_guessed = false;        // origin/HEAD not set: from origin/main|master
};

// One value and where it came from ("flag --base-ref", "env GITHUB_BASE_REF", "git HEAD").
// An empty value means unknown.
struct Sourced {
  std::string value;
  std::string source;
  bool known() const { return !value.empty(); }
};

struct DetectedRepo {
  std::string ci;          // "GitHub Actions", "GitLab CI", "Jenkins", "Buildkite" or ""
  std::string build_kind;  // e.g. "pull request 17", "branch main"; informational
  Sourced repository;      // normalised (normalizeRepositoryUrl)
  Sourced base_ref;
  Sourced change_ref;
  // The commit the changes ahead are counted from, when the CI names one exactly (GitLab's
  // CI_MERGE_REQUEST_TARGET_BRANCH_SHA); empty: the base ref's commit in the checkout.
  Sourced base_commit;
  // The CI runs this job in a queue of changes tested on top of each other (a GitHub merge
  // queue, a GitLab merge train): the commits below HEAD are the queue's entries ahead.
  bool merge_queue = false;
  std::vector<std::string> notes;   // things worth telling the user (--print-registration)
};

// Detects the repo state from `env` (a CI's variables, if any) and `git`; each field falls
// back to git when the CI does not provide it. Never fails: unknown values stay empty.
DetectedRepo detectRepo(const EnvMap& env, const GitFacts& git);

// A stable, credential-free form of a repository URL, so that every way of writing one
// repository gives one string: "git@host:org/repo.git", "ssh://git@host/org/repo",
// "https://user:token@host/org/repo.git" and "https://host/org/repo/" all become
// "host/org/repo" (host lower-cased; the default ports 22, 80, 443 and the user info dropped;
// other ports kept as "host:port"). Local paths and file:// URLs lose only a trailing ".git"
// and "/". Anything else is returned without its user info.
std::string normalizeRepositoryUrl(std::string_view url);

// `url` with any password or token in its user info removed ("https://u:t@h/x" ->
// "https://h/x"); everything else unchanged. For values passed explicitly by flag.
std::string redactCredentials(std::string_view url);

// One commit between the base and the change under test, as `git log` tells it.
struct CommitInfo {
  std::string sha;
  std::vector<std::string> parents;
  std::vector<std::string> change_ids;   // the values of its Gerrit `Change-Id:` trailers
};

// The changes a change under test builds on, read from the commits between its base and it.
struct ChangesAhead {
  std::vector<std::string> refs;   // commit ids, in `range` order (newest first)
  std::size_t own = 0;             // commits of `range` that are the tip's own change
  bool truncated = false;          // more than `max` changes ahead: the nearest `max` kept
};

// The commits of `range` (every commit reachable from `tip` and not from the base, newest
// first, as `git log --topo-order base..tip` lists them) that are not the tip's own change:
// each is a change the tip builds on, named by its commit id (the form a change ref has).
// The tip's own change is the tip itself, the commits a merge tip brings in through its
// other parents (a CI's merge of a pull request into the base), and every commit carrying
// one of the tip's Change-Ids (Gerrit: a change's copies, e.g. a cherry-pick). Pure.
ChangesAhead changesAhead(const std::vector<CommitInfo>& range, const std::string& tip,
                          std::size_t max);

// The values a worker registers with: explicit flags (empty = not given) over `detected`.
struct ResolvedRepo {
  Sourced repository, base_ref, change_ref;
  std::string builds_on_source;   // where builds_on came from ("" = nowhere: none)
};
// Errc::kInvalidArgument naming the flags to pass when a value is still unknown.
td::Result<ResolvedRepo> resolveRepo(const std::string& repository_flag,
                                     const std::string& base_ref_flag,
                                     const std::string& change_ref_flag,
                                     const DetectedRepo& detected);

}  // namespace td::worker
