// Errors as values: td::Error (an std::error_code plus a context string) and td::Result<T>.
// Errors that cross a module boundary travel as these; exceptions never do.
#pragma once

#include <string>
#include <system_error>
#include <utility>

#include "common/expected.h"

namespace td {

// An error: a code from some module's category plus a human context ("schema.yaml:3:5: ...").
class [[nodiscard]] Error {
 public:
  Error(std::error_code code, std::string context) : code_(code), context_(std::move(context)) {}

  const std::error_code& code() const { return code_; }
  const std::string& context() const { return context_; }
  // "context (category: message)" or just the message when there is no context.
  std::string message() const;

 private:
  std::error_code code_;
  std::string context_;
};

template <typename T>
using Result = td::Expected<T, Error>;
using Status = td::Expected<void, Error>;

inline td::Unexpected<Error> makeError(std::error_code code, std::string context) {
  return td::Unexpected<Error>(Error(code, std::move(context)));
}

// Generic errors used across modules; each module may add its own category.
enum class Errc {
  kInvalidArgument = 1,
  kNotFound,
  kIo,
  kTimeout,
  kUnavailable,
  kInternal,
};
const std::error_category& commonCategory();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), commonCategory()}; }

}  // namespace td

template <>
struct std::is_error_code_enum<td::Errc> : std::true_type {};

// Propagates the error of a Result/Status expression out of the enclosing function.
#define TD_RETURN_IF_ERROR(expr)                                \
  do {                                                          \
    auto td_status_ = (expr);                                   \
    if (!td_status_) return td::unexpected(td_status_.error()); \
  } while (0)
