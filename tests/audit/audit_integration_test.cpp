// td-audit against a real cluster: a group with a retried step (exit 1 on its first attempt)
// and a lost peer (w1 SIGKILLed mid-step, short lease). verify counts the lost attempt and the
// retries and finds no violation: long's attempt 1 ended with its worker (the step
// supervisor killed it), which verify reports as an unconfirmed end; show and report work on
// that group.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <signal.h>
#include <unistd.h>

#include <regex>
#include <set>

#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

constexpr auto kRunTimeout = std::chrono::seconds(60);

std::string markingStep(const std::string& id, const std::string& then) {
  return "  - id: " + id + "\n    run: '" + kMarkCommand + (then.empty() ? "" : "; " + then) + "'\n";
}

struct AuditRun {
  int rc = -1;
  std::string out;
};

AuditRun audit(const Cluster& cluster, std::vector<std::string> args, const std::string& name) {
  args.insert(args.begin(), TD_AUDIT_BIN);
  args.push_back("--bootstrap-server");
  args.push_back(cluster.bootstrap());
  Process p({.args = args, .output = cluster.dir() / (name + ".out")});
  auto rc = p.wait(std::chrono::seconds(60));
  return {rc.value_or(-1), p.output()};
}

// The number after "key": in a JSON text (first occurrence), or -1.
long jsonNumber(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + "\":(-?[0-9]+)"))) return -1;
  return std::stol(m[1]);
}

