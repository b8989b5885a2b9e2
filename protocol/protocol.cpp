#include "protocol/protocol.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <utility>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "common/hash.h"
#include "common/log.h"

namespace td::protocol {

std::string compatibilityKey(const td::v1::PeerRegistered& peer) {
  std::vector<std::pair<std::string, std::string>> repos;
  repos.reserve(peer.repos_size());
  for (const auto& repo : peer.repos()) repos.emplace_back(repo.repository(), repo.base_ref());
  std::sort(repos.begin(), repos.end());
  // Length-prefixed fields, so no two different inputs share a canonical text.
  std::string canonical;
  auto add = [&canonical](std::string_view field) {
    canonical += std::to_string(field.size());
    canonical += ':';
    canonical += field;
  };
  add(peer.schema_name());
  add(peer.schema_digest());
  add(peer.remote_cache_id());
  for (const auto& [repository, base_ref] : repos) {
    add(repository);
    add(base_ref);
  }
  return sha256Hex(canonical).substr(0, 32);
}

std::int32_t partitionFor(std::string_view key, std::int32_t partition_count) {
  if (partition_count <= 1) return 0;
  return static_cast<std::int32_t>(fnv1a64(key) % static_cast<std::uint64_t>(partition_count));
}

td::v1::RetryPolicy defaultRetryPolicy() {
  td::v1::RetryPolicy retry;
  retry.set_backoff_initial_ms(1000);
  retry.set_backoff_multiplier(2.0);
  retry.set_backoff_max_ms(60000);
  retry.set_backoff_jitter(0.2);
  retry.set_retry_on_any_exit(true);
  retry.set_retry_on_timeout(true);
  retry.set_retry_on_lost(true);
  retry.set_count_lost_attempts(false);
  retry.set_max_lost_attempts(3);
  return retry;
}

td::v1::RetryPolicy retryPolicyOf(const td::v1::StepSpec& step) {
  return step.has_retry() ? step.retry() : defaultRetryPolicy();
}

void routeProtobufLogs() {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char* file, int line,
                                     const std::string& message) {
    auto logger = td::log::get("protobuf");
    if (level >= google::protobuf::LOGLEVEL_FATAL) {
      logger->critical("{}:{}: {}", file, line, message);
    } else {
      logger->debug("{}:{}: {}", file, line, message);
    }
  });
}

std::string qualifiedRef(std::string_view repository, std::string_view ref) {
  std::string out(repository);
  out += '#';
  out += ref;
  return out;
}

std::string_view outcomeName(td::v1::StepOutcome outcome) {
  switch (outcome) {
    case td::v1::STEP_OUTCOME_SUCCEEDED: return "succeeded";
    case td::v1::STEP_OUTCOME_FAILED: return "failed";
    case td::v1::STEP_OUTCOME_TIMED_OUT: return "timed_out";
    case td::v1::STEP_OUTCOME_ABORTED: return "aborted";
    case td::v1::STEP_OUTCOME_LOST: return "lost";
    case td::v1::STEP_OUTCOME_REJECTED: return "rejected";
    default: return "unspecified";
  }
}

std::string describeExit(std::int32_t exit_code, std::int32_t signal) {
  if (signal > 0) {
    const char* abbrev = ::sigabbrev_np(signal);
    return abbrev != nullptr ? fmt::format("killed by SIG{}", abbrev)
                             : fmt::format("killed by signal {}", signal);
  }
  if (exit_code >= 0) return fmt::format("exit {}", exit_code);
  return "no exit status";
}

