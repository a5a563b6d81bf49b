// Basic credentials against a local htpasswd file ("user:hash" lines), verified with libcrypt:
// bcrypt ($2y$, $2b$, $2a$), SHA-512-crypt ($6$) and SHA-256-crypt ($5$). Weak schemes (MD5-crypt
// $1$ and Apache's $apr1$, {SHA}, DES crypt, plaintext) are refused unless allow_weak is set
// (and plaintext never). The file is read again when it changes (checked at most once a
// second), so an administrator's htpasswd edit applies without a reload. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mintgate::proxy::auth {

enum class CheckResult {
  kOk,
  kUnknownUser,    // no such user here (another source may know it)
  kWrongPassword,  // the user exists and the password does not match
  kRefusedScheme,  // the user's hash uses a scheme that is not allowed
  kUnavailable,    // the file (or directory) could not be read or reached
};
const char* ToString(CheckResult result);

class HtpasswdFile {
 public:
  HtpasswdFile(std::string path, bool allow_weak);
  // Reads the file now: "" when it is usable, else why not (for `mintgate check` and start).
  // Lines it cannot use are reported through *warnings (optional), one each with its number.
  std::string Load(std::vector<std::string>* warnings = nullptr);
  // Never logs or keeps the password. Comparisons of hashes are constant-time.
  CheckResult Verify(std::string_view user, std::string_view password);
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::string path_;
  bool allow_weak_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mintgate::proxy::auth
