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

// The process environment as a map (for detectRepo).
EnvMap processEnvironment();

}  // namespace td::worker
