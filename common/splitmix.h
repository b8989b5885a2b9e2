// SplitMix64: a small seeded generator that gives the same sequence on every platform (the
// std distributions do not), for seeded tests and the simulation, whose failing seeds must
// replay exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "common/time.h"

namespace td {

class SplitMix64 {
 public:
  // `salt` keeps the sequences of different users of one seed apart.
  explicit SplitMix64(std::uint64_t seed, std::uint64_t salt = 0)
      : state_(seed * 0x9e3779b97f4a7c15ULL + salt) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // In [0, n); 0 when n is 0.
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }
  bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }
  // In [lo, hi].
  Millis between(Millis lo, Millis hi) {
    return lo + Millis(static_cast<std::int64_t>(
                    below(static_cast<std::uint64_t>((hi - lo).count()) + 1)));
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

 private:
  std::uint64_t state_;
};

}  // namespace td
