// Seed inputs for the fuzz targets, built in code so they always match the current .proto files
// and the populated Core the record targets start from. td_fuzz_make_corpus writes them out as a
// libFuzzer corpus; fuzz_smoke mutates them.
#pragma once

#include <string>
#include <vector>

#include "td/v1/registrations.pb.h"

namespace td::fuzz {

// A valid registration of `peer_id` (session `<peer_id>-s1`) in one of four compatibility
// families: 'A' (steps build, test <- build, lint, pkg <- test+lint, with assorted retry
// policies), 'B' (another cache: x, y <- x), 'C' (one step "only"), 'D' (one step "x",
// max_attempts 1). The change ref is in repository "repo", base "main". The compatibility key is
// filled in.
td::v1::PeerRegistered familyPeer(char family, const std::string& peer_id,
                                  const std::string& change_ref,
                                  const std::vector<std::string>& builds_on = {},
                                  bool complex = false);

// Seeds for each target, in the input layouts described in fuzz/targets.h.
std::vector<std::string> registrationSeeds();
std::vector<std::string> completionSeeds();
std::vector<std::string> schemaSeeds();

}  // namespace td::fuzz
