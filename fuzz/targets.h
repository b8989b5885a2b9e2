// Fuzz entry points: each takes arbitrary bytes and must never crash, hang or abort (guarantee
// 4: any byte sequence on an input topic is rejected with a reason, never a crash). Two drivers
// call them: the libFuzzer binaries (clang builds only, fuzz/libfuzzer_main.cpp) and the
// fuzz_smoke CTest (every build, fuzz/smoke_main.cpp).
//
// Each returns 0, or non-zero when a cheap invariant the harness checks is broken (the libFuzzer
// driver then aborts so the input is saved). Crashes are caught by the drivers naturally.
//
// Input layouts (the header bytes let mutations steer the record at ids that exist):
//   fuzzRegistrationRecord: [flags][partition][pick][advance] record bytes...
//   fuzzCompletionRecord:   [flags][pick1][pick2][advance] record bytes...
//   fuzzSchema:             [options] YAML text...
//   fuzzStateRecord:        [advance] td.state record bytes... (a snapshot or forgotten-group
//                           record restored into a fresh Core, which then runs on)
// `record bytes` go through decodeRegistrationRecord / decodeCompletionRecord unchanged; the
// flags only overwrite fields of a record that decoded (see the k* constants below). `advance`
// moves time by advance * 50 ms before the Tick that follows every record.
//
// State: by default each input runs against a fresh Core populated with a few groups (running,
// completed, failed), so a crash reproduces from its input alone. With kUseLongLived the input
// goes to one Core that lives across inputs (reset every kLongLivedResetEvery inputs), which
// reaches states no single input can; such a crash may need the inputs before it to reproduce.
//
// Thread safety: none (the long-lived Core and the counters are process-wide).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace td::fuzz {

inline constexpr std::size_t kRecordHeaderBytes = 4;
inline constexpr std::size_t kLongLivedResetEvery = 2000;

// Flags shared by both record targets (byte 0).
inline constexpr std::uint8_t kUseLongLived = 0x01;
// Registration target flags.
inline constexpr std::uint8_t kRegFixKey = 0x02;        // recompute compatibility_key
inline constexpr std::uint8_t kRegKnownPeer = 0x04;     // peer_id := a known peer (by pick)
inline constexpr std::uint8_t kRegKnownSession = 0x08;  // and session_id := its session
inline constexpr std::uint8_t kRegKnownGroup = 0x10;    // heartbeat/left: group, member (pick)
// Completion target flags.
inline constexpr std::uint8_t kDoneKnownGroup = 0x02;    // group_id := a known group (pick1)
inline constexpr std::uint8_t kDoneKnownStep = 0x04;     // step_id := one of its steps (pick2)
inline constexpr std::uint8_t kDoneKnownPeer = 0x08;     // peer/session := the step's assignee
inline constexpr std::uint8_t kDoneKnownAttempt = 0x10;  // attempt := current + (pick2>>6)-1
// Schema target flags (byte 0).
inline constexpr std::uint8_t kSchemaTaskCommand = 0x01;  // also pass ParseOptions::task_command

int fuzzRegistrationRecord(const std::uint8_t* data, std::size_t size);
int fuzzCompletionRecord(const std::uint8_t* data, std::size_t size);
int fuzzSchema(const std::uint8_t* data, std::size_t size);
int fuzzStateRecord(const std::uint8_t* data, std::size_t size);

// Seeds for fuzzStateRecord: the populated World's groups as the Kafka shell snapshots them,
// and a forgotten-group record (with the one-byte header).
std::vector<std::string> stateSeeds();

// Silences the loggers the code under test may write to (protobuf parse complaints); call once.
void quietLogs();

// What the entry points reached, for the smoke driver to prove mutations get past decoding.
struct Counters {
  std::uint64_t inputs = 0;
  std::uint64_t decoded = 0;        // records that decoded into a core Input
  std::uint64_t applied = 0;        // decoded records whose effects included a group event
  std::uint64_t dead_letters = 0;
  std::uint64_t schemas_parsed = 0;
};
const Counters& countersForTest();

// The ids of the groups in the populated Core every record input starts from, in creation order
// (the order `pick` bytes index): running G1 and G2 (family A), G3 (family B), completed G4,
// failed G5.
std::vector<std::string> populatedGroupIdsForTest();

}  // namespace td::fuzz
