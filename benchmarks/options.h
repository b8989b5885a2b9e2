// td-bench's command line: flags -> BenchOptions.
#pragma once


#include "common/expected.h"
#include "benchmarks/bench.h"

namespace td::bench {

struct CommandLine {
  BenchOptions options;  // --smoke already applied
  bool json = false;     // --json
};

// On success the options; on failure the exit code (0 after --help, 2 after a usage error),
// with the message already printed. Also sets td-bench's own log level (--log-level).
td::Expected<CommandLine, int> parseCommandLine(int argc, char** argv);

}  // namespace td::bench
