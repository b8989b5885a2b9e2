#include "ctl/group_table.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "common/json.h"
#include "protocol/protocol.h"

namespace td::ctl {

void GroupTable::add(std::string_view key, std::string_view value, std::int32_t partition,
                     std::int64_t offset) {
  if (key.empty() || key.front() == '#') return;   // "#owner": a partition claim
  const std::string id(key);
  if (value.empty()) {   // null: the forgotten group's record was deleted
    latest_.erase(id);
    return;
  }
  td::v1::StateRecord record;
  if (!record.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
      record.protocol_version() != td::v1::PROTOCOL_VERSION_1) {
    problems_.push_back(fmt::format("td.state[{}]@{}: key '{}': not a td.state record", partition,
                                    offset, id));
    return;
  }
  std::uint64_t epoch = 0;
  bool forgotten = false;
  if (record.has_group()) {
    epoch = record.group().coordinator_epoch();
  } else if (record.has_forgotten()) {
    epoch = record.forgotten().coordinator_epoch();
    forgotten = true;
  } else {
    return;   // a kind this td-ctl does not know, or an owner record under another key
  }
  auto it = latest_.find(id);
  if (it != latest_.end() && epoch < it->second.epoch) return;   // a zombie's record
  Latest& latest = latest_[id];
  latest.epoch = epoch;
  latest.forgotten = forgotten;
  if (forgotten) {
    latest.snapshot.Clear();
  } else {
    latest.snapshot = std::move(*record.mutable_group());
  }
}

const td::v1::GroupSnapshot* GroupTable::find(const std::string& group_id) const {
  auto it = latest_.find(group_id);
  if (it == latest_.end() || it->second.forgotten) return nullptr;
  return &it->second.snapshot;
}

std::vector<const td::v1::GroupSnapshot*> GroupTable::groups() const {
  std::vector<const td::v1::GroupSnapshot*> out;
  for (const auto& [id, latest] : latest_) {
    if (!latest.forgotten) out.push_back(&latest.snapshot);
  }
  return out;
}

GroupRow rowOf(const td::v1::GroupSnapshot& s, std::int64_t now_ms) {
  GroupRow row;
  row.group_id = s.group_id();
  row.state = std::string(protocol::statusName(s.status()));
  row.schema = s.schema_name();
  for (const auto& m : s.members()) {
    if (m.present()) row.members.push_back(m.peer_id());
  }
  for (const auto& step : s.steps()) {
    ++row.steps;
    switch (step.state()) {
      case td::v1::STEP_STATE_SUCCEEDED: ++row.done; break;
      case td::v1::STEP_STATE_RUNNING: ++row.running; break;
      case td::v1::STEP_STATE_QUEUED:
      case td::v1::STEP_STATE_WAITING: ++row.queued; break;
      default: ++row.failed; break;
    }
  }
  row.created_at_ms = s.created_at_ms();
  row.age_ms = std::max<std::int64_t>(0, now_ms - s.created_at_ms());
  row.owner = s.coordinator_id();
  row.epoch = s.coordinator_epoch();
  row.partition = s.partition();
  return row;
}

bool stateMatches(std::string_view filter, std::string_view state) {
  if (filter == "all") return true;
  if (filter == "open") return state == "running";
  return filter == state;
}

std::string formatAge(std::int64_t ms) {
  const std::int64_t s = ms / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

namespace {
std::string joined(const std::vector<std::string>& items) {
  if (items.empty()) return "-";
  return fmt::format("{}", fmt::join(items, ","));
}
}  // namespace

std::string formatTable(const std::vector<GroupRow>& rows, std::string_view filter) {
  if (rows.empty()) {
    return filter == "all" ? "no groups\n" : fmt::format("no {} groups\n", filter);
  }
  std::size_t id_w = 5, schema_w = 6, members_w = 7;
  for (const auto& r : rows) {
    id_w = std::max(id_w, r.group_id.size());
    schema_w = std::max(schema_w, r.schema.size());
    members_w = std::max(members_w, joined(r.members).size());
  }
  std::string out = fmt::format("{:<{}}  {:<9}  {:<{}}  {:<{}}  {:>4}  {:>7}  {:>6}  {:>6}  "
                                "{:>6}  {}\n",
                                "GROUP", id_w, "STATE", "SCHEMA", schema_w, "MEMBERS", members_w,
                                "DONE", "RUNNING", "QUEUED", "FAILED", "AGE", "OWNER");
  for (const auto& r : rows) {
    out += fmt::format("{:<{}}  {:<9}  {:<{}}  {:<{}}  {:>4}  {:>7}  {:>6}  {:>6}  {:>6}  {}/{}\n",
                       r.group_id, id_w, r.state, r.schema, schema_w, joined(r.members),
                       members_w, r.done, r.running, r.queued, r.failed, formatAge(r.age_ms),
                       r.owner, r.epoch);
  }
  return out;
}

std::string formatJson(const std::vector<GroupRow>& rows) {
  std::string out = "[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    std::string members;
    for (std::size_t m = 0; m < r.members.size(); ++m) {
      members += (m == 0 ? "" : ",") + jsonQuoted(r.members[m]);
    }
    out += fmt::format(
        R"({}{{"group":{},"state":{},"schema":{},"members":[{}],"steps":{{"total":{},"done":{},)"
        R"("running":{},"queued":{},"failed":{}}},"created_at_ms":{},"age_ms":{},"owner":{},)"
        R"("epoch":{},"partition":{}}})",
        i == 0 ? "" : ",", jsonQuoted(r.group_id), jsonQuoted(r.state), jsonQuoted(r.schema),
        members, r.steps, r.done, r.running, r.queued, r.failed, r.created_at_ms, r.age_ms,
        jsonQuoted(r.owner), r.epoch, r.partition);
  }
  out += "]\n";
  return out;
}

}  // namespace td::ctl
