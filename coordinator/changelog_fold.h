// The fold of one td.state partition into what its new owner restores (docs/architecture.md,
// "Fail-over"). Pure: records in, in log order; snapshots, forgotten groups and the epoch to
// claim out. The Kafka shell (coordinator/kafka/service.cpp) reads the partition and feeds it.
//
// The rules, per record:
//   - key "#owner" (kOwnerKey): a partition claim; raises the highest claimed epoch;
//   - a null value: the group's record was deleted (compaction's tombstone): neither its
//     snapshot nor its forgotten-group record is restored;
//   - a ForgottenGroup (or GroupSnapshot) whose epoch is below the highest claim read so far:
//     written by a coordinator that had already lost the partition (a zombie); skipped, so it
//     replaces nothing (a zombie snapshot never erases a forgotten-group record);
//   - otherwise a ForgottenGroup replaces the group's snapshot, and a GroupSnapshot replaces
//     the group's earlier snapshot or forgotten-group record: the latest wins;
//   - anything else (bytes that do not parse, a record whose group id is not its key, a claim
//     without an owner) is undecodable, and the caller dead-letters it.
// The epoch to claim is above every epoch read, claims and records alike: a log that lost its
// oldest records (the embedded broker keeps about 5 MiB per partition) may have lost the latest
// claim too, and workers fence an owner whose epoch is not above what they have seen.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "td/v1/state.pb.h"

namespace td::coordinator {

// Key of the partition-claim records in td.state (group ids are topic-safe, never '#').
inline constexpr std::string_view kOwnerKey = "#owner";

class ChangelogFold {
 public:
  enum class Outcome { kClaim, kDeleted, kForgotten, kSnapshot, kStale, kUndecodable };

  // Applies one record of the partition, in log order.
  Outcome add(std::string_view key, std::string_view value);

  // The highest epoch claimed so far.
  std::uint64_t claimedEpoch() const { return claimed_; }
  // The epoch the next claim takes: above every epoch read.
  std::uint64_t nextEpoch() const { return highest_ + 1; }
  // Records skipped as a zombie's (Outcome::kStale).
  std::uint64_t skipped() const { return skipped_; }

  struct Restore {
    std::vector<td::v1::GroupSnapshot> snapshots;   // by group id
    std::vector<td::v1::ForgottenGroup> forgotten;  // by group id
  };
  // What to restore; leaves the fold empty.
  Restore take();

 private:
  // `record` (of the group `key`, written at `epoch`) replaces the group's record in `into` and
  // its record in `other`, unless a newer claim makes it a zombie's.
  template <typename Into, typename Other, typename Record>
  Outcome keep(std::string_view key, std::uint64_t epoch, Into& into, Other& other,
               Record&& record, Outcome kept);

  std::map<std::string, td::v1::GroupSnapshot, std::less<>> latest_;
  std::map<std::string, td::v1::ForgottenGroup, std::less<>> forgotten_;
  std::uint64_t claimed_ = 0;
  std::uint64_t highest_ = 0;
  std::uint64_t skipped_ = 0;
};

}  // namespace td::coordinator
