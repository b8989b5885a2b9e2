// A minimal stand-in for std::expected, in namespace td::standin, for clang 14 on libstdc++ 12:
// used ONLY by the clang libFuzzer build in fuzz/, which defines TD_EXPECTED_STANDIN when the
// real <expected> does not compile; common/expected.h then makes td::Expected and
// td::Unexpected these types. Nothing is added to namespace std.
//
// Why: libstdc++ 12's <expected> is guarded by __cpp_concepts >= 202002L, and clang 14 reports
// 201907L because it lacks P0848 (conditionally trivial special members); forcing the macro
// makes std::expected<T, E> with a non-trivial E unusable (its destructor is deleted). This file
// provides the subset the project uses: construction from a value or an unexpected, copy and
// move, has_value/operator bool, *, ->, value(), error(), value_or(), and expected<void, E>.
// The regular g++ build never sees this file.
#pragma once

#include <exception>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace td::standin {

template <typename E>
class unexpected {
 public:
  template <typename G = E>
    requires(!std::is_same_v<std::remove_cvref_t<G>, unexpected> && std::is_constructible_v<E, G>)
  constexpr explicit unexpected(G&& e) : error_(std::forward<G>(e)) {}
  constexpr const E& error() const& noexcept { return error_; }
  constexpr E& error() & noexcept { return error_; }
  constexpr E&& error() && noexcept { return std::move(error_); }

 private:
  E error_;
};
template <typename E>
unexpected(E) -> unexpected<E>;

struct unexpect_t {
  explicit unexpect_t() = default;
};
inline constexpr unexpect_t unexpect{};

template <typename E>
class bad_expected_access : public std::exception {
 public:
  explicit bad_expected_access(E e) : error_(std::move(e)) {}
  const char* what() const noexcept override { return "bad access to std::expected without value"; }
  const E& error() const& noexcept { return error_; }

 private:
  E error_;
};

template <typename T, typename E>
class expected {
 public:
  using value_type = T;
  using error_type = E;

  constexpr expected()
    requires std::is_default_constructible_v<T>
      : has_(true) {
    ::new (&value_) T();
  }
  template <typename U = T>
    requires(!std::is_same_v<std::remove_cvref_t<U>, expected> && std::is_constructible_v<T, U>)
  constexpr expected(U&& v) : has_(true) {
    ::new (&value_) T(std::forward<U>(v));
  }
  template <typename G>
  constexpr expected(const unexpected<G>& u) : has_(false) {
    ::new (&error_) E(u.error());
  }
  template <typename G>
  constexpr expected(unexpected<G>&& u) : has_(false) {
    ::new (&error_) E(std::move(u).error());
  }
  expected(const expected& o) : has_(o.has_) {
    if (has_) ::new (&value_) T(o.value_);
    else ::new (&error_) E(o.error_);
  }
  expected(expected&& o) noexcept(std::is_nothrow_move_constructible_v<T> &&
                                  std::is_nothrow_move_constructible_v<E>)
      : has_(o.has_) {
    if (has_) ::new (&value_) T(std::move(o.value_));
    else ::new (&error_) E(std::move(o.error_));
  }
  expected& operator=(const expected& o) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (has_) ::new (&value_) T(o.value_);
      else ::new (&error_) E(o.error_);
    }
    return *this;
  }
  expected& operator=(expected&& o) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (has_) ::new (&value_) T(std::move(o.value_));
      else ::new (&error_) E(std::move(o.error_));
    }
    return *this;
  }
  ~expected() { destroy(); }

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }
  constexpr T& operator*() & noexcept { return value_; }
  constexpr const T& operator*() const& noexcept { return value_; }
  constexpr T&& operator*() && noexcept { return std::move(value_); }
  constexpr T* operator->() noexcept { return std::addressof(value_); }
  constexpr const T* operator->() const noexcept { return std::addressof(value_); }
  T& value() & {
    if (!has_) throw bad_expected_access<E>(error_);
    return value_;
  }
  const T& value() const& {
    if (!has_) throw bad_expected_access<E>(error_);
    return value_;
  }
  T&& value() && {
    if (!has_) throw bad_expected_access<E>(error_);
    return std::move(value_);
  }
  constexpr E& error() & noexcept { return error_; }
  constexpr const E& error() const& noexcept { return error_; }
  constexpr E&& error() && noexcept { return std::move(error_); }
  template <typename U>
  T value_or(U&& fallback) const& {
    return has_ ? value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void destroy() {
    if (has_) value_.~T();
    else error_.~E();
  }
  bool has_;
  union {
    T value_;
    E error_;
  };
};

template <typename E>
class expected<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  constexpr expected() noexcept : has_(true) {}
  template <typename G>
  constexpr expected(const unexpected<G>& u) : has_(false) {
    ::new (&error_) E(u.error());
  }
  template <typename G>
  constexpr expected(unexpected<G>&& u) : has_(false) {
    ::new (&error_) E(std::move(u).error());
  }
  expected(const expected& o) : has_(o.has_) {
    if (!has_) ::new (&error_) E(o.error_);
  }
  expected(expected&& o) noexcept(std::is_nothrow_move_constructible_v<E>) : has_(o.has_) {
    if (!has_) ::new (&error_) E(std::move(o.error_));
  }
  expected& operator=(const expected& o) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (!has_) ::new (&error_) E(o.error_);
    }
    return *this;
  }
  expected& operator=(expected&& o) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (!has_) ::new (&error_) E(std::move(o.error_));
    }
    return *this;
  }
  ~expected() { destroy(); }

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }
  constexpr void operator*() const noexcept {}
  void value() const {
    if (!has_) throw bad_expected_access<E>(error_);
  }
  constexpr E& error() & noexcept { return error_; }
  constexpr const E& error() const& noexcept { return error_; }
  constexpr E&& error() && noexcept { return std::move(error_); }

 private:
  void destroy() {
    if (!has_) error_.~E();
  }
  bool has_;
  union {
    E error_;
  };
};

}  // namespace td::standin
