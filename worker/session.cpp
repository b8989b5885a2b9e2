#include "worker/session.h"

namespace td::worker {

bool Session::isMine(const std::string& group, const std::string& peer,
                     const std::string& session) const {
  return group == group_id_ && peer == peer_id_ && session == session_id_;
}

Action Session::onRecord(const td::v1::AssignmentRecord& record) {
  switch (record.body_case()) {
    case td::v1::AssignmentRecord::kAssigned: {
      const auto& a = record.assigned();
      if (!isMine(a.group_id(), a.peer_id(), a.session_id())) return NothingToDo{};
      if (!seen_.emplace(a.step_id(), a.attempt()).second) return NothingToDo{};
      const schema::Step* step = schema_.find(a.step_id());
      if (step == nullptr) {
        return RejectStep{a.step_id(), a.attempt(),
                          "step id '" + a.step_id() + "' is not in this worker's schema"};
      }
      return RunStep{step, a.attempt()};
    }
    case td::v1::AssignmentRecord::kAbort: {
      const auto& a = record.abort();
      if (!isMine(a.group_id(), a.peer_id(), a.session_id())) return NothingToDo{};
      return AbortRunning{a.step_id(), a.attempt(), a.reason()};
    }
    case td::v1::AssignmentRecord::kCompleted:
      if (record.completed().group_id() != group_id_) return NothingToDo{};
      return GroupDone{0, record};
    case td::v1::AssignmentRecord::kFailed:
      if (record.failed().group_id() != group_id_) return NothingToDo{};
      return GroupDone{1, record};
    case td::v1::AssignmentRecord::BODY_NOT_SET:
      break;
  }
  return NothingToDo{};
}

}  // namespace td::worker
