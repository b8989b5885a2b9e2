#include "worker/ci_options.h"

#include <fmt/format.h>

#include "worker/git_facts.h"

namespace td::worker {

namespace {

// Commits read to find the changes ahead, and changes ahead registered at most (the
// nearest ones; protocol::kMaxRefsPerRepo is the coordinator's limit).
constexpr std::size_t kMaxCommitsRead = 1000;
constexpr std::size_t kMaxChangesAhead = 64;

// Fills out.state's builds_on with the changes between the base and the change under test
// in the checkout at `dir` (docs/ci.md, "Changes ahead"), and says where they came from.
void detectChangesAhead(const std::filesystem::path& dir, const GitFacts& git,
                        RepoResolution& out) {
  const std::string& base = out.sources.base_ref.value;
  std::vector<std::string> bases;
  if (out.detected.base_commit.known()) bases.push_back(out.detected.base_commit.value);
  for (const std::string& form : {"refs/remotes/origin/" + base, "refs/heads/" + base, base}) {
    bases.push_back(form);
  }
  auto range = readCommitRange(dir, {out.sources.change_ref.value, "HEAD"}, bases,
                               kMaxCommitsRead);
  if (!range) {
    out.sources.builds_on_source = git.head ? "none: the base is not in the checkout" : "";
    if (git.head) {
      out.detected.notes.push_back(
          "base ref " + base + " is not a commit in the checkout (a shallow clone?), so no "
          "changes ahead were detected: fetch it (GitHub: fetch-depth: 0) or pass --builds-on");
    }
    return;
  }
  const ChangesAhead ahead = changesAhead(range->commits, range->tip, kMaxChangesAhead);
  for (const auto& ref : ahead.refs) out.state.add_builds_on(ref);
  const std::string base_name =
      out.detected.base_commit.known() && range->base == out.detected.base_commit.value
          ? range->base.substr(0, 12) + " (" + out.detected.base_commit.source + ")"
          : range->base;
  const char* tip_name = range->tip == out.sources.change_ref.value ? "the change" : "HEAD";
  out.sources.builds_on_source =
      range->commits.empty()
          ? fmt::format("git: no commits between {} and {}", base_name, tip_name)
          : fmt::format("git: {} commit{} between {} and {}, {} of them its own change{}",
                        range->commits.size(), range->commits.size() == 1 ? "" : "s", base_name,
                        tip_name, ahead.own,
                        out.detected.merge_queue ? " (merge queue: the entries ahead)" : "");
  if (ahead.truncated || !range->complete) {
    out.detected.notes.push_back(fmt::format(
        "more than {} changes between {} and the change: the nearest {} are registered; is "
        "{} the branch this change merges into? (--base-ref)",
        kMaxChangesAhead, range->base, ahead.refs.size(), base));
  }
}

}  // namespace

td::Result<RepoResolution> resolveRepoState(const RepoFlags& flags, const EnvMap& env,
                                            const std::filesystem::path& dir) {
  const bool flags_name_repo =
      !flags.repository.empty() && !flags.base_ref.empty() && !flags.change_ref.empty();
  GitFacts git;
  if (!flags_name_repo || flags.builds_on.empty()) git = readGitFacts(dir);
  RepoResolution out;
  // The checkout's facts only where the flags leave a value open (its notes would be noise).
  out.detected = detectRepo(env, flags_name_repo ? GitFacts{} : git);
  auto resolved = resolveRepo(flags.repository, flags.base_ref, flags.change_ref, out.detected);
  if (!resolved) return td::unexpected(resolved.error());
  out.sources = std::move(*resolved);
  out.state.set_repository(out.sources.repository.value);
  out.state.set_base_ref(out.sources.base_ref.value);
  out.state.set_change_ref(out.sources.change_ref.value);
  if (!flags.builds_on.empty()) {
    for (const auto& ref : flags.builds_on) out.state.add_builds_on(ref);
    out.sources.builds_on_source = "flag --builds-on";
  } else if (git.head) {
    detectChangesAhead(dir, git, out);
  }
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
    row(prefix + "builds_on", on, src ? src->builds_on_source : "");
  }
  row("peer_id", reg.peer_id(), "flag --peer-id");
  row("remote_cache_id", reg.remote_cache_id(), "flag --remote-cache-id");
  row("pipeline", reg.pipeline(), reg.pipeline().empty() ? "" : "flag --pipeline");
  row("complex", reg.complex() ? "true" : "false", "flag --complex or its default");
  row("schema_name", reg.schema_name(), "--schema " + sources.schema_path);
  row("schema_digest", reg.schema_digest(),
      fmt::format("{} step{}", reg.steps_size(), reg.steps_size() == 1 ? "" : "s"));
  row("compatibility_key", reg.compatibility_key(),
      "hash of schema, cache, repositories and base refs");
  for (const auto& note : sources.notes) out += "  note: " + note + "\n";
  return out;
}

}  // namespace td::worker
