#include "worker/session.h"

#include <fmt/format.h>

#include "worker/worker_options.h"

namespace td::worker {

bool Session::isMine(const std::string& group, const std::string& peer,
                     const std::string& session) const {
  return group == group_id_ && peer == peer_id_ && session == session_id_;
}

bool Session::fenced(std::uint64_t epoch) {
  if (epoch > owner_epoch_) owner_epoch_ = epoch;
  return epoch != 0 && epoch < owner_epoch_;
}

Action Session::onRecord(const td::v1::AssignmentRecord& record) {
  if (ended_) {
    // The session is over; only the owner epoch is still followed.
    if (record.has_owner() && record.owner().group_id() == group_id_) {
      (void)fenced(record.owner().coordinator_epoch());
    }
    return NothingToDo{};
  }
  switch (record.body_case()) {
    case td::v1::AssignmentRecord::kAssigned: {
      const auto& a = record.assigned();
      if (a.group_id() != group_id_) return NothingToDo{};
      // Raise before looking at the addressee: a newer owner's record for any peer proves it.
      const bool stale = fenced(a.coordinator_epoch());
      if (!isMine(a.group_id(), a.peer_id(), a.session_id())) return NothingToDo{};
      // The repeat check comes first so that a re-published assignment is quietly a duplicate.
      if (seen_.contains({a.step_id(), a.attempt()})) return NothingToDo{};
      if (stale) {
        return IgnoredStale{a.coordinator_epoch(), owner_epoch_,
                            fmt::format("step_assigned step={} attempt={}", a.step_id(),
                                        a.attempt())};
      }
      seen_.emplace(a.step_id(), a.attempt());
      const schema::Step* step = schema_.find(a.step_id());
      if (step == nullptr) {
        return RejectStep{a.step_id(), a.attempt(),
                          "step id '" + a.step_id() + "' is not in this worker's schema"};
      }
      return RunStep{step, a.attempt()};
    }
    case td::v1::AssignmentRecord::kAbort: {
      const auto& a = record.abort();
      if (a.group_id() != group_id_) return NothingToDo{};
      const bool stale = fenced(a.coordinator_epoch());
      if (!isMine(a.group_id(), a.peer_id(), a.session_id())) return NothingToDo{};
      if (stale) {
        return IgnoredStale{a.coordinator_epoch(), owner_epoch_,
                            fmt::format("step_aborted step={} attempt={}", a.step_id(),
                                        a.attempt())};
      }
      return AbortRunning{a.step_id(), a.attempt(), a.reason()};
    }
    case td::v1::AssignmentRecord::kCompleted: {
      const auto& c = record.completed();
      if (c.group_id() != group_id_) return NothingToDo{};
      if (fenced(c.coordinator_epoch())) {
        return IgnoredStale{c.coordinator_epoch(), owner_epoch_, "group_completed"};
      }
      return GroupDone{0, record};
    }
    case td::v1::AssignmentRecord::kFailed: {
      const auto& f = record.failed();
      if (f.group_id() != group_id_) return NothingToDo{};
      if (fenced(f.coordinator_epoch())) {
        return IgnoredStale{f.coordinator_epoch(), owner_epoch_, "group_failed"};
      }
      return GroupDone{1, record};
    }
    case td::v1::AssignmentRecord::kCancelled: {
      const auto& c = record.cancelled();
      if (c.group_id() != group_id_) return NothingToDo{};
      if (fenced(c.coordinator_epoch())) {
        return IgnoredStale{c.coordinator_epoch(), owner_epoch_, "group_cancelled"};
      }
      return GroupDone{kExitCancelled, record};
    }
    case td::v1::AssignmentRecord::kSessionEnded: {
      const auto& e = record.session_ended();
      if (e.group_id() != group_id_) return NothingToDo{};
      const bool stale = fenced(e.coordinator_epoch());
      if (!isMine(e.group_id(), e.peer_id(), e.session_id())) return NothingToDo{};
      if (stale) {
        return IgnoredStale{e.coordinator_epoch(), owner_epoch_,
                            fmt::format("session_ended cause={}",
                                        td::v1::SessionEnded::Cause_Name(e.cause()))};
      }
      if (e.cause() != td::v1::SessionEnded::CAUSE_REPLACED &&
          e.cause() != td::v1::SessionEnded::CAUSE_LOST) {
        return NothingToDo{};   // a cause this worker does not know: it cannot act safely
      }
      ended_ = true;
      const auto cause = e.cause() == td::v1::SessionEnded::CAUSE_REPLACED
                             ? EndSession::Cause::kReplaced
                             : EndSession::Cause::kLost;
      return EndSession{cause, e.reason(), e.replaced_by_session_id()};
    }
    case td::v1::AssignmentRecord::kPeerSilent: {
      const auto& p = record.peer_silent();
      if (p.group_id() != group_id_) return NothingToDo{};
      if (fenced(p.coordinator_epoch())) return NothingToDo{};
      // An earlier session of this very peer (before it was declared lost): history.
      if (p.peer_id() == peer_id_ && p.session_id() != session_id_) return NothingToDo{};
      if (!silent_seen_.emplace(p.peer_id(), p.session_id(), p.heard_at_ms()).second) {
        return NothingToDo{};
      }
      return WarnSilentPeer{p.peer_id(),      p.step_id(),     p.attempt(),
                            p.silent_for_ms(), p.lease_ms(),    p.heard_at_ms(),
                            p.peer_id() == peer_id_};
    }
    case td::v1::AssignmentRecord::kOwner:
      if (record.owner().group_id() == group_id_) (void)fenced(record.owner().coordinator_epoch());
      return NothingToDo{};
    case td::v1::AssignmentRecord::BODY_NOT_SET:
      break;
  }
  return NothingToDo{};
}

}  // namespace td::worker
