#include "proxy/auth/htpasswd.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <map>
#include <sstream>

#include "proxy/auth/base64.h"
#include "proxy/auth/watched_file.h"

namespace mintgate::proxy::auth {
namespace {

enum class Scheme { kStrong, kMd5Crypt, kApr1, kSha1, kDes, kPlain };

Scheme SchemeOf(std::string_view hash) {
  auto starts = [&](std::string_view p) { return hash.substr(0, p.size()) == p; };
  if (starts("$2y$") || starts("$2b$") || starts("$2a$") || starts("$6$") || starts("$5$")) {
    return Scheme::kStrong;
  }
  if (starts("$1$")) return Scheme::kMd5Crypt;
  if (starts("$apr1$")) return Scheme::kApr1;
  if (starts("{SHA}")) return Scheme::kSha1;
  if (hash.size() == 13 &&
      hash.find_first_not_of("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
          std::string_view::npos) {
    return Scheme::kDes;
  }
  return Scheme::kPlain;
}

const char* SchemeName(Scheme s) {
  switch (s) {
    case Scheme::kStrong:
      return "bcrypt or SHA-crypt";
    case Scheme::kMd5Crypt:
      return "MD5-crypt ($1$)";
    case Scheme::kApr1:
      return "Apache MD5 ($apr1$)";
    case Scheme::kSha1:
      return "unsalted SHA-1 ({SHA})";
    case Scheme::kDes:
      return "DES crypt";
    case Scheme::kPlain:
      return "plain text";
  }
  return "?";
}

std::string Md5(std::string_view a) {
  unsigned char digest[16];
  unsigned int size = 0;
  EVP_Digest(a.data(), a.size(), digest, &size, EVP_md5(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), size);
}

// Apache's $apr1$: MD5-crypt (Poul-Henning Kamp's algorithm) with the magic "$apr1$".
std::string Apr1(std::string_view password, std::string_view hash) {
  const std::string_view magic = "$apr1$";
  std::string_view salt = hash.substr(magic.size());
  salt = salt.substr(0, std::min<std::size_t>(salt.find('$'), 8));
  std::string alt = Md5(std::string(password) + std::string(salt) + std::string(password));
  std::string ctx = std::string(password) + std::string(magic) + std::string(salt);
  for (std::size_t i = password.size(); i > 0; i -= std::min<std::size_t>(i, 16)) {
    ctx += alt.substr(0, std::min<std::size_t>(i, 16));
  }
  for (std::size_t i = password.size(); i > 0; i >>= 1) {
    ctx += (i & 1) ? '\0' : password.empty() ? '\0' : password[0];
  }
  std::string result = Md5(ctx);
  for (int i = 0; i < 1000; ++i) {
    std::string round;
    round += (i & 1) ? std::string(password) : result;
    if (i % 3) round += salt;
    if (i % 7) round += password;
    round += (i & 1) ? result : std::string(password);
    result = Md5(round);
  }
  static constexpr char kItoa64[] =
      "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out = std::string(magic) + std::string(salt) + "$";
  auto to64 = [&](unsigned v, int n) {
    while (n-- > 0) {
      out += kItoa64[v & 0x3f];
      v >>= 6;
    }
  };
  auto b = [&](int i) { return static_cast<unsigned>(static_cast<unsigned char>(result[i])); };
  to64((b(0) << 16) | (b(6) << 8) | b(12), 4);
  to64((b(1) << 16) | (b(7) << 8) | b(13), 4);
  to64((b(2) << 16) | (b(8) << 8) | b(14), 4);
  to64((b(3) << 16) | (b(9) << 8) | b(15), 4);
  to64((b(4) << 16) | (b(10) << 8) | b(5), 4);
  to64(b(11), 2);
  return out;
}

// crypt(3) of `password` with the settings in `hash`; "" when libcrypt refuses.
std::string Crypt(std::string_view password, const std::string& hash) {
  crypt_data data{};
  const std::string pw(password);
  const char* out = crypt_rn(pw.c_str(), hash.c_str(), &data, sizeof data);
  std::string result = out != nullptr && out[0] != '*' ? out : "";
  OPENSSL_cleanse(&data, sizeof data);
  return result;
}

bool Same(const std::string& a, const std::string& b) {
  return !a.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

using Entries = std::map<std::string, std::string, std::less<>>;

Entries ParseHtpasswd(const std::string& text, std::vector<std::string>* warnings) {
  Entries out;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      warnings->push_back("line " + std::to_string(number) + ": expected \"user:hash\"; skipped");
      continue;
    }
    std::string user = line.substr(0, colon);
    std::string hash = line.substr(colon + 1);
    // Apache's format allows a trailing ":comment".
    if (SchemeOf(hash) != Scheme::kPlain) hash = hash.substr(0, hash.find(':'));
    const Scheme scheme = SchemeOf(hash);
    if (scheme == Scheme::kPlain) {
      warnings->push_back("line " + std::to_string(number) + " (" + user +
                          "): not a password hash (plain text is never accepted)");
    } else if (scheme != Scheme::kStrong) {
      warnings->push_back("line " + std::to_string(number) + " (" + user +
                          "): " + SchemeName(scheme) +
                          " is weak and refused unless auth.allow_weak_hashes = true; re-create "
                          "it with htpasswd -B");
    }
    if (!out.emplace(std::move(user), std::move(hash)).second) {
      warnings->push_back("line " + std::to_string(number) +
                          ": a user listed again; the first "
                          "entry counts");
    }
  }
  return out;
}

}  // namespace

const char* ToString(CheckResult result) {
  switch (result) {
    case CheckResult::kOk:
      return "ok";
    case CheckResult::kUnknownUser:
      return "unknown_user";
    case CheckResult::kWrongPassword:
      return "wrong_password";
    case CheckResult::kRefusedScheme:
      return "refused_scheme";
    case CheckResult::kUnavailable:
      return "unavailable";
  }
  return "?";
}

struct HtpasswdFile::Impl {
  explicit Impl(const std::string& path) : file(path, "auth.htpasswd", ParseHtpasswd, true) {
    // What an unknown user's check costs: a bcrypt of the cost htpasswd -B uses.
    unsigned char random[16];
    RAND_bytes(random, sizeof random);
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$2b$", 5, reinterpret_cast<const char*>(random), sizeof random, salt,
                         sizeof salt) != nullptr) {
      dummy = Crypt("no such user", salt);
    }
  }
  WatchedFile<Entries> file;
  std::string dummy;
};

