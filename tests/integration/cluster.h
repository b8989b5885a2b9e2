// A real Task Director cluster for integration tests: td-broker (or an outside broker given
// in TD_TEST_BOOTSTRAP), one td-coordinator, and any number of td-worker processes, all
// writing their output to files in a fresh temporary directory.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace td::testing {

struct WorkerSpec {
  std::string peer_id;
  std::string change_ref;
  std::vector<std::string> builds_on;
  std::vector<std::string> extra_args;
};

class Cluster {
 public:
  // Starts the broker and (unless told not to) a coordinator; fails the test on trouble.
  explicit Cluster(bool start_coordinator = true);

  const std::string& bootstrap() const { return bootstrap_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  // Where steps of the test schemas leave their marks ($TD_TEST_MARKS).
  std::filesystem::path marks() const { return dir_.path() / "marks"; }

  Process& startCoordinator(std::vector<std::string> extra_args = {});
  // Writes `yaml` to a schema file and returns its path.
  std::filesystem::path writeSchema(const std::string& name, const std::string& yaml);
  Process& startWorker(const std::filesystem::path& schema, const WorkerSpec& spec);

  // What the test schemas' steps wrote: one file per run, "$TD_STEP_ID.$TD_ATTEMPT.$TD_GROUP_ID"
  // in marks(), holding "$TD_PEER_ID".
  struct Mark {
    std::string step;
    std::uint32_t attempt = 0;
    std::string group;
    std::string peer;
  };
  std::vector<Mark> marksWritten() const;
  // Runs of `step` (in any group).
  int runsOf(const std::string& step) const;

  // Dumps every process's output (for a failing test).
  std::string logs() const;

 private:
  TempDir dir_;
  std::string bootstrap_;
  std::unique_ptr<Process> broker_;
  std::vector<std::unique_ptr<Process>> processes_;
};

}  // namespace td::testing
