// Layered configuration for the Task Director binaries: command-line flags over TD_*
// environment variables over one YAML file (`--config FILE`) over built-in defaults, on top of
// a CLI11 app, plus `--print-config`.
//
// CLI11 2.1.2's own set_config()/envname() apply the file before the environment and let the
// file win (App::_process_config_file runs before _process_env, which skips any option already
// set), so this class layers the sources itself after CLI11 has parsed the flags.
//
// The layers (docs/configuration.md):
//   flag         --lease-ms 3000, -X key=value (repeatable)
//   environment  TD_LEASE_MS=3000: "TD_" + the long option name upper-cased, '-' -> '_'; a
//                repeatable option takes a comma-separated list; TD_KAFKA_<NAME>=value is the
//                librdkafka property <name> lower-cased with '_' -> '.'
//                (TD_KAFKA_SASL_MECHANISM -> sasl.mechanism); TD_CONFIG names the file.
//                Empty variables and unknown TD_* names are ignored.
//   file         YAML map: `long-option-name: value` (a list for repeatable options,
//                true/false for flags) and `kafka: {property: value, ...}`.
// An option takes its value from the highest layer that sets it. librdkafka properties merge
// key by key: each property from the highest layer that sets it.
//
// Thread safety: none; used once by main() before any thread starts.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace td::config {

// A snapshot of environment variables, name -> value (injected so tests need no setenv()).
using Environment = std::vector<std::pair<std::string, std::string>>;
// This process's environment.
Environment processEnvironment();

// Where an effective value came from, lowest precedence first.
enum class Source { kDefault, kFile, kEnvironment, kFlag };

struct Origin {
  Source source = Source::kDefault;
  std::string where;  // "" (default), "FILE:LINE", "TD_NAME" or "--flag"/"-X"
};

// "default", "file PATH:LINE", "env TD_NAME" or "flag --name", as --print-config shows it.
std::string describe(const Origin& origin);

// "lease-ms" -> "TD_LEASE_MS".
std::string envName(std::string_view long_name);
// "sasl.mechanism" -> "TD_KAFKA_SASL_MECHANISM".
std::string kafkaEnvName(std::string_view property);

// Owns the layering of one CLI11 app. Construct it after every option has been added (it adds
// --config and --print-config itself); `app` must outlive it.
class Layers {
 public:
  Layers(CLI::App& app, std::string program);

  // A check a start runs once every layer is in (two options that must agree, librdkafka
  // properties, a file to load): it runs inside parse(), in the order added, after the
  // required options are found, for a start and for --print-config alike, so --print-config
  // exits 2 wherever a start would. An error's message is printed as "<program>: <message>".
  // Checks may keep what they compute (a loaded file) in variables they captured.
  using Check = std::function<td::Status()>;
  void addCheck(Check check) { checks_.push_back(std::move(check)); }

  // Parses flags, then fills every option the flags left unset from `env`, then from the
  // config file (--config, else TD_CONFIG), then checks required options, then runs the
  // checks (addCheck). Returns nullopt when the program should go on; otherwise the exit
  // code: 0 after --help, --version or --print-config (the configuration written to `out`,
  // before the checks run), 2 after any error (written to `err` as "<program>: <where>:
  // <what>", where is FILE:LINE:COLUMN, the variable or the flag; an out-of-range number as
  // "--flag V: must be between ...", "TD_NAME=V: must be between ..." or
  // "FILE:LINE:COL: name V: must be between ..." (config/bounds.h)).
  std::optional<int> parse(int argc, const char* const* argv, const Environment& env,
                           std::ostream& out, std::ostream& err);

  // Where an option's value came from, by long name ("lease-ms"); kDefault if unknown.
  Origin origin(std::string_view long_name) const;
  // Where a librdkafka property's value came from; nullopt if no layer set it.
  std::optional<Origin> kafkaOrigin(std::string_view property) const;
  // The effective configuration as YAML a --config file accepts, each value commented with
  // its origin; secrets (common/redact.h) shown as [redacted].
  std::string printConfig() const;
  // The environment variables read that hold secrets (td-worker unsets them so the steps it
  // runs do not inherit them).
  const std::vector<std::string>& secretEnvironmentNames() const { return secret_env_; }

 private:
  struct Value {
    std::vector<std::string> values;
    Origin origin;
    std::string
        error_at;  // where an error is reported: FILE:LINE:COLUMN of the value, or the variable
  };

  void applyEnvironment(const Environment& env);
  void loadFile(const std::string& path);
  void apply(CLI::Option* option, const std::string& name, const Value& value);
  void mergeKafka();
  // Warns on `err` when the config file holds secrets and group or others may access it.
  void warnIfExposed(std::ostream& err) const;
  bool isLayered(const CLI::Option* option) const;
  CLI::Option* findOption(std::string_view name) const;
  std::string allowedKeys() const;

  CLI::App& app_;
  std::string program_;
  std::string config_path_;
  bool print_config_ = false;
  CLI::Option* config_option_ = nullptr;
  CLI::Option* print_option_ = nullptr;
  CLI::Option* kafka_option_ = nullptr;  // -X, if the app has it
  std::vector<CLI::Option*> required_;
  std::map<const CLI::Option*, Origin> origins_;
  // property -> (value, origin), the merged result of every layer.
  std::map<std::string, std::pair<std::string, Origin>, std::less<>> kafka_;
  std::optional<Origin> config_origin_;
  std::vector<std::string> secret_env_;
  std::vector<std::string> file_secrets_;  // secret keys found in the config file
  std::vector<Check> checks_;
};

}  // namespace td::config
