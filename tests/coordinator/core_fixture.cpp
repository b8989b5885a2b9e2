#include "tests/coordinator/core_fixture.h"

#include "protocol/protocol.h"

namespace td::coordinator::testing {

PeerBuilder::PeerBuilder(std::string id) {
  peer_.set_peer_id(id);
  peer_.set_session_id(id + "-s1");
  auto* repo = peer_.add_repos();
  repo->set_repository("repo");
  repo->set_base_ref("main");
  repo->set_change_ref("change-of-" + id);
  peer_.set_remote_cache_id("cache");
  peer_.set_schema_name("s");
  peer_.set_schema_digest("digest-1");
  peer_.set_slots(1);
}
PeerBuilder& PeerBuilder::change(std::string ref) {
  peer_.mutable_repos(0)->set_change_ref(std::move(ref));
  return *this;
}
PeerBuilder& PeerBuilder::on(std::vector<std::string> refs) {
  for (auto& r : refs) peer_.mutable_repos(0)->add_builds_on(std::move(r));
  return *this;
}
PeerBuilder& PeerBuilder::complex() {
  peer_.set_complex(true);
  return *this;
}
PeerBuilder& PeerBuilder::cache(std::string id) {
  peer_.set_remote_cache_id(std::move(id));
  return *this;
}
PeerBuilder& PeerBuilder::schema(std::string name, std::string digest) {
  peer_.set_schema_name(std::move(name));
  if (!digest.empty()) peer_.set_schema_digest(std::move(digest));
  return *this;
}
PeerBuilder& PeerBuilder::base(std::string ref) {
  peer_.mutable_repos(0)->set_base_ref(std::move(ref));
  return *this;
}
PeerBuilder& PeerBuilder::repository(std::string url) {
  peer_.mutable_repos(0)->set_repository(std::move(url));
  return *this;
}
PeerBuilder& PeerBuilder::session(std::string id) {
  peer_.set_session_id(std::move(id));
  return *this;
}
PeerBuilder& PeerBuilder::slots(std::uint32_t n) {
  peer_.set_slots(n);
  return *this;
}
PeerBuilder& PeerBuilder::steps(int count, std::uint32_t max_attempts) {
  peer_.clear_steps();
  for (int i = 0; i < count; ++i) step(std::string(1, static_cast<char>('a' + i)), max_attempts);
  return *this;
}
PeerBuilder& PeerBuilder::step(std::string id, std::uint32_t max_attempts,
                               std::vector<std::string> depends_on) {
  if (!custom_steps_) {
    peer_.clear_steps();
    custom_steps_ = true;
  }
  auto* s = peer_.add_steps();
  s->set_id(std::move(id));
  s->set_max_attempts(max_attempts);
  s->set_timeout_ms(60'000);
  for (auto& d : depends_on) s->add_depends_on(std::move(d));
  return *this;
}
PeerBuilder& PeerBuilder::noSpeculation() {
  no_speculation_ = true;
  return *this;
}
td::v1::PeerRegistered PeerBuilder::build() const {
  td::v1::PeerRegistered p = peer_;
  if (p.steps_size() == 0) {
    for (const char* id : {"a", "b", "c", "d"}) {
      auto* s = p.add_steps();
      s->set_id(id);
      s->set_max_attempts(3);
      s->set_timeout_ms(60'000);
    }
  }
  if (no_speculation_) {
    for (auto& s : *p.mutable_steps()) s.set_no_speculation(true);
  }
  p.set_compatibility_key(protocol::compatibilityKey(p));
  return p;
}

CoreTest::CoreTest() : core_(CoreConfig{.coordinator_id = "test"}) {}
CoreTest::CoreTest(CoreConfig config) : core_(std::move(config)) {}

Effects CoreTest::run(const Input& input) {
  Effects effects = core_.handle(input, clock_.now());
  all_.insert(all_.end(), effects.begin(), effects.end());
  return effects;
}

std::string CoreTest::join(const PeerBuilder& peer, std::int32_t partition) {
  Effects effects = run(Registration{.partition = partition, .peer = peer.build()});
  for (const auto& e : effects) {
    if (const auto* j = std::get_if<PublishJoin>(&e); j && j->record.has_joined()) {
      return j->record.joined().group_id();
    }
  }
  return "";
}

td::v1::StepFinished CoreTest::finishedRecord(const std::string& group, const std::string& peer,
                                              const std::string& step, std::uint32_t attempt,
                                              td::v1::StepOutcome outcome,
                                              const std::string& session) {
  td::v1::StepFinished f;
  f.set_group_id(group);
  f.set_peer_id(peer);
  f.set_session_id(session.empty() ? sessionOf(peer) : session);
  f.set_step_id(step);
  f.set_attempt(attempt);
  f.set_outcome(outcome);
  f.set_exit_code(outcome == td::v1::STEP_OUTCOME_SUCCEEDED ? 0 : 1);
  return f;
}

Effects CoreTest::finish(const std::string& group, const std::string& peer,
                         const std::string& step, std::uint32_t attempt,
                         td::v1::StepOutcome outcome, const std::string& session) {
  return run(finishedRecord(group, peer, step, attempt, outcome, session));
}

td::v1::PeerHeartbeat CoreTest::heartbeatRecord(const std::string& group,
                                                const std::string& peer,
                                                const std::string& session) {
  td::v1::PeerHeartbeat hb;
  hb.set_group_id(group);
  hb.set_peer_id(peer);
  hb.set_session_id(session.empty() ? sessionOf(peer) : session);
  return hb;
}

std::vector<td::v1::StepAssigned> CoreTest::assignments(const Effects& effects,
                                                        const std::string& peer) {
  std::vector<td::v1::StepAssigned> out;
  for (const auto& e : effects) {
    const auto* a = std::get_if<PublishAssignment>(&e);
    if (a && a->record.has_assigned() && (peer.empty() || a->record.assigned().peer_id() == peer)) {
      out.push_back(a->record.assigned());
    }
  }
  return out;
}

std::vector<td::v1::Event> CoreTest::events(const Effects& effects) {
  std::vector<td::v1::Event> out;
  for (const auto& e : effects) {
    if (const auto* p = std::get_if<PublishEvent>(&e)) out.push_back(p->event);
  }
  return out;
}

std::vector<std::string> CoreTest::eventKinds(const Effects& effects) {
  std::vector<std::string> out;
  for (const auto& e : events(effects)) {
    std::string d = protocol::describe(e);
    out.push_back(d.substr(0, d.find(' ')));
  }
  return out;
}

bool CoreTest::has(const Effects& effects, td::v1::AssignmentRecord::BodyCase kind) {
  for (const auto& e : effects) {
    const auto* a = std::get_if<PublishAssignment>(&e);
    if (a && a->record.body_case() == kind) return true;
  }
  return false;
}

int CoreTest::deadLetters(const Effects& effects) {
  int n = 0;
  for (const auto& e : effects) n += std::holds_alternative<DeadLetter>(e) ? 1 : 0;
  return n;
}

}  // namespace td::coordinator::testing
