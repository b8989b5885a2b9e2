#include "kafka/types.h"

#include "common/redact.h"

namespace td::kafka {

td::Result<Properties> parseProperties(const std::vector<std::string>& key_values) {
  Properties out;
  out.reserve(key_values.size());
  for (const auto& entry : key_values) {
    auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return makeError(td::Errc::kInvalidArgument,
                       "librdkafka property '" + redactKeyValue(entry) + "': expected key=value");
    }
    out.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return out;
}

}  // namespace td::kafka