TEST(AuditCli, VerifyShowAndReportAGroupWithARetryAndALostPeer) {
  constexpr std::int64_t kLeaseMs = 3000, kHeartbeatMs = 500;
  Cluster cluster(Cluster::Options{
      .coordinator_args = {"--lease-ms", std::to_string(kLeaseMs), "--heartbeat-interval-ms",
                           std::to_string(kHeartbeatMs)}});
  const std::string yaml =
      "name: audited\ndefaults: {timeout: 1m, max_attempts: 3}\nsteps:\n" +
      markingStep("long", "if [ \"$TD_ATTEMPT\" = 1 ]; then sleep 30; fi") +
      markingStep("flaky", "if [ \"$TD_ATTEMPT\" = 1 ]; then exit 1; fi; sleep 0.2") +
      markingStep("a", "sleep 0.2") + markingStep("b", "sleep 0.2");
  auto schema = cluster.writeSchema("audited", yaml);
  auto& w1 = cluster.startWorker(schema, {"w1", "c1"});
  ASSERT_TRUE(waitUntil([&] { return cluster.findMark("long", 1).has_value(); }, kRunTimeout))
      << cluster.logs();
  auto& w2 = cluster.startWorker(schema, {"w2", "c1"});
  auto& w3 = cluster.startWorker(schema, {"w3", "c1"});
  ASSERT_TRUE(waitUntil(
      [&] {
        return cluster.findMark("flaky", 2).has_value() && cluster.runsOf("a") == 1 &&
               cluster.runsOf("b") == 1;
      },
      kRunTimeout))
      << cluster.logs();
  w1.signal(SIGKILL);
  ASSERT_EQ(w1.wait(std::chrono::seconds(10)), 128 + SIGKILL);
  ASSERT_EQ(w2.wait(kRunTimeout), 0) << cluster.logs();
  ASSERT_EQ(w3.wait(kRunTimeout), 0) << cluster.logs();
  const auto first = cluster.findMark("long", 1);
  ASSERT_TRUE(first.has_value());
  const std::string group = first->group;

  // Bad flags exit 2.
  EXPECT_EQ(audit(cluster, {"verify", "--no-such-flag"}, "bad").rc, 2);

  const AuditRun verify = audit(cluster, {"verify", "--json"}, "verify");
  std::cout << "[ verify ] " << verify.out << "\n";
  ASSERT_EQ(verify.rc, 0) << verify.out << cluster.logs();
  EXPECT_EQ(jsonNumber(verify.out, "violation_count"), 0) << verify.out;
  EXPECT_EQ(jsonNumber(verify.out, "unconfirmed_ends"), 1) << verify.out;
  EXPECT_EQ(jsonNumber(verify.out, "groups"), 1) << verify.out;
  EXPECT_NE(verify.out.find("\"status\":\"completed\""), std::string::npos) << verify.out;
  EXPECT_EQ(jsonNumber(verify.out, "lost"), 1) << "long's attempt 1 on w1\n" << verify.out;
  EXPECT_EQ(jsonNumber(verify.out, "peers_lost"), 1) << verify.out;
  EXPECT_EQ(jsonNumber(verify.out, "failures"), 1) << "flaky's attempt 1\n" << verify.out;
  EXPECT_GE(jsonNumber(verify.out, "retries"), 2) << "flaky and long\n" << verify.out;
  EXPECT_EQ(jsonNumber(verify.out, "successes"), 4) << verify.out;

  const AuditRun group_verify = audit(cluster, {"verify", "--group", group}, "verify-group");
  EXPECT_EQ(group_verify.rc, 0) << group_verify.out;
  EXPECT_NE(group_verify.out.find("0 violation(s)"), std::string::npos) << group_verify.out;
  EXPECT_NE(group_verify.out.find("1 lost attempt(s) never reported ended"), std::string::npos)
      << group_verify.out;

  const AuditRun show = audit(cluster, {"show", group}, "show");
  std::cout << "[ show ] " << show.out << "\n";
  ASSERT_EQ(show.rc, 0) << show.out;
  EXPECT_NE(show.out.find("LOST"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("retry after failed"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("retry after lost"), std::string::npos) << show.out;

  const AuditRun show_json = audit(cluster, {"show", group, "--json"}, "show-json");
  ASSERT_EQ(show_json.rc, 0) << show_json.out;
  EXPECT_NE(show_json.out.find("\"outcome\":\"lost\""), std::string::npos) << show_json.out;

  const auto html = cluster.dir() / "report.html";
  const AuditRun report = audit(cluster, {"report", "--out", html.string(), "--group", group}, "report");
  ASSERT_EQ(report.rc, 0) << report.out;
  const std::string page = readFile(html);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_NE(page.find(group), std::string::npos);

  // tail follows the stream: from the start (--since 0), filtered to the group's lost attempts,
  // one readable line each, then stops on SIGINT with exit 0. A filter that matches nothing
  // prints nothing.
  Process tail({.args = {TD_AUDIT_BIN, "tail", "--since", "0", "--group", group, "--outcome",
                         "lost", "--bootstrap-server", cluster.bootstrap()},
                .output = cluster.dir() / "tail.out"});
  Process tail_none({.args = {TD_AUDIT_BIN, "tail", "--since", "0", "--group", group, "--peer",
                              "nobody", "--bootstrap-server", cluster.bootstrap()},
                     .output = cluster.dir() / "tail_none.out"});
  ASSERT_TRUE(waitUntil([&] { return tail.output().find("lost") != std::string::npos; },
                        std::chrono::seconds(30)))
      << tail.output();
  tail.signal(SIGINT);
  EXPECT_EQ(tail.wait(std::chrono::seconds(20)), 0) << tail.output();
  EXPECT_NE(tail.output().find("step_finished step=long"), std::string::npos) << tail.output();
  // Times people can read: ISO-8601 UTC, not Unix milliseconds.
  EXPECT_TRUE(std::regex_search(
      tail.output(), std::regex("(^|\n)20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:"
                                "[0-5][0-9]\\.[0-9]{3}Z " + group + " #[0-9]+ step_finished")))
      << tail.output();
  EXPECT_EQ(tail.output().find("outcome=succeeded"), std::string::npos)
      << "the --outcome filter let another outcome through:\n" << tail.output();
  tail_none.signal(SIGINT);
  EXPECT_EQ(tail_none.wait(std::chrono::seconds(20)), 0) << tail_none.output();
  EXPECT_EQ(tail_none.output().find("step_"), std::string::npos) << tail_none.output();

  // The page opens in a browser: headless Chromium renders it, and the picture is not blank.
  // TD_REPORT_PNG=PATH keeps the picture (docs/report-example.png was made that way).
  const char* keep = std::getenv("TD_REPORT_PNG");
  const auto png = keep != nullptr ? std::filesystem::path(keep) : cluster.dir() / "report.png";
  Process render({.args = {"/usr/bin/python3", TD_RENDER_CHECK, html.string(), png.string()},
                  .output = cluster.dir() / "render.out"});
  ASSERT_EQ(render.wait(std::chrono::seconds(120)), 0) << render.output();
}

// Bad flags end td-audit with exit 2 and a line saying what, before it connects anywhere.
TEST(AuditCli, BadFlagsExitTwoSayingWhat) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"verify"}, "--bootstrap-server is required"},
      {{"tail", "--bootstrap-server", "127.0.0.1:1", "--outcome", "exploded"}, "exploded"},
      {{"verify", "--bootstrap-server", "127.0.0.1:1", "--since", "yesterday"}, "yesterday"},
      {{"verify", "--bootstrap-server", "127.0.0.1:1", "-X", "no.such.property=1"},
       "no.such.property"},
      {{"verify", "--bootstrap-server", "127.0.0.1:1", "-X", "socket.timeout.ms=banana"},
       "socket.timeout.ms"},
  };
  const auto dir = std::filesystem::temp_directory_path();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::vector<std::string> args = {TD_AUDIT_BIN};
    args.insert(args.end(), cases[i].args.begin(), cases[i].args.end());
    Process p({.args = args, .output = dir / ("td-audit-bad-flags-" + std::to_string(::getpid()) +
                                              "-" + std::to_string(i) + ".out")});
    EXPECT_EQ(p.wait(std::chrono::seconds(30)), 2) << p.output();
    EXPECT_NE(p.output().find(cases[i].says), std::string::npos) << p.output();
  }
}

}  // namespace
}  // namespace td::testing
