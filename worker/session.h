// What a worker does with each record on its group's assignment topic. Pure: no I/O.
//
// Guarantee 5 lives here: an assignment names a step id, and the worker runs only the `run`
// of that id in its OWN schema; an id it does not know is rejected, never executed.
//
// Fencing of zombie coordinators (docs/protocol.md, "Coordinator fail-over"). Every record
// carries the `coordinator_epoch` of the coordinator that wrote it; a coordinator that takes the
// group over writes OwnerChanged with its higher epoch before anything of its own. The session
// keeps the *owner epoch*: the highest epoch it has read on the topic so far for its group.
//   - OwnerChanged of its group raises the owner epoch to its epoch (never lowers it);
//   - any record of its group with a higher epoch raises it too (whoever it is addressed to);
//   - StepAssigned, AbortStep, SessionEnded, GroupCompleted, GroupFailed with a non-zero epoch
//     below the owner epoch come from a coordinator that no longer owns the group: IgnoredStale
//     when the record is addressed to this session (or is a group result), NothingToDo
//     otherwise; PeerSilent of a stale epoch is NothingToDo (it is only informative);
//   - epoch 0 (unset: a coordinator from before fail-over existed) is never fenced;
//   - a repeat of an assignment already acted on is NothingToDo whatever its epoch, so a new
//     owner re-publishing its predecessor's assignment never runs a step twice; a fenced
//     assignment is not "acted on": the real owner may still hand out the same attempt.
// The owner epoch starts at 0, not at GroupJoined's coordinator_epoch, on purpose: the topic
// is read from its start, and records of an earlier epoch that come before the new owner's
// OwnerChanged are the group's real history (the GroupCompleted a late joiner waits for, or
// the predecessor's last assignments, which a new owner re-publishes before its OwnerChanged).
// Fencing them by the joined epoch would leave such a worker waiting forever.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <variant>

#include "schema/schema.h"
#include "td/v1/assignments.pb.h"

namespace td::worker {

struct RunStep {
  const schema::Step* step;   // points into the worker's own schema
  std::uint32_t attempt;
};
struct RejectStep {           // assigned an id that is not in our schema
  std::string step_id;
  std::uint32_t attempt;
  std::string reason;
};
struct AbortRunning {
  std::string step_id;
  std::uint32_t attempt;
  std::string reason;
};
struct GroupDone {
  int exit_code;              // 0 completed, 1 failed, 5 cancelled
  td::v1::AssignmentRecord record;
};
// A record for this session (or a group result) written by a coordinator that no longer owns
// the group: it changes nothing. The shell logs it once.
struct IgnoredStale {
  std::uint64_t record_epoch;
  std::uint64_t owner_epoch;
  std::string what;           // e.g. "step_assigned step=a attempt=2", for the log
};
// The coordinator ended this session (docs/protocol.md, "Sessions that end"): its steps were
// handed to others. The shell kills what it runs, drops what it was to run, and then stops
// (kReplaced: another process is this peer now) or registers again with a new session (kLost).
// From here on every record is NothingToDo: the session is over.
struct EndSession {
  enum class Cause { kReplaced, kLost };
  Cause cause;
  std::string reason;
  std::string replaced_by;    // kReplaced: the new session id
};
// Another member of the group, running `step_id`, has been silent for `silent_for_ms`: it is
// declared lost after `lease_ms` and its step handed to another peer. Once per silent spell
// (a re-published copy is NothingToDo). `about_me`: the silent member is this session (its
// heartbeats are not getting through); a notice about an earlier session of this peer is
// NothingToDo. `heard_at_ms` (coordinator wall clock) lets the shell skip notices of spells
// long over (a late joiner reads the topic's history).
struct WarnSilentPeer {
  std::string peer_id;
  std::string step_id;
  std::uint32_t attempt;
  std::uint64_t silent_for_ms;
  std::uint64_t lease_ms;
  std::int64_t heard_at_ms;
  bool about_me;
};
struct NothingToDo {};

using Action = std::variant<NothingToDo, RunStep, RejectStep, AbortRunning, GroupDone,
                            IgnoredStale, EndSession, WarnSilentPeer>;

// One worker session's view of td.assign.<group>. Not thread-safe; keeps a reference to
// `schema`, which must outlive it.
class Session {
 public:
  Session(std::string peer_id, std::string session_id, std::string group_id,
          const schema::Schema& schema)
      : peer_id_(std::move(peer_id)),
        session_id_(std::move(session_id)),
        group_id_(std::move(group_id)),
        schema_(schema) {}

  // Applies one record, in topic order. Records for other peers, other sessions, other groups,
  // OwnerChanged, or repeats of an assignment already acted on are NothingToDo; records fenced
  // by the rules above are IgnoredStale.
  Action onRecord(const td::v1::AssignmentRecord& record);

  const std::string& peerId() const { return peer_id_; }
  const std::string& sessionId() const { return session_id_; }
  const std::string& groupId() const { return group_id_; }
  // The highest coordinator epoch read for the group so far (0: none yet).
  std::uint64_t ownerEpoch() const { return owner_epoch_; }
  // True once a SessionEnded for this session was acted on.
  bool ended() const { return ended_; }

 private:
  bool isMine(const std::string& group, const std::string& peer,
              const std::string& session) const;
  // Raises the owner epoch to `epoch`; true when `epoch` is stale (non-zero and below it).
  bool fenced(std::uint64_t epoch);

  std::string peer_id_;
  std::string session_id_;
  std::string group_id_;
  const schema::Schema& schema_;
  std::uint64_t owner_epoch_ = 0;
  std::set<std::pair<std::string, std::uint32_t>> seen_;   // (step, attempt) already acted on
  bool ended_ = false;
  // PeerSilent spells already reported: (peer, session, heard_at_ms).
  std::set<std::tuple<std::string, std::string, std::int64_t>> silent_seen_;
};

}  // namespace td::worker
