#include "proxy/config/admin_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "tls/ca_generator.h"
#include "tls/cert_loader.h"
#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

using tls::LoadError;

// Reads at most a token's worth: a wrong path (a log, a device) fails fast.
std::string ReadSmallFile(const std::string& path) {
  // O_NONBLOCK: a FIFO in its place must not hang the start.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw LoadError(path, std::string("cannot read: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    throw LoadError(path, "cannot read: not a regular file");
  }
  std::string data;
  char buffer[1024];
  while (data.size() <= kMaxAdminTokenLength + 2) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw LoadError(path, std::string("cannot read: ") + std::strerror(errno));
    if (n == 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::string AdminTokenPath(const Config& config) {
  if (!config.admin.token_file.empty()) return config.admin.token_file;
  const std::string& dir = config.server.state_dir;
  return (!dir.empty() && dir.back() == '/' ? dir : dir + "/") + "admin.token";
}

std::string ReadAdminToken(const std::string& path, bool check_mode) {
  if (check_mode) tls::CheckPrivateFileMode(path, "admin token file");
  std::string data = ReadSmallFile(path);
  std::string token = data.substr(0, data.find('\n'));
  OPENSSL_cleanse(data.data(), data.size());
  while (!token.empty() && (token.back() == '\r' || IsSpace(token.back()))) token.pop_back();
  std::size_t lead = 0;
  while (lead < token.size() && IsSpace(token[lead])) ++lead;
  token.erase(0, lead);
  if (token.empty()) {
    throw LoadError(path, "the admin token file is empty (put a token on its first line)");
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      OPENSSL_cleanse(token.data(), token.size());
      throw LoadError(path,
                      "the admin token must be visible ASCII characters only (no spaces), "
                      "e.g. from: openssl rand -hex 32");
    }
  }
  if (token.size() < kMinAdminTokenLength || token.size() > kMaxAdminTokenLength) {
    OPENSSL_cleanse(token.data(), token.size());
    throw LoadError(path, "the admin token must have " + std::to_string(kMinAdminTokenLength) +
                              " to " + std::to_string(kMaxAdminTokenLength) +
                              " characters, e.g. from: openssl rand -hex 32");
  }
  return token;
}

std::string GenerateAdminToken() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw LoadError("", tls::WithOpenSslErrors("cannot generate the admin token"));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += kHex[b >> 4];
    token += kHex[b & 15];
  }
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return token;
}

AdminToken EnsureAdminToken(const Config& config) {
  AdminToken result;
  result.path = AdminTokenPath(config);
  if (config.admin.token_file.empty()) {
    struct stat st {};
    if (::lstat(result.path.c_str(), &st) != 0 && errno == ENOENT) {
      tls::MakeDirectories(config.server.state_dir);
      std::string token = GenerateAdminToken();
      try {
        tls::WriteNewFile(result.path, token + "\n", 0600);
        result.token = std::move(token);
        result.created = true;
        return result;
      } catch (const LoadError&) {
        OPENSSL_cleanse(token.data(), token.size());
        // Another process made it in between: use that one, as if it had been there.
        if (::lstat(result.path.c_str(), &st) != 0) throw;
      }
    }
  }
  result.token = ReadAdminToken(result.path);
  return result;
}

bool BearerTokenMatches(std::string_view authorization, std::string_view token) {
  if (token.empty()) return false;
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
  }
  std::string_view given = authorization.substr(kScheme.size());
  if (!IsSpace(given.front())) return false;
  while (!given.empty() && IsSpace(given.front())) given.remove_prefix(1);
  while (!given.empty() && IsSpace(given.back())) given.remove_suffix(1);
  // The length is no secret (a generated token always has 64 characters); the bytes are.
  return given.size() == token.size() &&
         CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

}  // namespace mintgate::proxy
