// The steps of one schema as groups use them: the specs (retry policies resolved), an index by
// id and each step's dependents. Immutable once built, and shared by every group whose steps
// are the same (StepTables interns them), so a group holds only its steps' state: the schema
// costs memory once, not once per group.
//
// Thread safety: a StepTable is immutable; StepTables has none (owned by the Core).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "td/v1/common.pb.h"

namespace td::coordinator {

class StepTable {
 public:
  // `specs` must be valid (unique ids, every depends_on names a step): registrations and
  // snapshots are validated before they reach a group.
  explicit StepTable(std::vector<td::v1::StepSpec> specs);

  std::size_t size() const { return specs_.size(); }
  const td::v1::StepSpec& spec(std::size_t index) const { return specs_[index]; }
  // The position of step `id`, if the schema has it.
  std::optional<std::size_t> find(const std::string& id) const;
  // The steps that depend on step `index`, in schema order.
  const std::vector<std::size_t>& dependents(std::size_t index) const {
    return dependents_[index];
  }

 private:
  std::vector<td::v1::StepSpec> specs_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::vector<std::size_t>> dependents_;
};

// Interns StepTables by content: groups with the same steps share one table. A table lives as
// long as a group holds it; forgotten tables' entries are swept as the map grows.
class StepTables {
 public:
  // The table of `specs` (taken as they are: resolve retry policies first).
  std::shared_ptr<const StepTable> intern(std::vector<td::v1::StepSpec> specs);
  // Tables some group still holds.
  std::size_t liveCount() const;

 private:
  std::unordered_map<std::string, std::weak_ptr<const StepTable>> tables_;   // by content
  std::size_t sweep_at_ = 64;   // map size at which expired entries are dropped
};

}  // namespace td::coordinator
