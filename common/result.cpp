#include "common/result.h"

namespace td {

std::string Error::message() const {
  if (context_.empty()) return code_.message();
  return context_;
}

namespace {
class CommonCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "td"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kInvalidArgument: return "invalid argument";
      case Errc::kNotFound: return "not found";
      case Errc::kIo: return "i/o error";
      case Errc::kTimeout: return "timed out";
      case Errc::kUnavailable: return "unavailable";
      case Errc::kInternal: return "internal error";
    }
    return "unknown error";
  }
};
}  // namespace

const std::error_category& commonCategory() {
  static const CommonCategory category;
  return category;
}

}  // namespace td
