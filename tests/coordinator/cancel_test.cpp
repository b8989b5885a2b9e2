// An operator's cancel request (td-ctl cancel) in the core: a running group's attempts are
// aborted, its queued steps never run, group_cancelled and GroupCancelled are written once, and
// a repeat (a replay after a fail-over), an unknown group or a bad request changes nothing.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using Cancel = CoreTest;
using td::v1::AssignmentRecord;

td::v1::CancelGroup request(const std::string& group, const std::string& id = "r1") {
  td::v1::CancelGroup c;
  c.set_group_id(group);
  c.set_reason("runaway build");
  c.set_requested_by("alice@ops");
  c.set_request_id(id);
  c.set_sent_at_ms(1700000000000);
  return c;
}

std::size_t count(const std::vector<std::string>& kinds, const std::string& kind) {
  return static_cast<std::size_t>(std::count(kinds.begin(), kinds.end(), kind));
}

TEST_F(Cancel, RunningGroupAbortsItsAttemptsAndTellsEveryMember) {
  auto g = join(PeerBuilder("1").change("c1").steps(4));   // 1 runs a
  join(PeerBuilder("2").change("c1").steps(4));            // 2 runs b; c, d queued
  Effects e = run(request(g));
  auto kinds = eventKinds(e);
  EXPECT_EQ(count(kinds, "step_aborted"), 2u);
  EXPECT_EQ(count(kinds, "group_cancelled"), 1u);
  EXPECT_TRUE(has(e, AssignmentRecord::kCancelled));
  EXPECT_TRUE(assignments(e).empty());
  for (const auto& ev : events(e)) {
    if (!ev.has_group_cancelled()) continue;
    EXPECT_EQ(ev.group_cancelled().requested_by(), "alice@ops");
    EXPECT_EQ(ev.group_cancelled().reason(), "runaway build");
    EXPECT_EQ(ev.group_cancelled().request_id(), "r1");
    EXPECT_EQ(ev.group_cancelled().steps_size(), 4);
  }
  int aborts = 0;
  for (const auto& effect : e) {
    const auto* a = std::get_if<PublishAssignment>(&effect);
    if (a != nullptr && a->record.has_abort()) ++aborts;
  }
  EXPECT_EQ(aborts, 2);
  const Group* group = core_.findGroupForTest(g);
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->status(), td::v1::GROUP_STATUS_CANCELLED);
  EXPECT_EQ(core_.census().groups_cancelled_total, 1u);
  EXPECT_EQ(core_.census().groups_cancelled, 1);
  EXPECT_EQ(core_.census().groups_running, 0);
  EXPECT_EQ(core_.census().steps_queued, 0);

  // The aborted attempts' answers start nothing: the queued steps never run.
  Effects after = finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_ABORTED);
  Effects more = finish(g, "2", "b", 1, td::v1::STEP_OUTCOME_ABORTED);
  after.insert(after.end(), more.begin(), more.end());
  EXPECT_TRUE(assignments(after).empty());
  EXPECT_EQ(count(eventKinds(after), "group_completed") + count(eventKinds(after), "group_failed"),
            0u);
}

TEST_F(Cancel, RepeatedRequestIsIgnoredOnTheGroupsStream) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  (void)run(request(g));
  Effects again = run(request(g));   // replayed after a fail-over, or sent twice
  auto kinds = eventKinds(again);
  ASSERT_EQ(kinds, std::vector<std::string>{"input_ignored"});
  const auto ignored = events(again).front().input_ignored();
  EXPECT_EQ(ignored.reason(), "group_finished");
  EXPECT_NE(ignored.detail().find("r1"), std::string::npos) << ignored.detail();
  EXPECT_NE(ignored.detail().find("cancelled"), std::string::npos) << ignored.detail();
  EXPECT_FALSE(has(again, AssignmentRecord::kCancelled));
  EXPECT_EQ(core_.census().groups_cancelled_total, 1u);
}

TEST_F(Cancel, FinishedGroupIsNotCancelled) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  Effects e = run(request(g));
  ASSERT_EQ(eventKinds(e), std::vector<std::string>{"input_ignored"});
  EXPECT_NE(events(e).front().input_ignored().detail().find("completed"), std::string::npos);
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_COMPLETED);
}

TEST_F(Cancel, UnknownGroupIsDeadLettered) {
  Effects e = run(request("nope"));
  EXPECT_EQ(deadLetters(e), 1);
  EXPECT_TRUE(events(e).empty());
}

TEST_F(Cancel, InvalidRequestIsDeadLetteredNamingTheField) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  auto bad = request(g);
  bad.set_requested_by("alice smith");
  Effects e = run(bad);
  ASSERT_EQ(deadLetters(e), 1);
  EXPECT_NE(std::get<DeadLetter>(e.front()).reason.find("requested_by"), std::string::npos);
  bad = request(g);
  bad.set_request_id("");
  EXPECT_EQ(deadLetters(run(bad)), 1);
  bad = request(g);
  bad.set_reason(std::string(5000, 'x'));
  EXPECT_EQ(deadLetters(run(bad)), 1);
  EXPECT_EQ(core_.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_RUNNING);
}

TEST_F(Cancel, CancelledGroupIsNeverJoinedAgain) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  (void)run(request(g));
  auto later = join(PeerBuilder("2").change("c1").steps(1));
  EXPECT_FALSE(later.empty());
  EXPECT_NE(later, g);
}

TEST_F(Cancel, CancelledGroupSurvivesARestoreAsCancelled) {
  auto g = join(PeerBuilder("1").change("c1").steps(2));
  (void)run(request(g));
  auto snapshot = core_.snapshot(g, clock_.now());
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->status(), td::v1::GROUP_STATUS_CANCELLED);
  Core other(core_.config());
  Effects e = other.restore(0, 2, {*snapshot}, {}, clock_.now());
  EXPECT_EQ(deadLetters(e), 0);
  ASSERT_NE(other.findGroupForTest(g), nullptr);
  EXPECT_EQ(other.findGroupForTest(g)->status(), td::v1::GROUP_STATUS_CANCELLED);
  // The request replayed into the new owner (not committed before the fail-over) is a repeat.
  Effects again = other.handle(request(g), clock_.now());
  EXPECT_EQ(eventKinds(again), std::vector<std::string>{"input_ignored"});
}

}  // namespace
}  // namespace td::coordinator::testing
