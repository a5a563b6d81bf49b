// The admin listener's bearer token: every admin endpoint but /healthz needs
// "Authorization: Bearer <token>". It lives in a file only its owner may read:
// admin.token_file when configured, else state_dir/admin.token, which the gateway generates at
// first start (32 random bytes as 64 hex characters) and reuses after. The token is never
// logged.
#pragma once

#include <string>
#include <string_view>

#include "proxy/config/config.h"

namespace mintgate::proxy {

// admin.token_file, or state_dir/admin.token when that is empty.
std::string AdminTokenPath(const Config& config);

// The token in `path`: its first line without the line end. Throws tls::LoadError naming the
// file when it cannot be read, is empty, holds anything but visible ASCII, is shorter than
// kMinAdminTokenLength or, with `check_mode`, is accessible by group or others (the message
// gives the chmod to run, as for key files).
std::string ReadAdminToken(const std::string& path, bool check_mode = true);
inline constexpr std::size_t kMinAdminTokenLength = 16;
inline constexpr std::size_t kMaxAdminTokenLength = 1024;

// 32 bytes from OpenSSL's CSPRNG as 64 lower-case hex characters.
std::string GenerateAdminToken();

struct AdminToken {
  std::string token;
  std::string path;
  bool created = false;  // generated just now
};

// The token the gateway serves with: a configured token_file must exist (it is never created);
// otherwise state_dir/admin.token is read, or created (mode 0600, O_EXCL, state_dir made 0700
// if needed) when it does not exist. Throws tls::LoadError.
AdminToken EnsureAdminToken(const Config& config);

// Whether `authorization`, an Authorization header's value, is "Bearer <token>" (the scheme in
// any case) for this `token`. The comparison takes the same time wherever the values differ.
// An empty `token` matches nothing.
bool BearerTokenMatches(std::string_view authorization, std::string_view token);

}  // namespace mintgate::proxy
