#include "coordinator/changelog_fold.h"

#include <algorithm>
#include <utility>

namespace td::coordinator {

template <typename Into, typename Other, typename Record>
ChangelogFold::Outcome ChangelogFold::keep(std::string_view key, std::uint64_t epoch, Into& into,
                                           Other& other, Record&& record, Outcome kept) {
  highest_ = std::max(highest_, epoch);
  if (epoch < claimed_) {   // written by a coordinator that had lost the partition (a zombie)
    ++skipped_;
    return Outcome::kStale;
  }
  if (auto it = other.find(key); it != other.end()) other.erase(it);
  into.insert_or_assign(std::string(key), std::forward<Record>(record));
  return kept;
}

ChangelogFold::Outcome ChangelogFold::add(std::string_view key, std::string_view value) {
  td::v1::StateRecord record;
  const bool parsed = record.ParseFromArray(value.data(), static_cast<int>(value.size()));
  if (key == kOwnerKey) {
    if (!parsed || !record.has_owner()) return Outcome::kUndecodable;
    claimed_ = std::max(claimed_, record.owner().epoch());
    highest_ = std::max(highest_, claimed_);
    return Outcome::kClaim;
  }
  if (value.empty()) {
    if (auto it = latest_.find(key); it != latest_.end()) latest_.erase(it);
    if (auto it = forgotten_.find(key); it != forgotten_.end()) forgotten_.erase(it);
    return Outcome::kDeleted;
  }
  if (!parsed) return Outcome::kUndecodable;
  if (record.has_forgotten() && record.forgotten().group_id() == key) {
    return keep(key, record.forgotten().coordinator_epoch(), forgotten_, latest_,
                std::move(*record.mutable_forgotten()), Outcome::kForgotten);
  }
  if (record.has_group() && record.group().group_id() == key) {
    return keep(key, record.group().coordinator_epoch(), latest_, forgotten_,
                std::move(*record.mutable_group()), Outcome::kSnapshot);
  }
  return Outcome::kUndecodable;
}

ChangelogFold::Restore ChangelogFold::take() {
  Restore out;
  out.snapshots.reserve(latest_.size());
  for (auto& [id, snapshot] : latest_) out.snapshots.push_back(std::move(snapshot));
  out.forgotten.reserve(forgotten_.size());
  for (auto& [id, record] : forgotten_) out.forgotten.push_back(std::move(record));
  latest_.clear();
  forgotten_.clear();
  return out;
}

}  // namespace td::coordinator
