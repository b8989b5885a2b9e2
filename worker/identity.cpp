#include "worker/identity.h"

#include <chrono>
#include <random>

#include "common/hash.h"
#include "protocol/protocol.h"

namespace td::worker {

std::string newSessionId() {
  std::random_device device;
  std::uint64_t high = (static_cast<std::uint64_t>(device()) << 32) | device();
  std::uint64_t low = (static_cast<std::uint64_t>(device()) << 32) | device();
  return hex64(high) + hex64(low);
}

td::v1::PeerRegistered buildRegistration(const PeerInfo& peer, const std::string& session_id,
                                         const schema::Schema& schema) {
  td::v1::PeerRegistered reg;
  reg.set_peer_id(peer.peer_id);
  reg.set_session_id(session_id);
  for (const auto& repo : peer.repos) *reg.add_repos() = repo;
  reg.set_pipeline(peer.pipeline);
  reg.set_remote_cache_id(peer.remote_cache_id);
  reg.set_schema_name(schema.name);
  reg.set_schema_digest(schema.digest);
  for (const auto& step : schema.steps) {
    auto& spec = *reg.add_steps();
    spec.set_id(step.id);
    spec.set_max_attempts(step.max_attempts);
    spec.set_timeout_ms(static_cast<std::uint64_t>(step.timeout.count()));
    for (const auto& dep : step.depends_on) spec.add_depends_on(dep);
    const schema::RetryPolicy& r = step.retry;
    auto& retry = *spec.mutable_retry();
    retry.set_backoff_initial_ms(static_cast<std::uint64_t>(r.backoff_initial.count()));
    retry.set_backoff_multiplier(r.backoff_multiplier);
    retry.set_backoff_max_ms(static_cast<std::uint64_t>(r.backoff_max.count()));
    retry.set_backoff_jitter(r.backoff_jitter);
    retry.set_retry_on_any_exit(r.retry_on_any_exit);
    for (int code : r.retry_on_exit_codes) retry.add_retry_on_exit_codes(code);
    retry.set_retry_on_timeout(r.retry_on_timeout);
    retry.set_retry_on_lost(r.retry_on_lost);
    retry.set_count_lost_attempts(r.count_lost_attempts);
    retry.set_max_lost_attempts(r.max_lost_attempts);
    spec.set_no_speculation(!step.speculative);
  }
  reg.set_complex(peer.complex);
  reg.set_slots(1 + peer.prefetch);
  reg.set_sent_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
  reg.set_compatibility_key(protocol::compatibilityKey(reg));
  return reg;
}

}  // namespace td::worker