HtpasswdFile::HtpasswdFile(std::string path, bool allow_weak)
    : path_(std::move(path)), allow_weak_(allow_weak), impl_(std::make_shared<Impl>(path_)) {}

std::string HtpasswdFile::Load(std::vector<std::string>* warnings) {
  return impl_->file.Load(warnings);
}

CheckResult HtpasswdFile::Verify(std::string_view user, std::string_view password) {
  std::shared_ptr<const Entries> entries = impl_->file.Get();
  if (!entries) return CheckResult::kUnavailable;
  const auto it = entries->find(user);
  if (it == entries->end()) {
    if (!impl_->dummy.empty()) Crypt(password, impl_->dummy);  // the same work either way
    return CheckResult::kUnknownUser;
  }
  const std::string& hash = it->second;
  const Scheme scheme = SchemeOf(hash);
  if (scheme == Scheme::kPlain || (scheme != Scheme::kStrong && !allow_weak_)) {
    return CheckResult::kRefusedScheme;
  }
  std::string computed;
  switch (scheme) {
    case Scheme::kApr1:
      computed = Apr1(password, hash);
      break;
    case Scheme::kSha1: {
      unsigned char digest[SHA_DIGEST_LENGTH];
      SHA1(reinterpret_cast<const unsigned char*>(password.data()), password.size(), digest);
      computed = "{SHA}" + EncodeBase64(digest, sizeof digest);
      break;
    }
    default:
      computed = Crypt(password, hash);
      break;
  }
  return Same(computed, hash) ? CheckResult::kOk : CheckResult::kWrongPassword;
}

}  // namespace mintgate::proxy::auth
