// libFuzzer driver: one binary per entry point, chosen at compile time with TD_FUZZ_ENTRY
// (fuzz/CMakeLists.txt builds td_fuzz_registration, td_fuzz_completion and td_fuzz_schema).
// A non-zero return from the entry point is a broken invariant: abort so libFuzzer saves the
// input as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fuzz/targets.h"

#ifndef TD_FUZZ_ENTRY
#error "define TD_FUZZ_ENTRY to one of the td::fuzz entry points"
#endif

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  td::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (td::fuzz::TD_FUZZ_ENTRY(data, size) != 0) std::abort();
  return 0;
}
