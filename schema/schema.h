// Schemas: a YAML file naming the steps that CI peers shard among themselves, parsed and
// validated into plain structs. This is the only module that sees yaml-cpp; no YAML type or
// exception ever leaves it. Every error is a td::Error with a schema::Errc code and a context of
// the form "SOURCE:LINE:COLUMN: message" (1-based), or "SOURCE: message" when no position applies.
//
// Two file forms are accepted.
//
// Native form:
//   name: adp_fastbuild                       # required, [A-Za-z0-9._:/@+-]{1,128}
//   description: free text                    # optional, ignored
//   defaults: {timeout: 30m, max_attempts: 3} # optional; built-in defaults are 1h and 2
//   steps:                                    # required, non-empty, kept in file order
//     - id: ui                                # required, same alphabet as name, unique
//       run: bazel build //ui/...             # required, non-empty, run with /bin/sh -c
//       timeout: 45m                          # optional, overrides defaults
//       max_attempts: 2                       # optional, integer in [1, 100]
//       depends_on: [common]                  # optional list of other step ids, no cycles
//       speculative: false                    # optional (also in defaults:), default true:
//                                             # false never races a slow attempt with a
//                                             # second one (steps with side effects)
//       description: free text                # optional, ignored
//
// Task-sharding form (the original server's format):
//   name: bazel
//   command: bazel test {task}                # template; ParseOptions::task_command overrides it
//   defaults: {timeout: 10m}                  # optional, as above
//   tasks:
//     - task: //:test_1                       # step "0", run "bazel test //:test_1"
//     - task: //:test_2                       # step "1", run "bazel test //:test_2"
// Each task becomes a step whose id is its 0-based index in decimal and whose run is the
// template with every "{task}" replaced by the task value. The template must contain "{task}".
//
// Targets form (the Task Director README's schema, JSON or YAML): step ids mapped to targets,
// either the whole file
//   {"1": "//application/adp/common/...", "2": "//application/adp/planning/..."}
// or under `steps:`, with the native form's `name`, `command` and `defaults` beside it
//   {"name": "adp", "command": "bazel build {task}", "steps": {"1": "//app/common/..."}}
// Each entry is a step with that id whose run is the template with the target in place of
// "{task}" (the template as in the task-sharding form: ParseOptions::task_command or the
// file's `command:`). Ids that are numbers come first in numeric order, the others after them
// in file order. The name is `name:`, else ParseOptions::default_name (loadFile: the file
// name without its extension, e.g. adp_fastbuild for adp_fastbuild.json).
//
// Any form may add `universe:` (see Schema::universe).
//
// Thread safety: all functions are pure (loadFile reads the file) and safe to call concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "common/result.h"

namespace td::schema {

// Built-in defaults, used when neither the step nor the file's `defaults:` block gives a value.
inline constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::hours(1);
inline constexpr std::uint32_t kDefaultMaxAttempts = 2;
// Accepted ranges.
inline constexpr std::chrono::milliseconds kMaxTimeout = std::chrono::hours(24 * 7);
inline constexpr std::uint32_t kMaxAttemptsLimit = 100;
inline constexpr std::size_t kMaxIdLength = 128;

// How a failed attempt of a step is retried (`backoff`, `retry_on`, `count_lost_attempts`,
// `max_lost_attempts` in `defaults:` or a step). The defaults below apply when neither says.
struct RetryPolicy {
  std::chrono::milliseconds backoff_initial{1000};  // wait before the same peer retries
  double backoff_multiplier = 2.0;                  // in [1, 100]
  std::chrono::milliseconds backoff_max{60000};     // cap, >= backoff_initial
  double backoff_jitter = 0.2;                      // in [0, 1]
  bool retry_on_any_exit = true;                    // `exit` in retry_on
  std::vector<int> retry_on_exit_codes;             // integers in retry_on (then not any exit)
  bool retry_on_timeout = true;                     // `timeout` in retry_on
  bool retry_on_lost = true;                        // `lost` in retry_on
  bool count_lost_attempts = false;                 // lost attempts count toward max_attempts
  std::uint32_t max_lost_attempts = 3;              // hard cap on lost attempts, in [1, 100]

