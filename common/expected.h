// td::Expected<T, E>, td::Unexpected<E> and td::unexpected(e): std::expected and std::unexpected
// in every regular build. The clang libFuzzer build (fuzz/) defines TD_EXPECTED_STANDIN when its
// compiler cannot use libstdc++ 12's <expected> (clang < 16), and gets the stand-in of
// fuzz/compat/expected_standin.h instead, in namespace td::standin: nothing is added to std.
#pragma once

#include <type_traits>
#include <utility>

#if defined(TD_EXPECTED_STANDIN)
#include "common/expected.h"
#include "fuzz/compat/expected_standin.h"
namespace td {
template <typename T, typename E>
using Expected = standin::expected<T, E>;
template <typename E>
using Unexpected = standin::unexpected<E>;
}  // namespace td
#else
#include <expected>
namespace td {
template <typename T, typename E>
using Expected = std::expected<T, E>;
template <typename E>
using Unexpected = std::unexpected<E>;
}  // namespace td
#endif

namespace td {
// An error for an Expected: `return td::unexpected(error);` (deduces the error type, which
// alias templates cannot do on every compiler the project builds with).
template <typename E>
constexpr Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return Unexpected<std::decay_t<E>>(std::forward<E>(e));
}
}  // namespace td
