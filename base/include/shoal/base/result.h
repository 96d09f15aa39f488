// Result<T> and Status: how shoal reports expected failures across library
// boundaries (bad input, missing file, failed verification) without throwing.
//
// It lives in base/, the root of shoal's dependency graph:
// every other library links it, so this is the one place all of them can use.
//
// An Error carries a category and a message that names the thing that was
// wrong (file, field, peer, phase) and what was wrong with it. Reading the
// value of a failed Result is a programming error and throws std::logic_error.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace shoal {

enum class ErrorCode {
  invalid_argument,  // a caller passed a value outside the documented range
  not_found,         // a file, key or entry does not exist
  io,                // the operating system refused a read or write
  corrupt,           // stored or received bytes do not parse
  permission,        // a file's owner or mode is unsafe, or access is denied
  verification,      // a signature, tag or hash does not match
  unsupported,       // a version or feature this build does not handle
};

const char* to_string(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;

  // "corrupt: key file 'a.key' line 3: ..." — for logs and command output.
  std::string describe() const { return std::string(to_string(code)) + ": " + message; }
};

inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { check_ok(); return std::get<0>(state_); }
  const T& value() const& { check_ok(); return std::get<0>(state_); }
  T&& value() && { check_ok(); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !ok().
  const E& error() const {
    if (ok()) throw std::logic_error("Result::error() called on a success");
    return std::get<1>(state_);
  }

 private:
  void check_ok() const {
    if (!ok()) throw std::logic_error("Result::value() called on a failure: " + describe_error());
  }
  std::string describe_error() const {
    if constexpr (requires(const E& e) { e.describe(); }) {
      return std::get<1>(state_).describe();
    } else {
      return "(error)";
    }
  }

  std::variant<T, E> state_;
};

template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::move(error)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }

  // REQUIRES: !ok().
  const E& error() const {
    if (ok()) throw std::logic_error("Status::error() called on a success");
    return error_;
  }

 private:
  E error_{};
  bool failed_ = false;
};

using Status = Result<void>;

inline Status ok_status() { return Status(); }

}  // namespace shoal
