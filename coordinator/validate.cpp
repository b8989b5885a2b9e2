#include "coordinator/validate.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coordinator/core_types.h"
#include "protocol/protocol.h"

namespace td::coordinator {

std::string checkId(std::string_view field, const std::string& value) {
  if (value.empty()) return fmt::format("{}: empty", field);
  if (value.size() > protocol::kMaxIdBytes) {
    return fmt::format("{}: {} bytes, at most {}", field, value.size(), protocol::kMaxIdBytes);
  }
  for (unsigned char c : value) {
    if (c < 0x21 || c == 0x7f) return fmt::format("{}: contains a control or space character", field);
  }
  return {};
}

namespace {


std::string checkRef(std::string_view field, const std::string& value) {
  if (value.empty()) return fmt::format("{}: empty", field);
  if (value.size() > protocol::kMaxRefBytes) {
    return fmt::format("{}: {} bytes, at most {}", field, value.size(), protocol::kMaxRefBytes);
  }
  return {};
}

// Kahn's algorithm over depends_on; the ids are already known to be unique and to exist.
bool hasCycle(const td::v1::PeerRegistered& peer) {
  std::unordered_map<std::string, std::size_t> index;
  for (int i = 0; i < peer.steps_size(); ++i) index.emplace(peer.steps(i).id(), i);
  std::vector<std::size_t> unmet(peer.steps_size(), 0);
  std::vector<std::vector<std::size_t>> dependents(peer.steps_size());
  for (int i = 0; i < peer.steps_size(); ++i) {
    for (const auto& dep : peer.steps(i).depends_on()) {
      dependents[index.at(dep)].push_back(i);
      ++unmet[i];
    }
  }
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < unmet.size(); ++i) {
    if (unmet[i] == 0) ready.push_back(i);
  }
  std::size_t done = 0;
  while (!ready.empty()) {
    std::size_t i = ready.back();
    ready.pop_back();
    ++done;
    for (std::size_t d : dependents[i]) {
      if (--unmet[d] == 0) ready.push_back(d);
    }
  }
  return done != unmet.size();
}

constexpr std::uint64_t kMaxBackoffMs = 7ULL * 24 * 3600 * 1000;

#define TD_TRY_CHECK(expr)               \
  do {                                   \
    std::string td_problem_ = (expr);    \
    if (!td_problem_.empty()) return td_problem_; \
  } while (0)

std::string checkRetry(int i, const td::v1::RetryPolicy& r) {
  if (r.backoff_initial_ms() > kMaxBackoffMs || r.backoff_max_ms() > kMaxBackoffMs) {
    return fmt::format("steps[{}].retry: backoff longer than 7 days", i);
  }
  if (r.backoff_max_ms() < r.backoff_initial_ms()) {
    return fmt::format("steps[{}].retry: backoff_max_ms below backoff_initial_ms", i);
  }
  if (!(r.backoff_multiplier() >= 1.0 && r.backoff_multiplier() <= 100.0)) {
    return fmt::format("steps[{}].retry: backoff_multiplier {} not in [1, 100]", i,
                       r.backoff_multiplier());
  }
  if (!(r.backoff_jitter() >= 0.0 && r.backoff_jitter() <= 1.0)) {
    return fmt::format("steps[{}].retry: backoff_jitter {} not in [0, 1]", i, r.backoff_jitter());
  }
  if (r.max_lost_attempts() < 1 || r.max_lost_attempts() > protocol::kMaxAttemptLimit) {
    return fmt::format("steps[{}].retry: max_lost_attempts {} not in 1..{}", i,
                       r.max_lost_attempts(), protocol::kMaxAttemptLimit);
  }
  if (r.retry_on_exit_codes_size() > 255) return fmt::format("steps[{}].retry: too many exit codes", i);
  for (int code : r.retry_on_exit_codes()) {
    if (code < 1 || code > 255) {
      return fmt::format("steps[{}].retry: exit code {} not in 1..255", i, code);
    }
  }
  return {};
}

}  // namespace

