// td-audit's --since and --until values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace td::audit {

// Unix milliseconds from "1700000000000", or from ISO-8601 in UTC: "2026-11-23T15:00:00",
// with optional fraction ".123" (milliseconds; more digits are cut) and "Z", a space instead
// of the "T", or a date alone ("2026-11-23", midnight). nullopt for anything else.
std::optional<std::int64_t> parseTimeArg(const std::string& text);

}  // namespace td::audit