  friend bool operator==(const RetryPolicy&, const RetryPolicy&) = default;
};

struct Step {
  std::string id;
  std::string run;                                     // shell command, run with /bin/sh -c
  std::chrono::milliseconds timeout{kDefaultTimeout};  // in (0, 7 days]
  std::uint32_t max_attempts = kDefaultMaxAttempts;    // in [1, 100]
  std::vector<std::string> depends_on;  // ids of earlier-or-later steps that must succeed first
  RetryPolicy retry;
  // `speculative:` (step or defaults): the coordinator may run a second attempt of a
  // straggling attempt at once on an idle peer (docs/architecture.md, "Speculative attempts").
  bool speculative = true;
};

// A validated schema. parse()/loadFile() guarantee: a valid name, at least one step, unique
// valid ids, every depends_on entry names another step, and the dependency graph is acyclic.
// Copies and moves keep find() valid (the index maps ids to positions, not pointers).
struct Schema {
  std::string name;
  std::vector<Step> steps;  // in file order
  // The universe: a command every peer runs itself once its group has completed (the steps
  // built the slow targets into the shared cache; the universe is then mostly cache hits).
  // `universe:` in the file: a command in the native form, a target through the command
  // template in the tasks and targets forms. Bounded by `defaults: {timeout}`.
  std::optional<std::string> universe;
  std::chrono::milliseconds universe_timeout{kDefaultTimeout};
  std::string digest;       // sha256 hex (td::sha256Hex) of canonicalForm(*this)
  std::string source;       // file path or name given to parse()

  // Returns the step with `id`, or nullptr if there is none. O(log n) through an index that
  // parse() builds. The pointer is valid until `steps` is modified or the Schema destroyed.
  // A Schema assembled by hand (empty index) is searched linearly. REQUIRES: after editing the
  // steps of a parsed Schema, call rebuildIndex(); a stale index may miss an id.
  const Step* find(std::string_view id) const;
  // Rebuilds the id index from `steps` (the first step wins if ids repeat).
  void rebuildIndex();

 private:
  std::map<std::string, std::size_t, std::less<>> index_;  // id -> position in steps
};

struct ParseOptions {
  // Template for the task-sharding form; when set it replaces the file's `command:` (which may
  // then be absent). Must be non-empty and contain "{task}". Ignored for the native form.
  std::optional<std::string> task_command;
  // The name of a targets-form schema without `name:` (loadFile sets it to the file name
  // without its extension when empty). Ignored by the other forms, which require `name:`.
  std::string default_name;
};

enum class Errc {
  kIo = 1,        // file missing or unreadable (message names the path and strerror)
  kSyntax,        // not well-formed YAML, more than one document, or a repeated map key
  kUnknownKey,    // a key not in the allowed set (message lists the allowed keys)
  kDuplicateId,   // two steps with one id (message names the line of the first)
  kMissingField,  // `name`, `id`, `run`, `task`, or the tasks form's command template
  kBadValue,      // wrong type, empty, bad characters, bad duration or attempts, steps+tasks
  kEmpty,         // empty file or no steps/tasks
  kBadReference,  // depends_on names an unknown step, the step itself, or closes a cycle
};
const std::error_category& schemaCategory();  // name() == "schema"
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), schemaCategory()}; }

// Reads and parses the file at `path`; Schema::source is path.string(). Errors: kIo for an
// unreadable file (or one larger than 16 MiB), otherwise as parse().
td::Result<Schema> loadFile(const std::filesystem::path& path, const ParseOptions& options = {});

// Parses and validates `yaml_text`; `source_name` prefixes every error message and is stored in
// Schema::source. Keeps no reference to either argument. Never throws.
td::Result<Schema> parse(std::string_view yaml_text, std::string_view source_name,
                         const ParseOptions& options = {});

// Parses a duration: one or more "<digits><unit>" parts, unit one of ms, s, m, h, summed
// ("500ms", "45s", "30m", "1h30m"). The total must be > 0 and <= 7 days. Errors: kBadValue
// naming the offending text (bare numbers, signs, spaces, unknown units, empty text).
td::Result<std::chrono::milliseconds> parseDuration(std::string_view text);

// A stable, unambiguous text of everything that affects execution: the name and, in order, every
// step's id, run, timeout in ms, max_attempts and depends_on (sorted), its retry policy and,
// only when false, `speculative`. Excludes source, descriptions, comments and layout, so
// reformatting a file keeps its digest.
std::string canonicalForm(const Schema& schema);

}  // namespace td::schema

template <>
struct std::is_error_code_enum<td::schema::Errc> : std::true_type {};
