// Test fixture for the coordinator core: builds registrations and completions, drives a Core
// on a ManualClock and picks effects apart.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/core.h"
#include "tests/support/manual_clock.h"

namespace td::coordinator::testing {

// A registration under construction: peers share schema "s", cache "cache", repo "repo",
// base "main" unless told otherwise.
class PeerBuilder {
 public:
  explicit PeerBuilder(std::string id);
  PeerBuilder& change(std::string ref);
  PeerBuilder& on(std::vector<std::string> refs);
  PeerBuilder& complex();
  PeerBuilder& cache(std::string id);
  PeerBuilder& schema(std::string name, std::string digest = "");
  PeerBuilder& base(std::string ref);
  PeerBuilder& repository(std::string url);
  PeerBuilder& session(std::string id);
  // Steps it takes at once (td-worker: 1 + --prefetch).
  PeerBuilder& slots(std::uint32_t n);
  // Steps "a", "b", ... with this attempt limit.
  PeerBuilder& steps(int count, std::uint32_t max_attempts = 3);
  PeerBuilder& step(std::string id, std::uint32_t max_attempts = 3,
                    std::vector<std::string> depends_on = {});
  // Every step says `speculative: false` (StepSpec no_speculation).
  PeerBuilder& noSpeculation();
  td::v1::PeerRegistered build() const;

 private:
  td::v1::PeerRegistered peer_;
  bool custom_steps_ = false;
  bool no_speculation_ = false;
};

class CoreTest : public ::testing::Test {
 protected:
  CoreTest();
  explicit CoreTest(CoreConfig config);
  Effects run(const Input& input);
  // Registers (read from td.registrations[partition]) and returns the group id it was put in
  // ("" if rejected).
  std::string join(const PeerBuilder& peer, std::int32_t partition = 0);
  // A StepFinished of `peer` (its default session unless `session`), exit code 0 on success
  // and 1 otherwise; finish() runs it.
  static td::v1::StepFinished finishedRecord(const std::string& group, const std::string& peer,
                                             const std::string& step, std::uint32_t attempt,
                                             td::v1::StepOutcome outcome,
                                             const std::string& session = "");
  Effects finish(const std::string& group, const std::string& peer, const std::string& step,
                 std::uint32_t attempt, td::v1::StepOutcome outcome,
                 const std::string& session = "");
  // StepAssigned records in `effects` (optionally only those for `peer`).
  static std::vector<td::v1::StepAssigned> assignments(const Effects& effects,
                                                       const std::string& peer = "");
  // A heartbeat of `peer` (its default session unless `session`) in `group`.
  static td::v1::PeerHeartbeat heartbeatRecord(const std::string& group, const std::string& peer,
                                               const std::string& session = "");
  static void append(Effects& to, const Effects& from) {
    to.insert(to.end(), from.begin(), from.end());
  }
  static std::vector<td::v1::Event> events(const Effects& effects);
  static std::vector<std::string> eventKinds(const Effects& effects);
  static bool has(const Effects& effects, td::v1::AssignmentRecord::BodyCase kind);
  static int deadLetters(const Effects& effects);
  static std::string sessionOf(const std::string& peer) { return peer + "-s1"; }

  td::testing::ManualClock clock_;
  Core core_;
  Effects all_;   // everything the core has produced, in order
};

}  // namespace td::coordinator::testing
