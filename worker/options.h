// td-worker's command line: flags -> WorkerOptions plus the loaded schema.
#pragma once

#include <utility>

#include "common/expected.h"
#include "schema/schema.h"
#include "worker/worker_options.h"

namespace td::worker {

// Flags over TD_* environment variables over the --config file (config/layers.h). On success
// the options and the schema; on failure the exit code (0 after --help, --print-config or
// --print-registration, which prints the registration and where its values came from; 2 after
// a usage, configuration or schema error, with the message already printed to stderr).
// Unsets the environment variables that held secrets, so steps do not inherit them.
td::Expected<std::pair<WorkerOptions, schema::Schema>, int> parseCommandLine(int argc,
                                                                            char** argv);

}  // namespace td::worker
