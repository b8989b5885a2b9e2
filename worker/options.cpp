#include "worker/options.h"

#include <CLI/CLI.hpp>

#include <stdlib.h>

#include <cstdio>
#include <iostream>

#include "common/log.h"
#include "config/layers.h"
#include "schema/repo_state.h"
#include "worker/ci_options.h"
#include "worker/git_facts.h"

namespace td::worker {

namespace {
int usageError(const std::string& message) {
  std::fprintf(stderr, "td-worker: %s\n", message.c_str());
  return 2;
}
}  // namespace

std::expected<std::pair<WorkerOptions, schema::Schema>, int> parseCommandLine(int argc,
                                                                            char** argv) {
  CLI::App app{"td-worker: a CI peer that runs its share of a schema's steps"};
  WorkerOptions options;
  std::string schema_path;
  std::string repository, base_ref, change_ref, repo_state, pipeline_type = "independent";
  std::vector<std::string> builds_on, properties;
  std::string task_command, prefix = "td.", level = "info", log_format = "text";
  int join_timeout_s = 300;
  bool quiet_steps = false;
  bool print_registration = false;

  // Required unless --print-registration (checked after parsing).
  app.add_option("--bootstrap-server", options.bootstrap_servers,
                 "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]");
  app.add_option("-X", properties, "librdkafka property key=value (repeatable)");
  app.add_option("--schema", schema_path, "the schema YAML file (steps and their commands)")
      ->required();
  app.add_option("--peer-id", options.peer.peer_id, "this peer's name, unique in the cluster")
      ->required();
  auto* repo_opt = app.add_option(
      "--repository", repository,
      "repository URL or name (default: from the CI's variables or the checkout's origin)");
  auto* base_opt = app.add_option("--base-ref", base_ref,
                                  "base ref, e.g. main (default: from the CI or the checkout)");
  auto* change_opt = app.add_option(
      "--change-ref", change_ref, "this job's change ref (default: the CI's or HEAD's commit)");
  auto* on_opt = app.add_option("--builds-on", builds_on,
                                "a change ref this change is built on (repeatable)");
  auto* state_opt = app.add_option(
      "--repo-state", repo_state,
      "YAML file: repository -> {base_ref, change_ref, builds_on}, for several repositories");
  state_opt->excludes(repo_opt)->excludes(base_opt)->excludes(change_opt)->excludes(on_opt);
  app.add_option("--remote-cache-id", options.peer.remote_cache_id,
                 "the remote cache this peer reads and writes")->required();
  app.add_option("--pipeline", options.peer.pipeline, "CI pipeline name (informational)");
  app.add_option("--pipeline-type", pipeline_type, "independent or dependent")
      ->check(CLI::IsMember({"independent", "dependent"}))->capture_default_str();
  app.add_option("--prefetch", options.peer.prefetch,
                 "steps to take ahead: the coordinator may assign this many more while one runs, "
                 "so the next starts without waiting for a dispatch (they run one at a time)")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  app.add_flag("--complex", options.peer.complex,
               "never join an existing group (later peers may join this one's)");
  app.add_option("--task-command", task_command,
                 "command template for a task-sharding schema ({task} is replaced)");
  app.add_option("--workdir", options.working_dir, "directory steps run in (default: here)");
  app.add_option("--join-timeout", join_timeout_s, "seconds to wait for a coordinator's reply")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--topic-prefix", prefix, "prefix of every topic name")->capture_default_str();
  app.add_flag("--quiet-steps", quiet_steps, "do not copy steps' output to stderr");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text (human-readable) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  app.add_flag("--print-registration", print_registration,
               "print the registration and where each value came from, then exit 0 "
               "(no broker needed)");

  config::Layers layers(app, "td-worker");   // --config, TD_* variables, --print-config
  if (auto exit = layers.parse(argc, argv, config::processEnvironment(), std::cout, std::cerr)) {
    return std::unexpected(*exit);
  }
  // Steps inherit this environment; a secret meant for librdkafka is not theirs to read.
  for (const auto& name : layers.secretEnvironmentNames()) ::unsetenv(name.c_str());
  td::log::setFormat(log_format);
  if (!td::log::setLevel(level)) return std::unexpected(usageError("--log-level: unknown level"));
  if (options.bootstrap_servers.empty() && !print_registration) {
    return std::unexpected(usageError("--bootstrap-server is required"));
  }
  auto props = kafka::parseProperties(properties);
  if (!props) return std::unexpected(usageError("-X: " + props.error().message()));
  options.kafka = std::move(*props);
  options.topics = protocol::Topics(prefix);
  options.join_timeout = std::chrono::seconds(join_timeout_s);
  options.echo_output = !quiet_steps;
  options.peer.pipeline_type = pipeline_type == "dependent" ? td::v1::PIPELINE_TYPE_DEPENDENT
                                                            : td::v1::PIPELINE_TYPE_INDEPENDENT;
  RegistrationSources sources;
  if (!repo_state.empty()) {
    auto repos = schema::loadRepoState(repo_state);
    if (!repos) return std::unexpected(usageError(repos.error().message()));
    for (const auto& r : *repos) {
      td::v1::RepoState state;
      state.set_repository(redactCredentials(r.repository));   // never send a token
      state.set_base_ref(r.base_ref);
      state.set_change_ref(r.change_ref);
      for (const auto& ref : r.builds_on) state.add_builds_on(ref);
      options.peer.repos.push_back(std::move(state));
      const std::string from = "--repo-state " + repo_state;
      sources.repos.push_back(
          {{state.repository(), from}, {r.base_ref, from}, {r.change_ref, from}});
      sources.ci_line = "not used (--repo-state gives every value)";
    }
  } else {
    // Missing repo flags come from the CI's variables and the checkout (docs/ci.md).
    auto resolved = resolveRepoState({repository, base_ref, change_ref, builds_on},
                                     processEnvironment(), options.working_dir);
    if (!resolved) return std::unexpected(usageError(resolved.error().context()));
    sources = registrationSources(*resolved);
    options.peer.repos.push_back(std::move(resolved->state));
  }
  schema::ParseOptions parse_options;
  if (!task_command.empty()) parse_options.task_command = task_command;
  auto loaded = schema::loadFile(schema_path, parse_options);
  if (!loaded) return std::unexpected(usageError(loaded.error().message()));
  if (print_registration) {
    sources.schema_path = schema_path;
    auto reg = buildRegistration(options.peer, "(new each run)", *loaded);
    std::fputs(formatRegistrationReport(reg, sources).c_str(), stdout);
    return std::unexpected(0);
  }
  return std::make_pair(std::move(options), std::move(*loaded));
}

}  // namespace td::worker
