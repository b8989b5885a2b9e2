// td-coordinator's command line: flags over TD_* environment variables over the --config file
// (config/layers.h) -> ServiceOptions and the metrics address.
#pragma once

#include <string>

#include "common/expected.h"
#include "coordinator/shell/service.h"

namespace td::coordinator {

struct CommandLine {
  ServiceOptions service;
  std::string metrics_listen;   // --metrics-listen HOST:PORT; empty: off
};

// On success the options; otherwise the exit code (0 after --help or --print-config, 2 after a
// usage or configuration error, with the message already printed to stderr). Sets the log
// level and format.
td::Expected<CommandLine, int> parseCommandLine(int argc, char** argv);

}  // namespace td::coordinator
