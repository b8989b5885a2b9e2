// fuzz_smoke: runs every fuzz entry point over its seeds and a bounded, reproducible set of
// mutations (byte flips, interesting bytes, truncations, insertions, erasures, chunk copies,
// header changes, splices of two seeds). Fails on a crash (naturally), on any entry point
// returning non-zero, and when the mutations never get past decoding (a harness that stopped
// reaching the core proves nothing).
//
// Usage: td_fuzz_smoke [MUTATIONS_PER_TARGET [SEED]]   (defaults 20000 and 1)
// A failure prints the target, the input's index and its bytes in hex; rerun with the same
// arguments to reproduce (the long-lived Core state depends on the inputs before it).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz/seeds.h"
#include "fuzz/targets.h"

namespace {

// splitmix64: small, fast and the same everywhere (std distributions are not).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }

 private:
  std::uint64_t state_;
};

std::string mutate(const std::vector<std::string>& seeds, Rng& rng, std::size_t header_bytes) {
  std::string s = seeds[rng.below(seeds.size())];
  const std::size_t rounds = 1 + rng.below(4);
  for (std::size_t r = 0; r < rounds; ++r) {
    switch (rng.below(9)) {
      case 0:  // flip a bit
        if (!s.empty()) s[rng.below(s.size())] ^= static_cast<char>(1u << rng.below(8));
        break;
      case 1: {  // an interesting byte
        static constexpr unsigned char kBytes[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0x08,
                                                   0x0a, 0x10, 0x12, 0x1a, 0x22, 0x3a, '{',
                                                   '[',  ':',  '-',  '\n', '&', '*'};
        if (!s.empty()) s[rng.below(s.size())] = static_cast<char>(kBytes[rng.below(sizeof kBytes)]);
        break;
      }
      case 2:  // truncate
        s.resize(rng.below(s.size() + 1));
        break;
      case 3: {  // insert random bytes
        std::string bytes(1 + rng.below(8), '\0');
        for (char& c : bytes) c = static_cast<char>(rng.next());
        s.insert(rng.below(s.size() + 1), bytes);
        break;
      }
      case 4:  // erase a range
        if (!s.empty()) {
          const std::size_t at = rng.below(s.size());
          s.erase(at, 1 + rng.below(16));
        }
        break;
      case 5:  // copy a chunk elsewhere (repeats fields, nests YAML)
        if (!s.empty()) {
          const std::size_t from = rng.below(s.size());
          const std::string chunk = s.substr(from, 1 + rng.below(32));
          s.insert(rng.below(s.size() + 1), chunk);
        }
        break;
      case 6:  // steer the header (flags, picks, time) of the record targets
        if (header_bytes > 0 && s.size() >= header_bytes) {
          s[rng.below(header_bytes)] = static_cast<char>(rng.next());
        }
        break;
      case 7: {  // splice: the front of this input with the back of another seed
        const std::string& other = seeds[rng.below(seeds.size())];
        s = s.substr(0, rng.below(s.size() + 1)) + other.substr(rng.below(other.size() + 1));
        break;
      }
      default: {  // append a whole other seed's record (concatenated protobuf merges fields)
        const std::string& other = seeds[rng.below(seeds.size())];
        s += other.substr(std::min(header_bytes, other.size()));
        break;
      }
    }
  }
  return s;
}

std::string hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

struct Target {
  const char* name;
  int (*entry)(const std::uint8_t*, std::size_t);
  std::vector<std::string> seeds;
  std::size_t header_bytes;
  bool reaches_core;  // record targets: decoded inputs must produce group events
};

}  // namespace

int main(int argc, char** argv) {
  const long mutations = argc > 1 ? std::atol(argv[1]) : 20000;
  const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  td::fuzz::quietLogs();
  const std::vector<Target> targets = {
      {"registration", td::fuzz::fuzzRegistrationRecord, td::fuzz::registrationSeeds(),
       td::fuzz::kRecordHeaderBytes, true},
      {"completion", td::fuzz::fuzzCompletionRecord, td::fuzz::completionSeeds(),
       td::fuzz::kRecordHeaderBytes, true},
      {"schema", td::fuzz::fuzzSchema, td::fuzz::schemaSeeds(), 1, false},
      {"state", td::fuzz::fuzzStateRecord, td::fuzz::stateSeeds(), 1, true},
  };
  int failures = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t t = 0; t < targets.size(); ++t) {
    const Target& target = targets[t];
    const td::fuzz::Counters before = td::fuzz::countersForTest();
    const auto target_start = std::chrono::steady_clock::now();
    Rng rng(seed * 1000003 + t);
    auto runOne = [&](const std::string& input, long index) {
      const int rc = target.entry(reinterpret_cast<const std::uint8_t*>(input.data()),
                                  input.size());
      if (rc != 0) {
        ++failures;
        std::fprintf(stderr, "FAIL target=%s input=%ld seed=%llu rc=%d bytes=%s\n", target.name,
                     index, static_cast<unsigned long long>(seed), rc, hex(input).c_str());
      }
    };
    for (std::size_t i = 0; i < target.seeds.size(); ++i) {
      runOne(target.seeds[i], -1 - static_cast<long>(i));
    }
    for (long i = 0; i < mutations; ++i) runOne(mutate(target.seeds, rng, target.header_bytes), i);

    const td::fuzz::Counters& after = td::fuzz::countersForTest();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - target_start).count();
    std::printf("%-12s inputs=%llu decoded=%llu applied=%llu dead_letters=%llu parsed=%llu "
                "time=%lldms\n",
                target.name, static_cast<unsigned long long>(after.inputs - before.inputs),
                static_cast<unsigned long long>(after.decoded - before.decoded),
                static_cast<unsigned long long>(after.applied - before.applied),
                static_cast<unsigned long long>(after.dead_letters - before.dead_letters),
                static_cast<unsigned long long>(after.schemas_parsed - before.schemas_parsed),
                static_cast<long long>(ms));
    const bool reached = target.reaches_core ? after.applied > before.applied
                                             : after.schemas_parsed > before.schemas_parsed;
    if (!reached) {
      ++failures;
      std::fprintf(stderr, "FAIL target=%s: no input got past decoding/parsing\n", target.name);
    }
  }
  const auto total = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz_smoke: %d failure(s) in %lld ms\n", failures, static_cast<long long>(total));
  return failures == 0 ? 0 : 1;
}
