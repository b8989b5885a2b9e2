// The --repo-state file of td-worker: one entry per repository the job checked out.
//
//   https://example.com/app.git:
//     base_ref: main
//     change_ref: refs/changes/12/3412/2
//     builds_on: [refs/changes/11/3411/1]
//   https://example.com/lib.git: {base_ref: main, change_ref: main}
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace td::schema {

struct RepoEntry {
  std::string repository;
  std::string base_ref;
  std::string change_ref;
  std::vector<std::string> builds_on;
};

// Errors name SOURCE:LINE:COLUMN (schema::Errc codes, as for schemas).
td::Result<std::vector<RepoEntry>> loadRepoState(const std::filesystem::path& path);
td::Result<std::vector<RepoEntry>> parseRepoState(std::string_view yaml_text,
                                                  std::string_view source_name);

}  // namespace td::schema
