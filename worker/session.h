// What a worker does with each record on its group's assignment topic. Pure: no I/O.
//
// Guarantee 5 lives here: an assignment names a step id, and the worker runs only the `run`
// of that id in its OWN schema; an id it does not know is rejected, never executed.
#pragma once

#include <cstdint>
#include <set>
#include <string>
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
  int exit_code;              // 0 completed, 1 failed
  td::v1::AssignmentRecord record;
};
struct NothingToDo {};

using Action = std::variant<NothingToDo, RunStep, RejectStep, AbortRunning, GroupDone>;

class Session {
 public:
  Session(std::string peer_id, std::string session_id, std::string group_id,
          const schema::Schema& schema)
      : peer_id_(std::move(peer_id)),
        session_id_(std::move(session_id)),
        group_id_(std::move(group_id)),
        schema_(schema) {}

  // Records for other peers, other sessions, other groups, or repeats of an assignment already
  // acted on are NothingToDo.
  Action onRecord(const td::v1::AssignmentRecord& record);

  const std::string& peerId() const { return peer_id_; }
  const std::string& sessionId() const { return session_id_; }
  const std::string& groupId() const { return group_id_; }

 private:
  bool isMine(const std::string& group, const std::string& peer,
              const std::string& session) const;

  std::string peer_id_;
  std::string session_id_;
  std::string group_id_;
  const schema::Schema& schema_;
  std::set<std::pair<std::string, std::uint32_t>> seen_;   // (step, attempt) already acted on
};

}  // namespace td::worker
