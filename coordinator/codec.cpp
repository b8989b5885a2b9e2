#include "coordinator/codec.h"

#include <fmt/format.h>

namespace td::coordinator {

namespace {

class CodecCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "codec"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kTooLarge: return "record too large";
      case Errc::kMalformed: return "malformed record";
      case Errc::kUnsupportedVersion: return "unsupported protocol version";
      case Errc::kEmptyRecord: return "empty record";
    }
    return "unknown codec error";
  }
};

// Parses `bytes` into `record` and checks size and version; the caller checks the body.
template <typename Record>
td::Status parseEnvelope(std::string_view bytes, Record& record, std::string_view what) {
  // A null or empty value parses as a record with every field unset: say what it is rather
  // than "protocol_version 0".
  if (bytes.empty()) {
    return makeError(Errc::kEmptyRecord, fmt::format("{}: empty record (a null or 0-byte value)",
                                                     what));
  }
  if (bytes.size() > protocol::kMaxRecordBytes) {
    return makeError(Errc::kTooLarge, fmt::format("{}: {} bytes, at most {}", what, bytes.size(),
                                                  protocol::kMaxRecordBytes));
  }
  if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return makeError(Errc::kMalformed,
                     fmt::format("{}: {} bytes that are not a valid protobuf record", what,
                                 bytes.size()));
  }
  if (record.protocol_version() != protocol::kVersion) {
    return makeError(Errc::kUnsupportedVersion,
                     fmt::format("{}: protocol_version {}, this coordinator speaks {}", what,
                                 static_cast<int>(record.protocol_version()), protocol::kVersion));
  }
  return {};
}

}  // namespace

const std::error_category& codecCategory() {
  static const CodecCategory category;
  return category;
}

td::Result<Input> decodeRegistrationRecord(std::string_view bytes, std::int32_t partition) {
  td::v1::RegistrationRecord record;
  TD_RETURN_IF_ERROR(parseEnvelope(bytes, record, "registration record"));
  switch (record.body_case()) {
    case td::v1::RegistrationRecord::kRegistered:
      return Input{Registration{partition, std::move(*record.mutable_registered())}};
    case td::v1::RegistrationRecord::kHeartbeat:
      return Input{std::move(*record.mutable_heartbeat())};
    case td::v1::RegistrationRecord::kLeft:
      return Input{std::move(*record.mutable_left())};
    case td::v1::RegistrationRecord::BODY_NOT_SET:
      break;
  }
  return makeError(Errc::kEmptyRecord, "registration record: no body (unknown message kind?)");
}

td::Result<Input> decodeCompletionRecord(std::string_view bytes) {
  td::v1::CompletionRecord record;
  TD_RETURN_IF_ERROR(parseEnvelope(bytes, record, "completion record"));
  switch (record.body_case()) {
    case td::v1::CompletionRecord::kStarted:
      return Input{std::move(*record.mutable_started())};
    case td::v1::CompletionRecord::kFinished:
      return Input{std::move(*record.mutable_finished())};
    case td::v1::CompletionRecord::kUniverseStarted:
      return Input{std::move(*record.mutable_universe_started())};
    case td::v1::CompletionRecord::kUniverseFinished:
      return Input{std::move(*record.mutable_universe_finished())};
    case td::v1::CompletionRecord::kCancel:
      return Input{std::move(*record.mutable_cancel())};
    case td::v1::CompletionRecord::BODY_NOT_SET:
      break;
  }
  return makeError(Errc::kEmptyRecord, "completion record: no body (unknown message kind?)");
}

}  // namespace td::coordinator
