// Every grouping case of docs/architecture.md ("Grouping"), plus retention and
// determinism of group ids.
#include <gtest/gtest.h>

#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

using Grouping = CoreTest;

TEST_F(Grouping, OnePeer) {
  EXPECT_FALSE(join(PeerBuilder("1")).empty());
  EXPECT_EQ(core_.groupCount(), 1u);
}

TEST_F(Grouping, TwoIdenticalPeersShareAGroup) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("2").change("c1"));
  EXPECT_EQ(g1, g2);
}

TEST_F(Grouping, DifferentRemoteCacheNeverGrouped) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c1").cache("x")));
}
TEST_F(Grouping, DifferentSchemaNeverGrouped) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c1").schema("t")));
}
TEST_F(Grouping, SameSchemaNameDifferentDigestNeverGrouped) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c1").schema("s", "digest-2")));
}
TEST_F(Grouping, DifferentBaseRefNeverGrouped) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c1").base("dev")));
}
TEST_F(Grouping, DifferentRepositoryNeverGrouped) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c1").repository("other")));
}

TEST_F(Grouping, UnrelatedChangesStartTheirOwnGroups) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c2")));
}

TEST_F(Grouping, ChangeOnTopOfAnotherJoinsIt) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_EQ(first, join(PeerBuilder("2").change("c2").on({"c1"})));
}

TEST_F(Grouping, ChangeOnTopOfAnUnknownRefStartsItsOwn) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c2").on({"c9"})));
}

TEST_F(Grouping, ChainOfThreeIsOneGroup) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("2").change("c2").on({"c1"}));
  auto g3 = join(PeerBuilder("3").change("c3").on({"c1", "c2"}));
  EXPECT_EQ(g1, g2);
  EXPECT_EQ(g2, g3);
}

TEST_F(Grouping, ThirdJoinsTheGroupItSharesWith) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("2").change("c2"));
  auto g3 = join(PeerBuilder("3").change("c3").on({"c1"}));
  EXPECT_NE(g1, g2);
  EXPECT_EQ(g1, g3);
}

TEST_F(Grouping, ComplexPeerNeverJoinsAnExistingGroup) {
  auto first = join(PeerBuilder("1").change("c1"));
  EXPECT_NE(first, join(PeerBuilder("2").change("c2").on({"c1"}).complex()));
}

TEST_F(Grouping, LaterPeerMayJoinTheGroupAComplexPeerStarted) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("2").change("c2").on({"c1"}).complex());
  auto g3 = join(PeerBuilder("3").change("c3").on({"c1", "c2"}));
  EXPECT_NE(g1, g2);
  EXPECT_EQ(g2, g3);
}

TEST_F(Grouping, ComplexThirdPeerStartsItsOwn) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("2").change("c2").on({"c1"}));
  auto g3 = join(PeerBuilder("3").change("c3").on({"c1", "c2"}).complex());
  EXPECT_EQ(g1, g2);
  EXPECT_NE(g2, g3);
}

TEST_F(Grouping, TiesGoToTheOldestGroup) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("2").change("c2"));
  EXPECT_EQ(join(PeerBuilder("3").change("c3").on({"c2", "c1"})), g1);
  (void)g2;
}

TEST_F(Grouping, MostSharedRefsWins) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("2").change("c2").on({"c9"}));
  EXPECT_EQ(join(PeerBuilder("3").change("c3").on({"c1", "c2", "c9"})), g2);
  (void)g1;
}

TEST_F(Grouping, RefsAreComparedPerRepository) {
  // Two repositories: the same ref name in another repository is a different ref.
  auto a = PeerBuilder("1").change("c1").build();
  auto* second = a.add_repos();
  second->set_repository("repo2");
  second->set_base_ref("main");
  second->set_change_ref("x1");
  a.set_compatibility_key(protocol::compatibilityKey(a));
  auto b = a;
  b.set_peer_id("2");
  b.set_session_id("2-s1");
  b.mutable_repos(0)->set_change_ref("c2");
  b.mutable_repos(1)->set_change_ref("c1");   // c1, but in repo2
  Effects ea = run(Registration{.peer = a});
  Effects eb = run(Registration{.peer = b});
  EXPECT_NE(core_.groupOfPeerForTest("1"), core_.groupOfPeerForTest("2"));
}

