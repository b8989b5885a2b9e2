#include "worker/ci_options.h"

#include <fmt/format.h>

#include "worker/git_facts.h"

namespace td::worker {

td::Result<RepoResolution> resolveRepoState(const RepoFlags& flags, const EnvMap& env,
                                            const std::filesystem::path& dir) {
  const bool complete =
      !flags.repository.empty() && !flags.base_ref.empty() && !flags.change_ref.empty();
  GitFacts git;
  if (!complete) git = readGitFacts(dir);
  RepoResolution out;
  out.detected = detectRepo(env, git);
  auto resolved = resolveRepo(flags.repository, flags.base_ref, flags.change_ref, out.detected);
  if (!resolved) return std::unexpected(resolved.error());
  out.sources = std::move(*resolved);
  out.state.set_repository(out.sources.repository.value);
  out.state.set_base_ref(out.sources.base_ref.value);
  out.state.set_change_ref(out.sources.change_ref.value);
  for (const auto& ref : flags.builds_on) out.state.add_builds_on(ref);
  return out;
}

RegistrationSources registrationSources(const RepoResolution& resolution) {
  RegistrationSources out;
  out.ci_line = resolution.detected.ci;
  if (!resolution.detected.build_kind.empty()) {
    out.ci_line += " (" + resolution.detected.build_kind + ")";
  }
  out.repos.push_back(resolution.sources);
  out.notes = resolution.detected.notes;
  return out;
}

std::string formatRegistrationReport(const td::v1::PeerRegistered& reg,
                                     const RegistrationSources& sources) {
  std::string out = "td-worker registration (--print-registration: nothing is sent)\n";
  out += "  ci: " + (sources.ci_line.empty() ? std::string("none detected") : sources.ci_line) +
         "\n";
  auto row = [&](const std::string& field, const std::string& value, const std::string& source) {
    std::string line = fmt::format("  {:<20} {:<44} {}", field, value.empty() ? "-" : value, source);
    while (line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  row("field", "value", "source");
  for (int i = 0; i < reg.repos_size(); ++i) {
    const auto& repo = reg.repos(i);
    const ResolvedRepo* src =
        i < static_cast<int>(sources.repos.size()) ? &sources.repos[static_cast<std::size_t>(i)]
                                                   : nullptr;
    const std::string prefix = reg.repos_size() > 1 ? fmt::format("repos[{}].", i) : "";
    row(prefix + "repository", repo.repository(), src ? src->repository.source : "");
    row(prefix + "base_ref", repo.base_ref(), src ? src->base_ref.source : "");
    row(prefix + "change_ref", repo.change_ref(), src ? src->change_ref.source : "");
    std::string on;
    for (const auto& ref : repo.builds_on()) on += (on.empty() ? "" : ",") + ref;
    std::string on_source;
    if (!on.empty() && src != nullptr) {
      const bool from_file = src->repository.source.rfind("--repo-state", 0) == 0;
      on_source = from_file ? src->repository.source : "flag --builds-on";
    }
    row(prefix + "builds_on", on, on_source);
  }
  row("peer_id", reg.peer_id(), "flag --peer-id");
  row("remote_cache_id", reg.remote_cache_id(), "flag --remote-cache-id");
  row("pipeline", reg.pipeline(), reg.pipeline().empty() ? "" : "flag --pipeline");
  row("pipeline_type",
      reg.pipeline_type() == td::v1::PIPELINE_TYPE_DEPENDENT ? "dependent" : "independent",
      "flag --pipeline-type or its default");
  row("complex", reg.complex() ? "true" : "false", "flag --complex or its default");
  row("schema_name", reg.schema_name(), "--schema " + sources.schema_path);
  row("schema_digest", reg.schema_digest(), fmt::format("{} steps", reg.steps_size()));
  row("compatibility_key", reg.compatibility_key(),
      "hash of schema, cache, repositories and base refs");
  for (const auto& note : sources.notes) out += "  note: " + note + "\n";
  return out;
}

}  // namespace td::worker
