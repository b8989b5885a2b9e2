// td-sim: runs seeded simulations of whole coordinators and workers (simulation/run.h) and
// prints one line at the end:
//   simulation: N runs, M crashes, K rebalances, V violations
// A violation prints its seed first; `td-sim --seed S --runs 1 --verbose` replays it exactly.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/log.h"
#include "simulation/run.h"

namespace {

struct Totals {
  std::uint64_t runs = 0, crashes = 0, rebalances = 0, violations = 0, failed_seeds = 0,
                speculative = 0;
};

// Runs seeds first, first + step, first + 2 step, ... below first + count.
Totals runSeeds(std::uint64_t first, std::uint64_t count, std::uint64_t step,
                const td::sim::RunOptions& base, bool stop_at_first) {
  Totals t;
  for (std::uint64_t seed = first; seed < first + count; seed += step) {
    td::sim::RunOptions o = base;
    o.seed = seed;
    const auto r = td::sim::runOnce(o);
    ++t.runs;
    t.crashes += static_cast<std::uint64_t>(r.crashes);
    t.rebalances += r.rebalances;
    t.speculative += r.speculative;
    t.violations += r.violations.size();
    if (!r.violations.empty()) {
      ++t.failed_seeds;
      std::string text = fmt::format("seed {}: {} violations (replay: td-sim --seed {} --runs 1 "
                                     "--verbose)\n",
                                     seed, r.violations.size(), seed);
      for (std::size_t i = 0; i < r.violations.size() && i < 10; ++i) {
        text += "  " + r.violations[i] + "\n";
      }
      std::fputs(text.c_str(), stdout);
      std::fflush(stdout);
      if (stop_at_first) break;
    }
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"td-sim: deterministic simulation of Task Director coordinators and workers"};
  std::uint64_t seed = 1;
  std::uint64_t runs = 1000;
  int jobs = 1;
  bool verbose = false;
  bool first_failure = false;
  bool expect_violations = false;
  std::string bug;
  app.add_option("--seed", seed, "first seed")->capture_default_str();
  app.add_option("--runs", runs, "seeded runs (seeds seed .. seed+runs-1)")->capture_default_str();
  app.add_option("--jobs", jobs, "processes to spread the runs over")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_flag("--verbose", verbose, "each run's story and the coordinators' logs on stderr");
  app.add_flag("--stop-at-first", first_failure, "stop at the first seed with a violation");
  app.add_flag("--expect-violations", expect_violations,
               "exit 0 only if some run has a violation (with --bug: the checks catch it)");
  app.add_option("--bug", bug,
                 "re-introduce a fixed bug in the simulated broker: stale-generation-commit")
      ->check(CLI::IsMember({"stale-generation-commit"}));
  CLI11_PARSE(app, argc, argv);

  td::log::setLevel(verbose ? (std::getenv("TD_SIM_DEBUG") != nullptr ? "debug" : "info") : "off");
  td::sim::RunOptions base;
  base.verbose = verbose;
  base.bug_stale_generation_commit = bug == "stale-generation-commit";
  const auto started = std::chrono::steady_clock::now();

  Totals total;
  if (jobs == 1) {
    total = runSeeds(seed, runs, 1, base, first_failure);
  } else {
    // Each child runs every jobs-th seed and writes its totals to a pipe.
    std::vector<std::pair<pid_t, int>> children;
    for (int j = 0; j < jobs; ++j) {
      int fds[2];
      if (pipe(fds) != 0) return 2;
      const pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        const auto t = runSeeds(seed + static_cast<std::uint64_t>(j), runs - std::min<std::uint64_t>(runs, j),
                                static_cast<std::uint64_t>(jobs), base, first_failure);
        const std::string line = fmt::format("{} {} {} {} {} {}\n", t.runs, t.crashes,
                                             t.rebalances, t.violations, t.failed_seeds,
                                             t.speculative);
        if (write(fds[1], line.data(), line.size()) < 0) _exit(2);
        _exit(0);
      }
      close(fds[1]);
      children.emplace_back(pid, fds[0]);
    }
    for (auto [pid, fd] : children) {
      char buffer[256] = {};
      const auto n = read(fd, buffer, sizeof(buffer) - 1);
      close(fd);
      int status = 0;
      waitpid(pid, &status, 0);
      Totals t;
      if (n <= 0 || std::sscanf(buffer, "%lu %lu %lu %lu %lu %lu", &t.runs, &t.crashes,
                                &t.rebalances, &t.violations, &t.failed_seeds,
                                &t.speculative) != 6) {
        std::fprintf(stderr, "td-sim: a child process died (status %d)\n", status);
        return 2;
      }
      total.runs += t.runs;
      total.crashes += t.crashes;
      total.rebalances += t.rebalances;
      total.violations += t.violations;
      total.failed_seeds += t.failed_seeds;
      total.speculative += t.speculative;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "td-sim: %.1f s, %lu steps raced by a speculative attempt\n", seconds,
               total.speculative);
  std::printf("simulation: %lu runs, %lu crashes, %lu rebalances, %lu violations\n", total.runs,
              total.crashes, total.rebalances, total.violations);
  if (expect_violations) return total.violations > 0 ? 0 : 1;
  return total.violations == 0 ? 0 : 1;
}