TEST_F(Grouping, CompletedGroupIsJoinableWithinRetentionAndLateJoinerRunsNothing) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  clock_.advance(std::chrono::minutes(1));
  Effects effects = run(Registration{.peer = PeerBuilder("2").change("c1").steps(1).build()});
  ASSERT_EQ(std::get<PublishJoin>(effects.back()).record.joined().group_id(), g);
  EXPECT_EQ(std::get<PublishJoin>(effects.back()).record.joined().status(),
            td::v1::GROUP_STATUS_COMPLETED);
  EXPECT_TRUE(assignments(effects).empty());
}

// A completed group built its members' changes only: a change built on top of them (a new
// push of a stack, a later entry of a merge queue) must build, so it starts its own group.
TEST_F(Grouping, CompletedGroupIsNotJoinedByAChangeBuiltOnIt) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  clock_.advance(std::chrono::minutes(1));
  auto g2 = join(PeerBuilder("2").change("c2").on({"c1"}).steps(1));
  EXPECT_NE(g2, g);
  // While it runs, the next change of the stack joins it, as changes on top always do.
  EXPECT_EQ(join(PeerBuilder("3").change("c3").on({"c1", "c2"}).steps(1)), g2);
}

// A late job of a change the completed group built joins it, whatever it builds on.
TEST_F(Grouping, CompletedGroupIsJoinedByAPeerOfOneOfItsChanges) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  join(PeerBuilder("2").change("c2").on({"c1"}).steps(1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  clock_.advance(std::chrono::minutes(1));
  EXPECT_EQ(join(PeerBuilder("3").change("c2").on({"c1"}).steps(1)), g);
  EXPECT_EQ(join(PeerBuilder("4").change("c1").steps(1)), g);
}

TEST_F(Grouping, CompletedGroupIsForgottenAfterRetention) {
  auto g = join(PeerBuilder("1").change("c1").steps(1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  clock_.advance(core_.config().finished_group_retention + std::chrono::seconds(1));
  run(Tick{});
  EXPECT_EQ(core_.groupCount(), 0u);
  EXPECT_NE(join(PeerBuilder("2").change("c1").steps(1)), g);
}

TEST_F(Grouping, FailedGroupIsNeverJoined) {
  auto g = join(PeerBuilder("1").change("c1").steps(1, 1));
  finish(g, "1", "a", 1, td::v1::STEP_OUTCOME_FAILED);
  EXPECT_NE(join(PeerBuilder("2").change("c1").steps(1, 1)), g);
}

TEST_F(Grouping, GroupIdsAreDeterministicInTheInput) {
  std::vector<std::string> first;
  std::vector<std::string> second;
  for (auto* ids : {&first, &second}) {
    Core core(CoreConfig{});
    for (const char* id : {"1", "2", "3"}) {
      Effects e = core.handle(Registration{.peer = PeerBuilder(id).change(std::string("c") + id).build()},
                              clock_.now());
      ids->push_back(std::get<PublishJoin>(e.back()).record.joined().group_id());
    }
  }
  EXPECT_EQ(first, second);
  EXPECT_NE(first[0], first[1]);
}

TEST_F(Grouping, RepeatedRegistrationGetsTheSameAnswer) {
  auto g1 = join(PeerBuilder("1").change("c1"));
  auto g2 = join(PeerBuilder("1").change("c1"));
  EXPECT_EQ(g1, g2);
  EXPECT_EQ(core_.groupCount(), 1u);
}

// Groups with the same steps share one StepTable (the schema costs memory once); another list
// of steps gets its own; a table goes once no group holds it.
TEST_F(Grouping, GroupsOfTheSameStepsShareOneStepTable) {
  const auto g1 = join(PeerBuilder("p1").change("c1").steps(3));
  const auto g2 = join(PeerBuilder("p2").change("c2").steps(3));
  ASSERT_NE(g1, g2);
  EXPECT_EQ(core_.stepTableCountForTest(), 1u);
  const auto g3 = join(PeerBuilder("p3").change("c3").steps(2));
  EXPECT_EQ(core_.stepTableCountForTest(), 2u);
  finish(g3, "p3", "a", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  finish(g3, "p3", "b", 1, td::v1::STEP_OUTCOME_SUCCEEDED);
  ASSERT_TRUE(core_.findGroupForTest(g3)->finishedAt());
  clock_.advance(core_.config().finished_group_retention + Millis(1));
  run(Tick{});
  ASSERT_EQ(core_.findGroupForTest(g3), nullptr) << "forgotten";
  EXPECT_EQ(core_.stepTableCountForTest(), 1u);
}

}  // namespace
}  // namespace td::coordinator::testing