std::string validateRegistration(const td::v1::PeerRegistered& peer) {
  TD_TRY_CHECK(checkId("peer_id", peer.peer_id()));
  TD_TRY_CHECK(checkId("session_id", peer.session_id()));
  TD_TRY_CHECK(checkId("schema_name", peer.schema_name()));
  TD_TRY_CHECK(checkId("schema_digest", peer.schema_digest()));
  if (peer.remote_cache_id().size() > protocol::kMaxIdBytes) return "remote_cache_id: too long";
  if (peer.repos_size() == 0) return "repos: empty";
  if (static_cast<std::size_t>(peer.repos_size()) > protocol::kMaxRepos) {
    return fmt::format("repos: {} entries, at most {}", peer.repos_size(), protocol::kMaxRepos);
  }
  std::unordered_set<std::string> repositories;
  for (int i = 0; i < peer.repos_size(); ++i) {
    const auto& repo = peer.repos(i);
    TD_TRY_CHECK(checkRef(fmt::format("repos[{}].repository", i), repo.repository()));
    TD_TRY_CHECK(checkRef(fmt::format("repos[{}].base_ref", i), repo.base_ref()));
    TD_TRY_CHECK(checkRef(fmt::format("repos[{}].change_ref", i), repo.change_ref()));
    if (!repositories.insert(repo.repository()).second) {
      return fmt::format("repos[{}].repository: {} listed twice", i, repo.repository());
    }
    if (static_cast<std::size_t>(repo.builds_on_size()) > protocol::kMaxRefsPerRepo) {
      return fmt::format("repos[{}].builds_on: {} refs, at most {}", i, repo.builds_on_size(),
                         protocol::kMaxRefsPerRepo);
    }
    for (int j = 0; j < repo.builds_on_size(); ++j) {
      TD_TRY_CHECK(checkRef(fmt::format("repos[{}].builds_on[{}]", i, j), repo.builds_on(j)));
    }
  }
  if (peer.steps_size() == 0) return "steps: empty";
  if (static_cast<std::size_t>(peer.steps_size()) > protocol::kMaxSteps) {
    return fmt::format("steps: {} steps, at most {}", peer.steps_size(), protocol::kMaxSteps);
  }
  std::unordered_set<std::string> ids;
  for (int i = 0; i < peer.steps_size(); ++i) {
    const auto& step = peer.steps(i);
    TD_TRY_CHECK(checkId(fmt::format("steps[{}].id", i), step.id()));
    if (!ids.insert(step.id()).second) {
      return fmt::format("steps[{}].id: duplicate id {}", i, step.id());
    }
    if (step.max_attempts() < 1 || step.max_attempts() > protocol::kMaxAttemptLimit) {
      return fmt::format("steps[{}].max_attempts: {} not in 1..{}", i, step.max_attempts(),
                         protocol::kMaxAttemptLimit);
    }
    if (step.has_retry()) TD_TRY_CHECK(checkRetry(i, step.retry()));
  }
  for (int i = 0; i < peer.steps_size(); ++i) {
    for (const auto& dep : peer.steps(i).depends_on()) {
      if (!ids.contains(dep) || dep == peer.steps(i).id()) {
        return fmt::format("steps[{}].depends_on: bad reference {}", i, dep);
      }
    }
  }
  if (hasCycle(peer)) return "steps: depends_on has a cycle";
  if (peer.slots() > 64) return fmt::format("slots: {} is more than 64", peer.slots());
  if (peer.current_step().size() > protocol::kMaxIdBytes) return "current_step: too long";
  if (peer.pipeline().size() > protocol::kMaxIdBytes) return "pipeline: too long";
  if (peer.compatibility_key() != protocol::compatibilityKey(peer)) {
    return "compatibility_key: does not match the registration's schema, cache and repositories";
  }
  return {};
}

std::string validateHeartbeat(const td::v1::PeerHeartbeat& msg) {
  TD_TRY_CHECK(checkId("peer_id", msg.peer_id()));
  TD_TRY_CHECK(checkId("session_id", msg.session_id()));
  TD_TRY_CHECK(checkId("group_id", msg.group_id()));
  return {};
}

std::string validateLeft(const td::v1::PeerLeft& msg) {
  TD_TRY_CHECK(checkId("peer_id", msg.peer_id()));
  TD_TRY_CHECK(checkId("session_id", msg.session_id()));
  TD_TRY_CHECK(checkId("group_id", msg.group_id()));
  return {};
}

