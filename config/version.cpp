#include "config/version.h"

#include "config/build_info.h"
#include "kafka/types.h"
#include "protocol/protocol.h"

namespace td::config {

std::string versionText(std::string_view program) {
  std::string out(program);
  out += " ";
  out += kProjectVersion;
  out += "\ncommit ";
  out += kGitCommit;
  out += "\nprotocol ";
  out += std::to_string(protocol::kVersion);
  out += "\nlibrdkafka ";
  out += kafka::librdkafkaVersion();
  return out;
}

void addVersionFlag(CLI::App& app, std::string_view program) {
  app.set_version_flag(
      "--version", [name = std::string(program)] { return versionText(name); },
      "print the version, git commit, protocol version and librdkafka version, then exit");
}

}  // namespace td::config
