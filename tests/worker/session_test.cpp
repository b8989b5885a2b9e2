// What a worker does with assignment-topic records (guarantee 5: only its own schema's steps).
#include "worker/session.h"

#include <gtest/gtest.h>

namespace td::worker {
namespace {

schema::Schema twoSteps() {
  auto parsed = schema::parse("name: s\nsteps:\n  - id: a\n    run: echo a\n  - id: b\n    run: echo b\n",
                              "inline");
  EXPECT_TRUE(parsed.has_value());
  return *parsed;
}

td::v1::AssignmentRecord assigned(const std::string& step, std::uint32_t attempt,
                                  const std::string& peer = "w1",
                                  const std::string& session = "s1",
                                  const std::string& group = "g") {
  td::v1::AssignmentRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& a = *r.mutable_assigned();
  a.set_group_id(group);
  a.set_step_id(step);
  a.set_attempt(attempt);
  a.set_peer_id(peer);
  a.set_session_id(session);
  return r;
}

TEST(Session, RunsItsOwnCommandForAnAssignedStep) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  auto action = session.onRecord(assigned("b", 1));
  ASSERT_TRUE(std::holds_alternative<RunStep>(action));
  EXPECT_EQ(std::get<RunStep>(action).step->run, "echo b");
  EXPECT_EQ(std::get<RunStep>(action).attempt, 1u);
}

TEST(Session, RejectsAStepIdThatIsNotInItsSchema) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  auto action = session.onRecord(assigned("rm -rf /", 1));
  ASSERT_TRUE(std::holds_alternative<RejectStep>(action));
  EXPECT_NE(std::get<RejectStep>(action).reason.find("not in this worker's schema"),
            std::string::npos);
}

TEST(Session, IgnoresOtherPeersSessionsGroupsAndRepeats) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1, "w2"))));
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1, "w1", "old"))));
  EXPECT_TRUE(
      std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1, "w1", "s1", "h"))));
  EXPECT_TRUE(std::holds_alternative<RunStep>(session.onRecord(assigned("a", 1))));
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(assigned("a", 1))));
  EXPECT_TRUE(std::holds_alternative<RunStep>(session.onRecord(assigned("a", 2))));
}

TEST(Session, GroupResultsEndTheSession) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  td::v1::AssignmentRecord done;
  done.mutable_completed()->set_group_id("g");
  auto action = session.onRecord(done);
  ASSERT_TRUE(std::holds_alternative<GroupDone>(action));
  EXPECT_EQ(std::get<GroupDone>(action).exit_code, 0);
  td::v1::AssignmentRecord failed;
  failed.mutable_failed()->set_group_id("g");
  EXPECT_EQ(std::get<GroupDone>(session.onRecord(failed)).exit_code, 1);
  failed.mutable_failed()->set_group_id("other");
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(failed)));
}

TEST(Session, AbortOnlyForItsOwnAttempt) {
  auto schema = twoSteps();
  Session session("w1", "s1", "g", schema);
  td::v1::AssignmentRecord abort;
  auto& a = *abort.mutable_abort();
  a.set_group_id("g");
  a.set_step_id("a");
  a.set_attempt(1);
  a.set_peer_id("w1");
  a.set_session_id("s1");
  EXPECT_TRUE(std::holds_alternative<AbortRunning>(session.onRecord(abort)));
  a.set_session_id("other");
  EXPECT_TRUE(std::holds_alternative<NothingToDo>(session.onRecord(abort)));
}

}  // namespace
}  // namespace td::worker
