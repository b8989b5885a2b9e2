// Writes the seed corpora of the fuzz targets (fuzz/seeds.cpp) into DIR/registration,
// DIR/completion, DIR/schema and DIR/state, one file per seed, for the libFuzzer binaries:
//   td_fuzz_make_corpus corpus && td_fuzz_registration corpus/registration
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>
#include <string>
#include <vector>

#include "fuzz/seeds.h"
#include "fuzz/targets.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root(argv[1]);
  const std::vector<std::pair<std::string, std::vector<std::string>>> sets = {
      {"registration", td::fuzz::registrationSeeds()},
      {"completion", td::fuzz::completionSeeds()},
      {"schema", td::fuzz::schemaSeeds()},
      {"state", td::fuzz::stateSeeds()},
  };
  for (const auto& [name, seeds] : sets) {
    std::filesystem::create_directories(root / name);
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      const auto path = root / name / ("seed-" + std::to_string(i));
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(seeds[i].data(), static_cast<std::streamsize>(seeds[i].size()));
      if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
    }
    std::printf("%s: %zu seeds\n", (root / name).c_str(), seeds.size());
  }
  return 0;
}
