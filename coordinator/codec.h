// Decoding of input records into core Inputs. Pure: bytes in, Input or a reason out.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/result.h"
#include "coordinator/core_types.h"

namespace td::coordinator {

enum class Errc { kTooLarge = 1, kMalformed, kUnsupportedVersion, kEmptyRecord };
const std::error_category& codecCategory();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), codecCategory()}; }

// A record from td.registrations (`partition` is where it arrived) or td.completions.
td::Result<Input> decodeRegistrationRecord(std::string_view bytes, std::int32_t partition);
td::Result<Input> decodeCompletionRecord(std::string_view bytes);

}  // namespace td::coordinator

template <>
struct std::is_error_code_enum<td::coordinator::Errc> : std::true_type {};
