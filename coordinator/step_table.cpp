#include "coordinator/step_table.h"

#include <algorithm>

#include "common/check.h"

namespace td::coordinator {

StepTable::StepTable(std::vector<td::v1::StepSpec> specs)
    : specs_(std::move(specs)), dependents_(specs_.size()) {
  for (std::size_t i = 0; i < specs_.size(); ++i) index_.emplace(specs_[i].id(), i);
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    for (const auto& dep : specs_[i].depends_on()) {
      auto it = index_.find(dep);
      TD_CHECK(it != index_.end());
      dependents_[it->second].push_back(i);
    }
  }
}

std::optional<std::size_t> StepTable::find(const std::string& id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::shared_ptr<const StepTable> StepTables::intern(std::vector<td::v1::StepSpec> specs) {
  // The key: every spec's bytes, each behind its length. Two equal step lists serialize alike
  // in one binary; if they did not, the cost would be a second table, nothing worse.
  std::string key;
  for (const auto& spec : specs) {
    const std::string bytes = spec.SerializeAsString();
    key += std::to_string(bytes.size());
    key += ':';
    key += bytes;
  }
  auto& slot = tables_[key];
  if (auto table = slot.lock()) return table;
  auto table = std::make_shared<const StepTable>(std::move(specs));
  slot = table;
  if (tables_.size() >= sweep_at_) {
    std::erase_if(tables_, [](const auto& entry) { return entry.second.expired(); });
    sweep_at_ = std::max<std::size_t>(64, 2 * tables_.size());
  }
  return table;
}

std::size_t StepTables::liveCount() const {
  std::size_t live = 0;
  for (const auto& [key, table] : tables_) live += table.expired() ? 0 : 1;
  return live;
}

}  // namespace td::coordinator
