// The CI side of td-worker's command line: fills the repository, base ref and change ref the
// flags left out from the CI's variables and the git checkout (worker/ci_detect.h), and
// renders what --print-registration shows. Kept apart from options.cpp so the flag parsing
// stays small.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"
#include "td/v1/registrations.pb.h"
#include "worker/ci_detect.h"

namespace td::worker {

// The single-repository flags as given (empty = not given).
struct RepoFlags {
  std::string repository;
  std::string base_ref;
  std::string change_ref;
  std::vector<std::string> builds_on;
};

// A RepoState plus where each of its values came from.
struct RepoResolution {
  td::v1::RepoState state;
  ResolvedRepo sources;
  DetectedRepo detected;   // what detection found (ci, build kind, notes)
};

// Flags over `env`'s CI variables over the checkout at `dir` (git is run only when a flag is
// missing). Errc::kInvalidArgument naming the flags to pass when a value stays unknown.
td::Result<RepoResolution> resolveRepoState(const RepoFlags& flags, const EnvMap& env,
                                            const std::filesystem::path& dir);

// Where the values of a registration came from, for --print-registration.
struct RegistrationSources {
  std::string ci_line;                       // "GitHub Actions (pull request 7, ...)" or ""
  std::vector<ResolvedRepo> repos;           // one per registration repo, same order
  std::vector<std::string> notes;
  std::string schema_path;
};

// The sources of a registration whose single repository is `resolution`.
RegistrationSources registrationSources(const RepoResolution& resolution);

// The human-readable report: every field the registration carries with its value and source.
// Plain text, no escape sequences.
std::string formatRegistrationReport(const td::v1::PeerRegistered& registration,
                                     const RegistrationSources& sources);

}  // namespace td::worker