namespace {
std::string checkOutputTail(const std::string& tail) {
  if (tail.size() > protocol::kMaxOutputTailBytes) {
    return fmt::format("output_tail: {} bytes, at most {}", tail.size(),
                       protocol::kMaxOutputTailBytes);
  }
  return {};
}

std::string checkStepRef(const std::string& peer_id, const std::string& session_id,
                         const std::string& group_id, const std::string& step_id,
                         std::uint32_t attempt) {
  TD_TRY_CHECK(checkId("peer_id", peer_id));
  TD_TRY_CHECK(checkId("session_id", session_id));
  TD_TRY_CHECK(checkId("group_id", group_id));
  TD_TRY_CHECK(checkId("step_id", step_id));
  if (attempt < 1 || attempt > 1000000) return fmt::format("attempt: {} out of range", attempt);
  return {};
}
}  // namespace

std::string validateStarted(const td::v1::StepStarted& msg) {
  return checkStepRef(msg.peer_id(), msg.session_id(), msg.group_id(), msg.step_id(),
                      msg.attempt());
}

std::string validateFinished(const td::v1::StepFinished& msg) {
  TD_TRY_CHECK(checkStepRef(msg.peer_id(), msg.session_id(), msg.group_id(), msg.step_id(),
                            msg.attempt()));
  switch (msg.outcome()) {
    case td::v1::STEP_OUTCOME_SUCCEEDED:
    case td::v1::STEP_OUTCOME_FAILED:
    case td::v1::STEP_OUTCOME_TIMED_OUT:
    case td::v1::STEP_OUTCOME_ABORTED:
    case td::v1::STEP_OUTCOME_REJECTED:
      break;
    default:
      return fmt::format("outcome: {} is not a worker outcome", static_cast<int>(msg.outcome()));
  }
  return checkOutputTail(msg.output_tail());
}

namespace {
std::string checkUniverseRef(const std::string& peer_id, const std::string& session_id,
                             const std::string& group_id, std::int64_t started_at_ms) {
  TD_TRY_CHECK(checkId("peer_id", peer_id));
  TD_TRY_CHECK(checkId("session_id", session_id));
  TD_TRY_CHECK(checkId("group_id", group_id));
  if (started_at_ms < 0) return fmt::format("started_at_ms: {} is negative", started_at_ms);
  return {};
}
}  // namespace

std::string validateUniverseStarted(const td::v1::UniverseStarted& msg) {
  return checkUniverseRef(msg.peer_id(), msg.session_id(), msg.group_id(), msg.started_at_ms());
}

std::string validateUniverseFinished(const td::v1::UniverseFinished& msg) {
  TD_TRY_CHECK(
      checkUniverseRef(msg.peer_id(), msg.session_id(), msg.group_id(), msg.started_at_ms()));
  if (universeOutcomeIndex(msg.outcome()) == kUniverseOutcomeCount) {
    return fmt::format("outcome: {} is not a universe outcome", static_cast<int>(msg.outcome()));
  }
  if (msg.exit_code() < -1 || msg.exit_code() > 255) {
    return fmt::format("exit_code: {} not in -1..255", msg.exit_code());
  }
  if (msg.signal() < 0 || msg.signal() > 64) {
    return fmt::format("signal: {} not in 0..64", msg.signal());
  }
  return checkOutputTail(msg.output_tail());
}

}  // namespace td::coordinator

namespace td::coordinator {

std::string validateCancel(const td::v1::CancelGroup& msg) {
  TD_TRY_CHECK(checkId("group_id", msg.group_id()));
  TD_TRY_CHECK(checkId("requested_by", msg.requested_by()));
  TD_TRY_CHECK(checkId("request_id", msg.request_id()));
  constexpr std::size_t kMaxReasonBytes = 4096;
  if (msg.reason().size() > kMaxReasonBytes) {
    return fmt::format("reason: {} bytes, at most {}", msg.reason().size(), kMaxReasonBytes);
  }
  if (msg.sent_at_ms() <= 0) return fmt::format("sent_at_ms: {} is not a time", msg.sent_at_ms());
  return {};
}

}  // namespace td::coordinator
