// Semantic validation of decoded input. A record that fails here is dead-lettered with the
// returned reason; it never reaches a group. Pure functions.
#pragma once

#include <string>
#include <string_view>

#include "td/v1/completions.pb.h"
#include "td/v1/registrations.pb.h"

namespace td::coordinator {

// An id field (peer, session, schema, step...): non-empty, at most protocol::kMaxIdBytes, no
// control or space characters. Empty when valid, else "field: what is wrong".
std::string checkId(std::string_view field, const std::string& value);

// Empty string when valid, otherwise the first problem found ("field: what is wrong").
std::string validateRegistration(const td::v1::PeerRegistered& peer);
std::string validateHeartbeat(const td::v1::PeerHeartbeat& msg);
std::string validateLeft(const td::v1::PeerLeft& msg);
std::string validateStarted(const td::v1::StepStarted& msg);
std::string validateFinished(const td::v1::StepFinished& msg);
std::string validateUniverseStarted(const td::v1::UniverseStarted& msg);
std::string validateUniverseFinished(const td::v1::UniverseFinished& msg);
// An operator's cancel request: group_id, requested_by and request_id are ids; reason is
// valid UTF-8 of at most 4 KiB.
std::string validateCancel(const td::v1::CancelGroup& msg);

}  // namespace td::coordinator
