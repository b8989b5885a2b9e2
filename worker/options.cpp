#include "worker/options.h"

#include <CLI/CLI.hpp>

#include <stdlib.h>

#include <cstdio>
#include <iostream>

#include "common/log.h"
#include "config/bounds.h"
#include "config/layers.h"
#include "config/version.h"
#include "kafka/client_settings.h"
#include "schema/repo_state.h"
#include "worker/ci_options.h"
#include "worker/git_facts.h"

namespace td::worker {

td::Expected<std::pair<WorkerOptions, schema::Schema>, int> parseCommandLine(int argc,
                                                                            char** argv) {
  CLI::App app{"td-worker: a CI peer that runs its share of a schema's steps"};
  WorkerOptions options;
  std::string schema_path;
  std::string repository, base_ref, change_ref, repo_state, pipeline_type;
  std::vector<std::string> builds_on, properties;
  std::string task_command, prefix = "td.", level = "info", log_format = "text";
  int join_timeout_s = 300;
  int broker_timeout_s = 120;
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
  // Deprecated: accepted so that existing jobs keep working, ignored, and not sent (what it
  // stood for is detected now: docs/ci.md, "Changes ahead").
  app.add_option("--pipeline-type", pipeline_type, "deprecated and ignored")
      ->check(CLI::IsMember({"independent", "dependent"}))
      ->group("");
  app.add_option("--prefetch", options.peer.prefetch,
                 "steps to take ahead: the coordinator may assign this many more while one runs, "
                 "so the next starts without waiting for a dispatch (they run one at a time)")
      ->check(config::between(0, 16))
      ->capture_default_str();
  app.add_flag("--complex", options.peer.complex,
               "never join an existing group (later peers may join this one's)");
  app.add_option("--task-command", task_command,
                 "command template for a task-sharding schema ({task} is replaced)");
  app.add_option("--workdir", options.working_dir, "directory steps run in (default: here)");
  app.add_option("--join-timeout", join_timeout_s,
                 "seconds to wait for a coordinator's reply (then exit 3)")
      ->check(config::between(1, 86400, config::Unit::kSeconds))->capture_default_str();
  app.add_option("--broker-timeout", broker_timeout_s,
                 "seconds without any answer from the broker (registering, acknowledging a "
                 "record, following the group) after which the worker gives up with exit 3")
      ->check(config::between(1, 86400, config::Unit::kSeconds))->capture_default_str();
  app.add_option("--topic-prefix", prefix, "prefix of every topic name")->capture_default_str();
  app.add_option("--log-cap", options.log_cap,
                 "bytes of each step attempt's output shipped to the logs topic (td.logs) for "
                 "td-audit logs, e.g. 64MiB, 512KiB; 0 = ship none")
      ->transform(CLI::AsSizeValue(false))
      ->default_str("64MiB");
  app.add_flag("--quiet-steps", quiet_steps, "do not copy steps' output to stderr");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text (human-readable) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  app.add_flag("--print-registration", print_registration,
               "print the registration and where each value came from, then exit 0 "
               "(no broker needed)");

  app.footer(
      "Exit codes:\n"
      "  0    the group completed (also after --help, --version, --print-config)\n"
      "  1    the group failed\n"
      "  2    usage, configuration or schema error; the coordinator rejected the "
      "registration; the broker refused the credentials or an ACL\n"
      "  3    infrastructure: the broker unreachable for --broker-timeout, or no coordinator "
      "reply within --join-timeout (a CI system may retry the job)\n"
      "  4    replaced: another td-worker registered with this --peer-id while this one ran\n"
      "  5    cancelled: an operator cancelled the group (td-ctl cancel); do not retry\n"
      "  130  interrupted by SIGINT/SIGTERM\n");
  config::addVersionFlag(app, "td-worker");

  // Everything a start checks before it connects, run by the layers for a start and for
  // --print-config alike (so --print-config exits 2 wherever a start would).
  RegistrationSources sources;
  std::optional<schema::Schema> loaded;
  config::Layers layers(app, "td-worker");   // --config, TD_* variables, --print-config
  layers.addCheck([&]() -> td::Status {
    if (options.bootstrap_servers.empty() && !print_registration) {
      return makeError(td::Errc::kInvalidArgument, "--bootstrap-server is required");
    }
    auto props = kafka::parseProperties(properties);
    if (!props) return makeError(td::Errc::kInvalidArgument, "-X: " + props.error().message());
    options.kafka = std::move(*props);
    // Each property as the clients will set it, on a real librdkafka configuration.
    const std::string client_id = "td-worker-" + options.peer.peer_id;
    for (const auto& settings :
         {kafka::producerSettings(options.bootstrap_servers, client_id, options.kafka),
          kafka::readerSettings(options.bootstrap_servers, client_id,
                                kafka::BrokerKind::kApacheKafka, options.kafka)}) {
      TD_RETURN_IF_ERROR(kafka::checkProperties(settings));
    }
    return {};
  });
  layers.addCheck([&]() -> td::Status {
    if (!repo_state.empty()) {
      auto repos = schema::loadRepoState(repo_state);
      if (!repos) return td::unexpected(repos.error());
      for (const auto& r : *repos) {
        td::v1::RepoState state;
        state.set_repository(redactCredentials(r.repository));   // never send a token
        state.set_base_ref(r.base_ref);
        state.set_change_ref(r.change_ref);
        for (const auto& ref : r.builds_on) state.add_builds_on(ref);
        options.peer.repos.push_back(std::move(state));
        const std::string from = "--repo-state " + repo_state;
        sources.repos.push_back({{state.repository(), from},
                                 {r.base_ref, from},
                                 {r.change_ref, from},
                                 r.builds_on.empty() ? std::string() : from});
        sources.ci_line = "not used (--repo-state gives every value)";
      }
    } else {
      // Missing repo flags come from the CI's variables and the checkout (docs/ci.md).
      auto resolved = resolveRepoState({repository, base_ref, change_ref, builds_on},
                                       processEnvironment(), options.working_dir);
      if (!resolved) return makeError(td::Errc::kInvalidArgument, resolved.error().context());
      sources = registrationSources(*resolved);
      options.peer.repos.push_back(std::move(resolved->state));
    }
    // The schema, loaded and validated (file:line:column on error).
    schema::ParseOptions parse_options;
    if (!task_command.empty()) parse_options.task_command = task_command;
    auto schema = schema::loadFile(schema_path, parse_options);
    if (!schema) return td::unexpected(schema.error());
    loaded = std::move(*schema);
    return {};
  });
  if (auto exit = layers.parse(argc, argv, config::processEnvironment(), std::cout, std::cerr)) {
    return td::unexpected(*exit);
  }
  // Steps inherit this environment; a secret meant for librdkafka is not theirs to read.
  for (const auto& name : layers.secretEnvironmentNames()) ::unsetenv(name.c_str());
  td::log::setFormat(log_format);
  (void)td::log::setLevel(level);   // one of --log-level's IsMember values
  options.topics = protocol::Topics(prefix);
  options.join_timeout = std::chrono::seconds(join_timeout_s);
  options.broker_timeout = std::chrono::seconds(broker_timeout_s);
  options.echo_output = !quiet_steps;
  if (!pipeline_type.empty()) {
    std::fputs("td-worker: warning: --pipeline-type is deprecated and ignored: changes ahead "
               "(a gate, a merge queue or train, a stack) are detected from the checkout "
               "(docs/ci.md, \"Changes ahead\")\n",
               stderr);
  }
  if (print_registration) {
    sources.schema_path = schema_path;
    auto reg = buildRegistration(options.peer, "(new each run)", *loaded);
    std::fputs(formatRegistrationReport(reg, sources).c_str(), stdout);
    return td::unexpected(0);
  }
  return std::make_pair(std::move(options), std::move(*loaded));
}

}  // namespace td::worker
