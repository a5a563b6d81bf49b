// Errors of the tls layer. Loading code throws LoadError (exceptions are fine while
// loading configuration); the data path returns Result<T> and never throws.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace mintgate::tls {

// Drains OpenSSL's thread-local error queue into one human-readable string
// ("" when the queue is empty). Call after every failed OpenSSL call.
std::string DrainOpenSslErrors();

// Formats `what` plus whatever OpenSSL reported, e.g. "signing failed: ...".
std::string WithOpenSslErrors(std::string what);

// A configuration or file problem, always naming the file it concerns.
class LoadError : public std::runtime_error {
 public:
  LoadError(std::string file, std::string reason)
      : std::runtime_error(file.empty() ? reason : file + ": " + reason),
        file_(std::move(file)),
        reason_(std::move(reason)) {}
  const std::string& file() const { return file_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string file_;
  std::string reason_;
};

struct Error {
  std::string message;
};

// A value or an Error, for code that runs on the data path.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(std::move(e)) {}      // NOLINT: implicit by design
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, Error> v_;
};

}  // namespace mintgate::tls
