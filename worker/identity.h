// Who a worker is: the registration it sends, built from its flags and its own schema.
#pragma once

#include <string>
#include <vector>

#include "schema/schema.h"
#include "td/v1/registrations.pb.h"

namespace td::worker {

// What the worker says about its checkout and CI job (flags, or --repo-state).
struct PeerInfo {
  std::string peer_id;
  std::vector<td::v1::RepoState> repos;
  std::string remote_cache_id;
  std::string pipeline;
  bool complex = false;
  // Steps taken ahead: the coordinator may assign this many more while one runs (registered
  // as slots = 1 + prefetch); td-worker runs them one after another.
  std::uint32_t prefetch = 0;
};

// A fresh random session id (128 bits, hex): fences messages of earlier runs of the same peer.
std::string newSessionId();

// The registration for `peer` running `schema`, with its compatibility key filled in. Step
// ids and policy travel; commands never do.
td::v1::PeerRegistered buildRegistration(const PeerInfo& peer, const std::string& session_id,
                                         const schema::Schema& schema);

}  // namespace td::worker