std::string_view statusName(td::v1::GroupStatus status) {
  switch (status) {
    case td::v1::GROUP_STATUS_RUNNING: return "running";
    case td::v1::GROUP_STATUS_COMPLETED: return "completed";
    case td::v1::GROUP_STATUS_FAILED: return "failed";
    case td::v1::GROUP_STATUS_ABANDONED: return "abandoned";
    case td::v1::GROUP_STATUS_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

std::string describe(const td::v1::Event& e) {
  using E = td::v1::Event;
  switch (e.kind_case()) {
    case E::kGroupCreated:
      return fmt::format("group_created schema={} steps={} founder={}",
                         e.group_created().schema_name(), e.group_created().steps_size(),
                         e.group_created().founding_peer_id());
    case E::kPeerJoined:
      return fmt::format("peer_joined peer={} shared_refs={}{}", e.peer_joined().peer_id(),
                         e.peer_joined().shared_refs(), e.peer_joined().complex() ? " complex" : "");
    case E::kStepQueued:
      return fmt::format("step_queued step={} attempt={} reason={}{}", e.step_queued().step_id(),
                         e.step_queued().next_attempt(), e.step_queued().reason(),
                         e.step_queued().backoff_ms() > 0
                             ? fmt::format(" backoff_ms={}", e.step_queued().backoff_ms())
                             : std::string());
    case E::kStepAssigned:
      return fmt::format("step_assigned step={} attempt={} peer={}{}", e.step_assigned().step_id(),
                         e.step_assigned().attempt(), e.step_assigned().peer_id(),
                         e.step_assigned().speculative()
                             ? fmt::format(" speculative races={}",
                                           e.step_assigned().races_attempt())
                             : std::string());
    case E::kStepStarted:
      return fmt::format("step_started step={} attempt={} peer={}", e.step_started().step_id(),
                         e.step_started().attempt(), e.step_started().peer_id());
    case E::kStepFinished: {
      const auto& f = e.step_finished();
      return fmt::format("step_finished step={} attempt={} peer={} outcome={} exit={} ms={}",
                         f.step_id(), f.attempt(), f.peer_id(), outcomeName(f.outcome()),
                         f.exit_code(), f.duration_ms());
    }
    case E::kStepAborted:
      return fmt::format("step_aborted step={} attempt={} peer={} reason={}",
                         e.step_aborted().step_id(), e.step_aborted().attempt(),
                         e.step_aborted().peer_id(), e.step_aborted().reason());
    case E::kInputIgnored:
      return fmt::format("input_ignored reason={} peer={} step={} attempt={} detail={}",
                         e.input_ignored().reason(), e.input_ignored().peer_id(),
                         e.input_ignored().step_id(), e.input_ignored().attempt(),
                         e.input_ignored().detail());
    case E::kGroupCompleted:
      return fmt::format("group_completed steps={} wall_ms={}", e.group_completed().steps_size(),
                         e.group_completed().wall_time_ms());
    case E::kGroupFailed:
      return fmt::format("group_failed step={} reason={}", e.group_failed().failed_step_id(),
                         e.group_failed().reason());
    case E::kGroupAbandoned: {
      const auto& a = e.group_abandoned();
      return fmt::format("group_abandoned memberless_ms={} succeeded={} not_run={} last_peer={}",
                         a.memberless_for_ms(), a.steps_succeeded(), a.steps_not_run(),
                         a.last_peer_id());
    }
    case E::kGroupCancelled:
      return fmt::format("group_cancelled by={} request={} reason={}",
                         e.group_cancelled().requested_by(), e.group_cancelled().request_id(),
                         e.group_cancelled().reason());
    case E::kPeerLeft:
      return fmt::format("peer_left peer={} reason={}", e.peer_left().peer_id(),
                         e.peer_left().reason());
    case E::kPeerLost:
      return fmt::format("peer_lost peer={} reason={}", e.peer_lost().peer_id(),
                         e.peer_lost().reason());
    case E::kGroupRestored: {
      const auto& r = e.group_restored();
      return fmt::format("group_restored partition={} previous_epoch={} previous={} republished={}",
                         r.partition(), r.previous_epoch(), r.previous_coordinator_id(),
                         r.republished());
    }
    case E::kUniverseStarted:
      return fmt::format("universe_started peer={}", e.universe_started().peer_id());
    case E::kUniverseFinished: {
      const auto& f = e.universe_finished();
      return fmt::format("universe_finished peer={} outcome={} exit={} ms={}", f.peer_id(),
                         outcomeName(f.outcome()), f.exit_code(), f.duration_ms());
    }
    case E::KIND_NOT_SET:
      break;
  }
  return "unknown_event";
}

}  // namespace td::protocol
