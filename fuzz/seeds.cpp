#include "fuzz/seeds.h"

#include <cstdint>

#include "fuzz/targets.h"
#include "protocol/protocol.h"
#include "td/v1/completions.pb.h"

namespace td::fuzz {

namespace {

td::v1::StepSpec spec(const std::string& id, std::uint32_t max_attempts,
                      const std::vector<std::string>& depends_on = {}) {
  td::v1::StepSpec s;
  s.set_id(id);
  s.set_max_attempts(max_attempts);
  s.set_timeout_ms(60'000);
  for (const auto& d : depends_on) s.add_depends_on(d);
  return s;
}

std::string header(std::uint8_t flags, std::uint8_t b1, std::uint8_t b2, std::uint8_t advance) {
  return std::string{static_cast<char>(flags), static_cast<char>(b1), static_cast<char>(b2),
                     static_cast<char>(advance)};
}

std::string registrationRecord(const td::v1::PeerRegistered& peer) {
  td::v1::RegistrationRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  *r.mutable_registered() = peer;
  return r.SerializeAsString();
}

std::string finishedRecord(const std::string& group, const std::string& peer,
                           const std::string& step, std::uint32_t attempt,
                           td::v1::StepOutcome outcome, std::int32_t exit_code) {
  td::v1::CompletionRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& f = *r.mutable_finished();
  f.set_group_id(group);
  f.set_peer_id(peer);
  f.set_session_id(peer + "-s1");
  f.set_step_id(step);
  f.set_attempt(attempt);
  f.set_outcome(outcome);
  f.set_exit_code(exit_code);
  f.set_duration_ms(1234);
  f.set_output_tail("tail of the output");
  return r.SerializeAsString();
}

}  // namespace

td::v1::PeerRegistered familyPeer(char family, const std::string& peer_id,
                                  const std::string& change_ref,
                                  const std::vector<std::string>& builds_on, bool complex) {
  td::v1::PeerRegistered p;
  p.set_peer_id(peer_id);
  p.set_session_id(peer_id + "-s1");
  auto* repo = p.add_repos();
  repo->set_repository("repo");
  repo->set_base_ref("main");
  repo->set_change_ref(change_ref);
  for (const auto& ref : builds_on) repo->add_builds_on(ref);
  p.set_remote_cache_id(family == 'B' ? "cache-2" : "cache-1");
  p.set_slots(1);
  p.set_complex(complex);
  switch (family) {
    case 'A': {
      p.set_schema_name("app");
      p.set_schema_digest("digest-a");
      *p.add_steps() = spec("build", 3);
      auto& test = *p.add_steps() = spec("test", 2, {"build"});
      auto& retry = *test.mutable_retry() = protocol::defaultRetryPolicy();
      retry.set_retry_on_any_exit(false);
      retry.add_retry_on_exit_codes(137);
      retry.set_count_lost_attempts(true);
      retry.set_max_lost_attempts(2);
      retry.set_backoff_initial_ms(500);
      auto& lint = *p.add_steps() = spec("lint", 1);
      *lint.mutable_retry() = protocol::defaultRetryPolicy();
      lint.mutable_retry()->set_retry_on_timeout(false);
      *p.add_steps() = spec("pkg", 2, {"test", "lint"});
      break;
    }
    case 'B':
      p.set_schema_name("app");
      p.set_schema_digest("digest-a");
      *p.add_steps() = spec("x", 2);
      *p.add_steps() = spec("y", 2, {"x"});
      break;
    case 'C':
      p.set_schema_name("one");
      p.set_schema_digest("digest-c");
      *p.add_steps() = spec("only", 1);
      break;
    default:
      p.set_schema_name("fail");
      p.set_schema_digest("digest-d");
      *p.add_steps() = spec("x", 1);
      break;
  }
  p.set_compatibility_key(protocol::compatibilityKey(p));
  return p;
}

std::vector<std::string> registrationSeeds() {
  std::vector<std::string> seeds;
  // A new peer that joins G1, a complex one, one in family B that builds on c1.
  seeds.push_back(header(kRegFixKey, 0, 0, 0) + registrationRecord(familyPeer('A', "p8", "c1")));
  seeds.push_back(header(kRegFixKey, 5, 0, 20) +
                  registrationRecord(familyPeer('A', "p9", "c4", {}, true)));
  seeds.push_back(header(0, 2, 0, 60) +
                  registrationRecord(familyPeer('B', "p10", "c5", {"c1"})));
  // A new session of a known peer (its running step is lost), and a duplicate registration.
  seeds.push_back(header(kRegKnownPeer | kRegFixKey, 0, 0, 0) +
                  registrationRecord(familyPeer('A', "x", "c1")));
  auto again = familyPeer('A', "x", "c1");
  again.set_session_id("x-s2");
  seeds.push_back(header(kRegKnownPeer | kRegKnownSession | kRegFixKey, 0, 3, 0) +
                  registrationRecord(again));
  // Heartbeat and leave of a known member.
  {
    td::v1::RegistrationRecord r;
    r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& hb = *r.mutable_heartbeat();
    hb.set_group_id("g");
    hb.set_peer_id("p");
    hb.set_session_id("s");
    hb.set_running_step_id("test");
    hb.set_running_attempt(1);
    seeds.push_back(header(kRegKnownGroup, 0, 0x10, 40) + r.SerializeAsString());
    seeds.push_back(header(kRegKnownGroup | kUseLongLived, 0, 0x10, 200) + r.SerializeAsString());
  }
  {
    td::v1::RegistrationRecord r;
    r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& left = *r.mutable_left();
    left.set_group_id("g");
    left.set_peer_id("p");
    left.set_session_id("s");
    left.set_reason("signal");
    seeds.push_back(header(kRegKnownGroup, 0, 0x20, 0) + r.SerializeAsString());
  }
  // Invalid: no steps; a dependency cycle; a key that does not match; version 0; no body.
  auto empty = familyPeer('A', "p11", "c1");
  empty.clear_steps();
  seeds.push_back(header(kRegFixKey, 0, 0, 0) + registrationRecord(empty));
  auto cycle = familyPeer('A', "p12", "c1");
  cycle.mutable_steps(0)->add_depends_on("pkg");
  seeds.push_back(header(kRegFixKey, 0, 0, 0) + registrationRecord(cycle));
  auto wrong_key = familyPeer('A', "p13", "c1");
  wrong_key.set_compatibility_key("not-the-key");
  seeds.push_back(header(0, 0, 0, 0) + registrationRecord(wrong_key));
  {
    td::v1::RegistrationRecord r;
    *r.mutable_registered() = familyPeer('C', "p14", "c6");
    seeds.push_back(header(kUseLongLived | kRegFixKey, 1, 0, 255) + r.SerializeAsString());
    r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    r.clear_body();
    seeds.push_back(header(0, 0, 0, 0) + r.SerializeAsString());
  }
  return seeds;
}

std::vector<std::string> completionSeeds() {
  std::vector<std::string> seeds;
  const std::uint8_t aim = kDoneKnownGroup | kDoneKnownStep | kDoneKnownPeer | kDoneKnownAttempt;
  // pick2: low 6 bits = step index, high 2 bits = attempt delta + 1 (0x40: the current one).
  // Against G1 (pick1 0): step 1 "test" is running, step 0 "build" already succeeded.
  const std::string any = finishedRecord("g", "p", "s", 1, td::v1::STEP_OUTCOME_SUCCEEDED, 0);
  seeds.push_back(header(aim, 0, 0x41, 0) + any);
  seeds.push_back(header(aim, 0, 0x40, 0) + any);   // a duplicate success
  seeds.push_back(header(aim, 0, 0x01, 0) + any);   // a stale attempt
  seeds.push_back(header(aim, 0, 0x81, 0) + any);   // a future attempt
  seeds.push_back(header(aim, 0, 0x42, 30) +
                  finishedRecord("g", "p", "s", 1, td::v1::STEP_OUTCOME_FAILED, 137));
  seeds.push_back(header(aim, 0, 0x41, 0) +
                  finishedRecord("g", "p", "s", 1, td::v1::STEP_OUTCOME_FAILED, 1));
  seeds.push_back(header(aim, 0, 0x42, 0) +
                  finishedRecord("g", "p", "s", 1, td::v1::STEP_OUTCOME_TIMED_OUT, -1));
  seeds.push_back(header(aim, 2, 0x40, 0) +
                  finishedRecord("g", "p", "s", 1, td::v1::STEP_OUTCOME_ABORTED, -1));
  seeds.push_back(header(aim, 1, 0x40, 0) +
                  finishedRecord("g", "p", "s", 1, td::v1::STEP_OUTCOME_REJECTED, 0));
  seeds.push_back(header(aim | kUseLongLived, 0, 0x41, 120) + any);
  {
    td::v1::CompletionRecord r;
    r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    auto& s = *r.mutable_started();
    s.set_group_id("g");
    s.set_peer_id("p");
    s.set_session_id("s");
    s.set_step_id("test");
    s.set_attempt(1);
    s.set_started_at_ms(1'700'000'000'000);
    seeds.push_back(header(aim, 0, 0x41, 0) + r.SerializeAsString());
  }
  // Real ids written out (no aiming): the running "test" of G1, and an unknown step there.
  const auto groups = populatedGroupIdsForTest();
  if (!groups.empty()) {
    seeds.push_back(header(kDoneKnownPeer | kDoneKnownAttempt, 0, 0x40, 0) +
                    finishedRecord(groups[0], "p", "test", 1, td::v1::STEP_OUTCOME_SUCCEEDED, 0));
    seeds.push_back(header(0, 0, 0, 0) + finishedRecord(groups[0], "p1", "nope", 1,
                                                        td::v1::STEP_OUTCOME_SUCCEEDED, 0));
  }
  // Unknown group; an outcome only the coordinator may record; attempt 0.
  seeds.push_back(header(0, 0, 0, 0) +
                  finishedRecord("nope", "p1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED, 0));
  seeds.push_back(header(aim, 0, 0x41, 0) +
                  finishedRecord("g", "p", "s", 1, td::v1::STEP_OUTCOME_LOST, 0));
  seeds.push_back(header(kDoneKnownGroup | kDoneKnownStep | kDoneKnownPeer, 0, 0x01, 0) +
                  finishedRecord("g", "p", "s", 0, td::v1::STEP_OUTCOME_SUCCEEDED, 0));
  return seeds;
}

std::vector<std::string> schemaSeeds() {
  const std::string none(1, '\0');
  const std::string tasks_option(1, static_cast<char>(kSchemaTaskCommand));
  return {
      none + R"(name: adp_fastbuild
description: fast build of the adp application
defaults: {timeout: 30m, max_attempts: 3}
steps:
  - id: common
    run: bazel build //application/adp/common/...
  - id: ui
    run: bazel build //application/adp/ui/...
    timeout: 45m
    max_attempts: 2
    depends_on: [common]
  - id: package
    run: tar czf adp.tgz bazel-bin/application/adp
    timeout: 1h30m
    depends_on: [ui, common]
)",
      none + R"(name: "adp_fastbuild"
defaults:
  max_attempts: 3
  timeout: 30m
steps:
- {id: common, run: "bazel build //..."}
- run: 'make ui'   # the UI
  id: ui
  depends_on:
    - common
)",
      none + R"(name: retrying
defaults:
  timeout: 10m
  backoff: {initial: 2s, multiplier: 3, max: 1m, jitter: 0.1}
  retry_on: [exit, timeout]
  count_lost_attempts: true
  max_lost_attempts: 2
steps:
  - id: compile
    run: make
    retry_on: [137, 143, lost]
    max_attempts: 5
  - id: test
    run: make test
    depends_on: [compile]
    backoff: {initial: 500ms}
)",
      none + R"(name: bazel
command: bazel test {task}
defaults: {timeout: 10m}
tasks:
  - task: //:test_1
  - task: //:test_2
)",
      tasks_option + R"(name: bazel
tasks:
  - task: //:a
  - task: //:b
)",
      none + "name: cyc\nsteps:\n  - {id: a, run: x, depends_on: [b]}\n"
             "  - {id: b, run: y, depends_on: [a]}\n",
      none + "name: dup\nsteps:\n  - {id: a, run: x}\n  - {id: a, run: y}\n",
      none + "name: bad\nsteps:\n  - {id: a, run: x, timeout: 1h-5m}\n",
      none + "name: [a\n",
      none + "---\nname: a\n---\nname: b\n",
  };
}

}  // namespace td::fuzz
