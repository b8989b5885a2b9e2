// Reads the facts td-worker's detection needs (worker/ci_detect.h) from the git checkout it
// runs in, by running `git` as a child process (argv, no shell) with a timeout.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "worker/ci_detect.h"

namespace td::worker {

// Runs `git args...` in `dir` with stdin and stderr on /dev/null, no terminal prompts and the
// C locale; returns its stdout without the trailing newline if it exits 0 within `timeout`,
// nullopt otherwise (git missing, not a checkout, non-zero exit, killed at the timeout).
std::optional<std::string> runGit(const std::filesystem::path& dir,
                                  const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout);

// Every fact it can read from the checkout at `dir` (or a parent of it); a directory outside
// any checkout gives all-nullopt facts, which is not an error. `timeout` applies to each git
// run.
GitFacts readGitFacts(const std::filesystem::path& dir,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The commits between a base and HEAD in the checkout at `dir`, for changesAhead().
struct CommitRange {
  std::string base;                 // the candidate that named a commit, as given
  std::string tip;                  // the tip's commit id
  std::vector<CommitInfo> commits;  // base..tip, newest first (--topo-order)
  bool complete = true;             // false: more than `max_commits`, the newest kept
};

// The first of `tip_candidates` and the first of `base_candidates` (refs, names or commit
// ids, tried in order) that name a commit in the checkout at `dir`, and the commits
// reachable from the tip but not from the base, with their parents and Change-Id trailers.
// nullopt if no candidate of either names a commit (a shallow clone without the base, not a
// checkout) or git fails.
std::optional<CommitRange> readCommitRange(const std::filesystem::path& dir,
                                           const std::vector<std::string>& tip_candidates,
                                           const std::vector<std::string>& base_candidates,
                                           std::size_t max_commits,
                                           std::chrono::milliseconds timeout =
                                               std::chrono::seconds(5));

// Parses `git log --format=%H %P%x1f%(trailers:key=Change-Id,valueonly,separator=%x2C)%x1e`
// output (exposed for tests).
std::vector<CommitInfo> parseCommitLog(const std::string& text);

// The process environment as a map (for detectRepo).
EnvMap processEnvironment();

}  // namespace td::worker
