// What td-worker prints for CI logs (worker/report.h): the summary table and progress line.
#include "worker/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fcntl.h>

namespace td::worker {
namespace {

td::v1::StepSummary step(const std::string& id, td::v1::StepOutcome outcome,
                         const std::string& peer, std::uint32_t attempts, std::uint64_t ms) {
  td::v1::StepSummary s;
  s.set_step_id(id);
  s.set_outcome(outcome);
  s.set_peer_id(peer);
  s.set_attempts(attempts);
  s.set_duration_ms(ms);
  return s;
}

td::v1::AssignmentRecord completed() {
  td::v1::AssignmentRecord r;
  auto& c = *r.mutable_completed();
  c.set_group_id("g-7");
  c.set_wall_time_ms(4200);
  *c.add_steps() = step("fetch", td::v1::STEP_OUTCOME_SUCCEEDED, "w1", 1, 400);
  *c.add_steps() = step("flaky", td::v1::STEP_OUTCOME_SUCCEEDED, "w2", 2, 500);
  *c.add_steps() = step("common", td::v1::STEP_OUTCOME_SUCCEEDED, "w1", 1, 900);
  *c.add_steps() = step("a_rather_long_step_id", td::v1::STEP_OUTCOME_SUCCEEDED, "w3", 1, 61000);
  return r;
}

TEST(FormatDuration, PicksAReadableUnit) {
  EXPECT_EQ(formatDuration(0), "0.0 s");
  EXPECT_EQ(formatDuration(400), "0.4 s");
  EXPECT_EQ(formatDuration(59'949), "59.9 s");
  EXPECT_EQ(formatDuration(61'000), "1m01s");
  EXPECT_EQ(formatDuration(3'725'000), "1h02m");
}

TEST(FormatSummary, CompletedGroupShowsEveryStepAndWhoRanIt) {
  const std::string out = formatSummary(completed(), "w1");
  EXPECT_EQ(out,
            "group g-7 COMPLETED in 4.2 s\n"
            "  step                   outcome     peer (* = this one)   attempts   duration\n"
            "  fetch                  succeeded   w1 *                         1      0.4 s\n"
            "  flaky                  succeeded   w2                           2      0.5 s\n"
            "  common                 succeeded   w1 *                         1      0.9 s\n"
            "  a_rather_long_step_id  succeeded   w3                           1      1m01s\n"
            "  this peer (w1): 2 steps, 1.3 s; other peers: 2 steps, 1m02s\n"
            "  by peer: w1 2 steps 1.3 s, w2 1 step 0.5 s, w3 1 step 1m01s\n")
      << out;
}

TEST(FormatSummary, CancelledGroupSaysWhoAndWhy) {
  td::v1::AssignmentRecord r;
  auto& c = *r.mutable_cancelled();
  c.set_group_id("g-9");
  c.set_reason("runaway");
  c.set_requested_by("alice@ops");
  c.set_wall_time_ms(65'000);
  *c.add_steps() = step("compile", td::v1::STEP_OUTCOME_SUCCEEDED, "w1", 1, 1200);
  *c.add_steps() = step("test", td::v1::STEP_OUTCOME_UNSPECIFIED, "", 0, 0);
  const std::string out = formatSummary(r, "w1");
  EXPECT_EQ(out.rfind("group g-9 CANCELLED by alice@ops: runaway (after 1m05s)\n", 0), 0u) << out;
  EXPECT_NE(out.find("compile"), std::string::npos);
  c.clear_reason();
  EXPECT_NE(formatSummary(r, "w1").find("(no reason given)"), std::string::npos);
}

TEST(FormatSummary, FailedGroupSaysWhichStepAndWhy) {
  td::v1::AssignmentRecord r;
  auto& f = *r.mutable_failed();
  f.set_group_id("g-8");
  f.set_failed_step_id("compile");
  f.set_reason("step compile failed 3 of 3 attempts (last: failed, exit 3, on w2)");
  f.set_wall_time_ms(125'000);
  *f.add_steps() = step("compile", td::v1::STEP_OUTCOME_FAILED, "w2", 3, 1200);
  *f.add_steps() = step("test", td::v1::STEP_OUTCOME_UNSPECIFIED, "", 0, 0);
  const std::string out = formatSummary(r, "w1");
  // The reason names the step once ("step compile step compile failed" before).
  EXPECT_EQ(out.rfind("group g-8 FAILED in 2m05s: step compile failed 3 of 3 attempts (last: "
                      "failed, exit 3, on w2)\n",
                      0),
            0u)
      << out;
  // A step the group ended before it ran is "not run", not "unspecified".
  EXPECT_NE(out.find("  test     not run"), std::string::npos) << out;
  EXPECT_EQ(out.find("unspecified"), std::string::npos) << out;
  EXPECT_NE(out.find("this peer (w1): 0 steps, 0.0 s; other peers: 1 step, 1.2 s"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("by peer"), std::string::npos) << out;   // one peer: nothing to add
}

TEST(FormatSummary, EveryPeerSeesTheFailedAttemptAndTheEndOfItsOutput) {
  td::v1::AssignmentRecord r;
  auto& f = *r.mutable_failed();
  f.set_group_id("g-9");
  f.set_failed_step_id("link");
  f.set_reason("step link failed 1 of 1 attempts (last: failed, exit 2, on w2)");
  *f.add_steps() = step("link", td::v1::STEP_OUTCOME_FAILED, "w2", 1, 300);
  auto& failure = *f.mutable_failure();
  failure.set_step_id("link");
  failure.set_peer_id("w2");
  failure.set_attempt(1);
  failure.set_outcome(td::v1::STEP_OUTCOME_FAILED);
  failure.set_exit_code(2);
  failure.set_output_tail("ld: cannot find -lfoo\ncollect2: error: ld returned 1 exit status\n");
  const std::string other = formatSummary(r, "w1");
  EXPECT_NE(other.find("  failed: step link, attempt 1 on w2: failed, exit 2; the last lines of "
                       "its output:\n    | ld: cannot find -lfoo\n    | collect2: error: ld "
                       "returned 1 exit status\n"),
            std::string::npos)
      << other;
  EXPECT_NE(formatSummary(r, "w2").find("attempt 1 on w2 (this peer): failed, exit 2"),
            std::string::npos);

  // Without audit arguments (--log-cap 0) no td-audit logs line; with them it follows the tail.
  EXPECT_EQ(other.find("full output:"), std::string::npos) << other;
  const std::string with_logs = formatSummary(r, "w1", "--bootstrap-server k1:9092,k2:9092");
  EXPECT_NE(with_logs.find("    | collect2: error: ld returned 1 exit status\n"
                           "  full output: td-audit logs g-9 link --attempt 1 "
                           "--bootstrap-server k1:9092,k2:9092\n"),
            std::string::npos)
      << with_logs;

  failure.set_exit_code(-1);
  failure.set_signal(9);
  failure.clear_output_tail();
  EXPECT_NE(formatSummary(r, "w1").find("failed, killed by SIGKILL; no output\n"),
            std::string::npos)
      << formatSummary(r, "w1");
  failure.set_outcome(td::v1::STEP_OUTCOME_LOST);
  EXPECT_NE(formatSummary(r, "w1").find("attempt 1 on w2: lost (its peer stopped heartbeating"),
            std::string::npos)
      << formatSummary(r, "w1");
}

TEST(FormatSummary, OtherRecordsGiveNothing) {
  td::v1::AssignmentRecord r;
  r.mutable_assigned()->set_step_id("x");
  EXPECT_EQ(formatSummary(r, "w1"), "");
}

TEST(FormatSummary, HasNoEscapeSequences) {
  const std::string out = formatSummary(completed(), "w1");
  EXPECT_EQ(out.find('\033'), std::string::npos);
  EXPECT_EQ(out.find('\r'), std::string::npos);
}

TEST(FormatProgress, SaysWhatRunsAndFitsTheWidth) {
  ProgressState s{.group_id = "g-7",
                  .steps_total = 9,
                  .steps_assigned = 4,
                  .own_done = 1,
                  .running_step = "ui",
                  .running_attempt = 2,
                  .running_for = std::chrono::milliseconds(1500),
                  .elapsed = std::chrono::milliseconds(3000)};
  EXPECT_EQ(formatProgress(s),
            "td-worker 3.0 s: running ui (attempt 2, 1.5 s) | 4/9 steps handed out | "
            "1 finished here | group g-7");
  EXPECT_EQ(formatProgress(s, 20), "td-worker 3.0 s: run");
  s.running_step.clear();
  EXPECT_EQ(formatProgress(s).rfind("td-worker 3.0 s: waiting | 4/9", 0), 0u) << formatProgress(s);
}

TEST(ProgressLine, IsOffWhenNotATerminal) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    ProgressLine line(fds[1]);
    EXPECT_FALSE(line.enabled());
    line.draw(ProgressState{.group_id = "g"});
    line.clear();
  }
  ::close(fds[1]);
  char buffer[16];
  EXPECT_EQ(::read(fds[0], buffer, sizeof buffer), 0);   // nothing was written
  ::close(fds[0]);
}

}  // namespace
}  // namespace td::worker
