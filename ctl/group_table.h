// td-ctl's view of the cluster's groups, folded from td.state (the coordinators' compacted
// group changelog, messages/td/v1/state.proto). Pure: records in, rows and text out.
//
// Per group id (the record key) the latest record wins, where "latest" is the highest
// coordinator epoch and, within an epoch, the later offset: a zombie coordinator's snapshot
// written after a new owner's claim (lower epoch) never hides the new owner's state, as on a
// coordinator's restore. A ForgottenGroup record hides the group (it finished and its
// retention passed), as does a null value (deleted). "#owner" records are skipped.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "td/v1/state.pb.h"

namespace td::ctl {

class GroupTable {
 public:
  // Applies one td.state record, in the order of its partition. An undecodable value is
  // skipped and counted in problems().
  void add(std::string_view key, std::string_view value, std::int32_t partition,
           std::int64_t offset);
  // The latest snapshot of a group that is not forgotten or deleted; null otherwise.
  const td::v1::GroupSnapshot* find(const std::string& group_id) const;
  // Every such group, by id.
  std::vector<const td::v1::GroupSnapshot*> groups() const;
  // "td.state[p]@offset: what is wrong", one per skipped record.
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  struct Latest {
    std::uint64_t epoch = 0;
    bool forgotten = false;
    td::v1::GroupSnapshot snapshot;
  };
  std::map<std::string, Latest> latest_;
  std::vector<std::string> problems_;
};

// One line of `td-ctl groups`.
struct GroupRow {
  std::string group_id;
  std::string state;                  // running, completed, failed, cancelled
  std::string schema;
  std::vector<std::string> members;   // present members' peer ids, in join order
  std::size_t done = 0;               // steps succeeded
  std::size_t running = 0;
  std::size_t queued = 0;             // queued or waiting for their dependencies
  std::size_t failed = 0;             // failed, or not run because the group ended
  std::size_t steps = 0;
  std::int64_t created_at_ms = 0;     // wall clock
  std::int64_t age_ms = 0;            // now - created_at_ms
  std::string owner;                  // the coordinator id that wrote the snapshot
  std::uint64_t epoch = 0;            // and its epoch
  std::int32_t partition = 0;
};
GroupRow rowOf(const td::v1::GroupSnapshot& snapshot, std::int64_t now_ms);

// --state: open (running), completed, failed, cancelled, all.
inline constexpr std::string_view kStateFilters[] = {"open", "completed", "failed", "cancelled",
                                                     "all"};
bool stateMatches(std::string_view filter, std::string_view state);

// The table for people: one line per group, a header, and "no ... groups" when empty.
std::string formatTable(const std::vector<GroupRow>& rows, std::string_view filter);
// A JSON array, one object per group (docs/operations.md, "td-ctl groups --json").
std::string formatJson(const std::vector<GroupRow>& rows);
// "45s", "12m03s", "3h05m", "2d04h".
std::string formatAge(std::int64_t ms);

}  // namespace td::ctl
