// Usage, configuration and schema errors: exit code 2 and a message that says where.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

std::vector<std::string> workerArgs(const std::string& schema) {
  return {TD_WORKER_BIN, "--bootstrap-server", "127.0.0.1:1", "--schema", schema,
          "--peer-id", "w1", "--repository", "r", "--base-ref", "main", "--change-ref", "c1",
          "--remote-cache-id", "c", "--join-timeout", "1"};
}

TEST(Usage, BadSchemaExitsTwoNamingFileLineAndColumn) {
  TempDir dir;
  auto schema = dir.path() / "bad.yaml";
  std::ofstream(schema) << "name: x\nsteps:\n  - id: a\n    run: true\n    colour: red\n";
  Process p({.args = workerArgs(schema.string()), .output = dir.path() / "out"});
  ASSERT_EQ(p.wait(kTimeout), 2);
  EXPECT_NE(p.output().find("bad.yaml:5:5"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("colour"), std::string::npos) << p.output();
}

TEST(Usage, MissingFlagsExitTwo) {
  TempDir dir;
  Process worker({.args = {TD_WORKER_BIN, "--peer-id", "x"}, .output = dir.path() / "w"});
  EXPECT_EQ(worker.wait(kTimeout), 2);
  Process coordinator({.args = {TD_COORDINATOR_BIN, "--no-such-flag"}, .output = dir.path() / "c"});
  EXPECT_EQ(coordinator.wait(kTimeout), 2);
  Process bad_x({.args = {TD_COORDINATOR_BIN, "--bootstrap-server", "127.0.0.1:1", "-X", "novalue"},
                 .output = dir.path() / "x"});
  EXPECT_EQ(bad_x.wait(kTimeout), 2);
  EXPECT_NE(bad_x.output().find("novalue"), std::string::npos) << bad_x.output();
}

TEST(Usage, HelpExplainsEveryBinaryAndExitsZero) {
  TempDir dir;
  for (const char* bin : {TD_WORKER_BIN, TD_COORDINATOR_BIN, TD_BROKER_BIN}) {
    Process p({.args = {bin, "--help"}, .output = dir.path() / "help"});
    ASSERT_EQ(p.wait(kTimeout), 0) << bin;
    EXPECT_NE(p.output().find("--bootstrap"), std::string::npos) << p.output();
  }
}

}  // namespace
}  // namespace td::testing
