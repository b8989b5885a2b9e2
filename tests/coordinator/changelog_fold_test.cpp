// ChangelogFold: what a new owner restores from a td.state partition, rule by rule
// (coordinator/changelog_fold.h).
#include "coordinator/changelog_fold.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace td::coordinator {
namespace {

using Outcome = ChangelogFold::Outcome;

std::string claim(std::uint64_t epoch) {
  td::v1::StateRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  r.mutable_owner()->set_epoch(epoch);
  r.mutable_owner()->set_coordinator_id("c" + std::to_string(epoch));
  return r.SerializeAsString();
}

// A snapshot of `group` written at `epoch`; `marker` tells snapshots apart.
std::string snapshot(const std::string& group, std::uint64_t epoch, std::uint64_t marker = 0) {
  td::v1::StateRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  r.mutable_group()->set_group_id(group);
  r.mutable_group()->set_coordinator_epoch(epoch);
  r.mutable_group()->set_next_sequence(marker);
  return r.SerializeAsString();
}

std::string forgotten(const std::string& group, std::uint64_t epoch) {
  td::v1::StateRecord r;
  r.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  r.mutable_forgotten()->set_group_id(group);
  r.mutable_forgotten()->set_coordinator_epoch(epoch);
  return r.SerializeAsString();
}

std::vector<std::string> ids(const ChangelogFold::Restore& r) {
  std::vector<std::string> out;
  for (const auto& s : r.snapshots) out.push_back("snapshot " + s.group_id());
  for (const auto& f : r.forgotten) out.push_back("forgotten " + f.group_id());
  return out;
}

TEST(ChangelogFold, AnEmptyPartitionRestoresNothingAndClaimsEpochOne) {
  ChangelogFold fold;
  EXPECT_EQ(fold.nextEpoch(), 1u);
  EXPECT_TRUE(ids(fold.take()).empty());
}

TEST(ChangelogFold, TheLatestSnapshotOfEachGroupWinsInGroupIdOrder) {
  ChangelogFold fold;
  EXPECT_EQ(fold.add("g2", snapshot("g2", 1, 10)), Outcome::kSnapshot);
  EXPECT_EQ(fold.add("g1", snapshot("g1", 1, 20)), Outcome::kSnapshot);
  EXPECT_EQ(fold.add("g2", snapshot("g2", 1, 11)), Outcome::kSnapshot);
  auto restore = fold.take();
  EXPECT_EQ(ids(restore), (std::vector<std::string>{"snapshot g1", "snapshot g2"}));
  EXPECT_EQ(restore.snapshots[0].next_sequence(), 20u);
  EXPECT_EQ(restore.snapshots[1].next_sequence(), 11u);
}

TEST(ChangelogFold, AForgottenRecordReplacesTheSnapshotAndALaterSnapshotReplacesIt) {
  ChangelogFold fold;
  fold.add("g1", snapshot("g1", 1));
  EXPECT_EQ(fold.add("g1", forgotten("g1", 1)), Outcome::kForgotten);
  fold.add("g2", forgotten("g2", 1));
  EXPECT_EQ(fold.add("g2", snapshot("g2", 2)), Outcome::kSnapshot);
  EXPECT_EQ(ids(fold.take()), (std::vector<std::string>{"snapshot g2", "forgotten g1"}));
}

TEST(ChangelogFold, ANullValueDeletesBothKinds) {
  ChangelogFold fold;
  fold.add("g1", snapshot("g1", 1));
  fold.add("g2", forgotten("g2", 1));
  EXPECT_EQ(fold.add("g1", ""), Outcome::kDeleted);
  EXPECT_EQ(fold.add("g2", ""), Outcome::kDeleted);
  EXPECT_EQ(fold.add("g3", ""), Outcome::kDeleted);   // nothing to delete: still fine
  EXPECT_TRUE(ids(fold.take()).empty());
}

TEST(ChangelogFold, AZombiesRecordsAfterANewerClaimAreSkipped) {
  ChangelogFold fold;
  fold.add(kOwnerKey, claim(1));
  fold.add("g1", snapshot("g1", 1, 1));
  EXPECT_EQ(fold.add(kOwnerKey, claim(2)), Outcome::kClaim);
  // The owner of epoch 1 had lost the partition and went on writing.
  EXPECT_EQ(fold.add("g1", snapshot("g1", 1, 2)), Outcome::kStale);
  EXPECT_EQ(fold.add("g9", snapshot("g9", 1)), Outcome::kStale);
  EXPECT_EQ(fold.add("g1", forgotten("g1", 1)), Outcome::kStale);
  EXPECT_EQ(fold.skipped(), 3u);
  EXPECT_EQ(fold.claimedEpoch(), 2u);
  EXPECT_EQ(fold.nextEpoch(), 3u);
  auto restore = fold.take();
  ASSERT_EQ(ids(restore), (std::vector<std::string>{"snapshot g1"}));
  EXPECT_EQ(restore.snapshots[0].next_sequence(), 1u);
}

// The bug this rule fixed: a zombie's snapshot written after the new owner forgot the group
// erased the forgotten-group record, and the group came back.
TEST(ChangelogFold, AZombieSnapshotNeverErasesAForgottenGroup) {
  ChangelogFold fold;
  fold.add(kOwnerKey, claim(1));
  fold.add("g1", snapshot("g1", 1));
  fold.add(kOwnerKey, claim(2));
  fold.add("g1", forgotten("g1", 2));
  EXPECT_EQ(fold.add("g1", snapshot("g1", 1)), Outcome::kStale);
  EXPECT_EQ(ids(fold.take()), (std::vector<std::string>{"forgotten g1"}));
}

TEST(ChangelogFold, TheNextEpochIsAboveEveryEpochReadNotOnlyClaims) {
  // A log that lost its oldest records, the latest claim among them.
  ChangelogFold fold;
  fold.add("g1", snapshot("g1", 7));
  fold.add("g2", forgotten("g2", 9));
  EXPECT_EQ(fold.claimedEpoch(), 0u);
  EXPECT_EQ(fold.nextEpoch(), 10u);
  fold.add(kOwnerKey, claim(4));   // an older claim read later does not lower it
  EXPECT_EQ(fold.nextEpoch(), 10u);
}

TEST(ChangelogFold, UndecodableRecordsAreReportedAndChangeNothing) {
  ChangelogFold fold;
  fold.add("g1", snapshot("g1", 1, 5));
  EXPECT_EQ(fold.add("g1", std::string("\xff\xff\xff", 3)), Outcome::kUndecodable);
  EXPECT_EQ(fold.add("g1", snapshot("other", 1)), Outcome::kUndecodable);   // id is not its key
  EXPECT_EQ(fold.add("g1", forgotten("other", 1)), Outcome::kUndecodable);
  EXPECT_EQ(fold.add(kOwnerKey, snapshot("g1", 1)), Outcome::kUndecodable);  // no owner
  EXPECT_EQ(fold.add(kOwnerKey, ""), Outcome::kUndecodable);
  td::v1::StateRecord empty;
  EXPECT_EQ(fold.add("g1", empty.SerializeAsString() + std::string("\x08\x01", 2)),
            Outcome::kUndecodable);   // a record of no known kind
  EXPECT_EQ(fold.nextEpoch(), 2u);
  auto restore = fold.take();
  ASSERT_EQ(ids(restore), (std::vector<std::string>{"snapshot g1"}));
  EXPECT_EQ(restore.snapshots[0].next_sequence(), 5u);
}

}  // namespace
}  // namespace td::coordinator
