// td-ctl groups: td.state records (snapshots, forgotten groups, deletions, a zombie's late
// snapshot) folded into the table, and its text and JSON renderings.
#include <gtest/gtest.h>

#include "ctl/group_table.h"

namespace td::ctl {
namespace {

td::v1::StateRecord groupRecord(const std::string& id, td::v1::GroupStatus status,
                                std::uint64_t epoch, const std::string& owner = "c1") {
  td::v1::StateRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  auto& g = *r.mutable_group();
  g.set_group_id(id);
  g.set_status(status);
  g.set_coordinator_epoch(epoch);
  g.set_coordinator_id(owner);
  g.set_schema_name("app");
  g.set_created_at_ms(1'000'000);
  g.set_partition(2);
  g.set_compatibility_key("key");
  const td::v1::StepState states[] = {td::v1::STEP_STATE_SUCCEEDED, td::v1::STEP_STATE_RUNNING,
                                      td::v1::STEP_STATE_RUNNING, td::v1::STEP_STATE_QUEUED,
                                      td::v1::STEP_STATE_WAITING};
  int n = 0;
  for (auto state : states) {
    auto& s = *g.add_steps();
    s.mutable_spec()->set_id("s" + std::to_string(n++));
    s.set_state(state);
  }
  for (const char* peer : {"w1", "w2", "gone"}) {
    auto& m = *g.add_members();
    m.set_peer_id(peer);
    m.set_present(std::string(peer) != "gone");
  }
  return r;
}

td::v1::StateRecord forgottenRecord(const std::string& id, std::uint64_t epoch) {
  td::v1::StateRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  r.mutable_forgotten()->set_group_id(id);
  r.mutable_forgotten()->set_coordinator_epoch(epoch);
  return r;
}

void add(GroupTable& t, const std::string& key, const td::v1::StateRecord& r, std::int64_t off) {
  t.add(key, r.SerializeAsString(), 2, off);
}

TEST(GroupTable, LatestSnapshotPerGroupWins) {
  GroupTable t;
  add(t, "g1", groupRecord("g1", td::v1::GROUP_STATUS_RUNNING, 1), 0);
  add(t, "g1", groupRecord("g1", td::v1::GROUP_STATUS_COMPLETED, 1), 1);
  ASSERT_NE(t.find("g1"), nullptr);
  EXPECT_EQ(t.find("g1")->status(), td::v1::GROUP_STATUS_COMPLETED);
  EXPECT_EQ(t.groups().size(), 1u);
}

TEST(GroupTable, AZombiesLateSnapshotDoesNotHideTheNewOwners) {
  GroupTable t;
  add(t, "g1", groupRecord("g1", td::v1::GROUP_STATUS_RUNNING, 2, "c2"), 0);
  add(t, "g1", groupRecord("g1", td::v1::GROUP_STATUS_FAILED, 1, "c1"), 1);   // the zombie
  EXPECT_EQ(t.find("g1")->status(), td::v1::GROUP_STATUS_RUNNING);
  EXPECT_EQ(t.find("g1")->coordinator_id(), "c2");
}

TEST(GroupTable, ForgottenAndDeletedGroupsAreNotListed) {
  GroupTable t;
  add(t, "g1", groupRecord("g1", td::v1::GROUP_STATUS_COMPLETED, 1), 0);
  add(t, "g1", forgottenRecord("g1", 1), 1);
  add(t, "g2", groupRecord("g2", td::v1::GROUP_STATUS_RUNNING, 1), 2);
  t.add("g2", "", 2, 3);   // null: deleted
  EXPECT_EQ(t.find("g1"), nullptr);
  EXPECT_EQ(t.find("g2"), nullptr);
  EXPECT_TRUE(t.groups().empty());
}

TEST(GroupTable, OwnerRecordsAreSkippedAndGarbageIsReported) {
  GroupTable t;
  td::v1::StateRecord owner;
  owner.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  owner.mutable_owner()->set_epoch(3);
  add(t, "#owner", owner, 0);
  t.add("g9", "\xff\xff garbage", 4, 17);
  EXPECT_TRUE(t.groups().empty());
  ASSERT_EQ(t.problems().size(), 1u);
  EXPECT_NE(t.problems()[0].find("td.state[4]@17"), std::string::npos) << t.problems()[0];
}

TEST(GroupRow, CountsStepsAndPresentMembers) {
  const auto r = groupRecord("g1", td::v1::GROUP_STATUS_RUNNING, 3, "coord-a");
  const GroupRow row = rowOf(r.group(), 1'000'000 + 125'000);
  EXPECT_EQ(row.state, "running");
  EXPECT_EQ(row.schema, "app");
  EXPECT_EQ(row.members, (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ(row.steps, 5u);
  EXPECT_EQ(row.done, 1u);
  EXPECT_EQ(row.running, 2u);
  EXPECT_EQ(row.queued, 2u);
  EXPECT_EQ(row.failed, 0u);
  EXPECT_EQ(row.age_ms, 125'000);
  EXPECT_EQ(row.owner, "coord-a");
  EXPECT_EQ(row.epoch, 3u);
  EXPECT_EQ(formatAge(row.age_ms), "2m05s");
}

TEST(GroupRow, StateFilter) {
  EXPECT_TRUE(stateMatches("open", "running"));
  EXPECT_FALSE(stateMatches("open", "completed"));
  EXPECT_TRUE(stateMatches("cancelled", "cancelled"));
  EXPECT_TRUE(stateMatches("all", "failed"));
}

TEST(GroupRow, TableAndJson) {
  auto r = groupRecord("g\"1", td::v1::GROUP_STATUS_RUNNING, 3, "coord-a");
  const GroupRow row = rowOf(r.group(), 1'005'000);
  const std::string table = formatTable({row}, "open");
  EXPECT_NE(table.find("GROUP"), std::string::npos);
  EXPECT_NE(table.find("w1,w2"), std::string::npos) << table;
  EXPECT_NE(table.find("coord-a/3"), std::string::npos) << table;
  EXPECT_EQ(formatTable({}, "open"), "no open groups\n");
  const std::string json = formatJson({row});
  EXPECT_NE(json.find(R"("group":"g\"1")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("members":["w1","w2"])"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("steps":{"total":5,"done":1,"running":2,"queued":2,"failed":0})"),
            std::string::npos)
      << json;
  EXPECT_EQ(formatJson({}), "[]\n");
}

}  // namespace
}  // namespace td::ctl
