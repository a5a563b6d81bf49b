#include "proxy/auth/htpasswd.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>

#include "proxy/auth/base64.h"
#include "proxy/auth/watched_file.h"

namespace mintgate::proxy::auth {
namespace {

enum class Scheme { kStrong, kMd5Crypt, kApr1, kSha1, kDes, kUnsupported, kPlain };

Scheme SchemeOf(std::string_view hash) {
  const auto starts = [&](std::string_view prefix) { return hash.starts_with(prefix); };
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
  // "$id$...": a crypt(3) scheme of another kind (yescrypt's $y$, $2x$, ...).
  if (hash.size() > 2 && hash[0] == '$' && hash.find('$', 1) != std::string_view::npos) {
    return Scheme::kUnsupported;
  }
  return Scheme::kPlain;
}

bool Weak(Scheme s) {
  return s == Scheme::kMd5Crypt || s == Scheme::kApr1 || s == Scheme::kSha1 || s == Scheme::kDes;
}

const char* WeakName(Scheme s) {
  switch (s) {
    case Scheme::kMd5Crypt:
      return "MD5-crypt ($1$)";
    case Scheme::kApr1:
      return "Apache MD5 ($apr1$)";
    case Scheme::kSha1:
      return "unsalted SHA-1 ({SHA})";
    case Scheme::kDes:
      return "DES crypt";
    default:
      return "?";
  }
}

// What an unknown user's check costs (a bcrypt of htpasswd -B's default cost), so the time
// taken does not tell which users exist. Its password is of no use to anyone.
constexpr char kDummyHash[] = "$2y$05$uuWJZNMPuxfleabBSbAdnOfJ.WCBCrqWoh.gFUvTeFT31KS6Suz2u";

// crypt(3) of `password` with the settings in `hash`; "" when libcrypt refuses. Reentrant: its
// state is on this stack, and wiped with the copy of the password.
std::string Crypt(std::string_view password, const char* hash) {
  crypt_data data{};
  std::string copy(password);
  const char* out = crypt_rn(copy.c_str(), hash, &data, sizeof data);
  std::string result = out != nullptr && out[0] != '*' ? out : "";
  OPENSSL_cleanse(copy.data(), copy.size());
  OPENSSL_cleanse(&data, sizeof data);
  return result;
}

// Apache's $apr1$ (apr_md5_encode): Poul-Henning Kamp's MD5-crypt with the magic "$apr1$"
// instead of "$1$". "" when OpenSSL cannot do MD5 (e.g. a FIPS configuration).
std::string Apr1(std::string_view password, std::string_view hash) {
  constexpr std::string_view kMagic = "$apr1$";
  std::string_view salt = hash.substr(kMagic.size());
  salt = salt.substr(0, std::min<std::size_t>(salt.find('$'), 8));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  bool ok = ctx != nullptr;
  unsigned char sum[16] = {};
  const auto begin = [&] { ok = ok && EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) == 1; };
  const auto add = [&](const void* data, std::size_t size) {
    ok = ok && EVP_DigestUpdate(ctx.get(), data, size) == 1;
  };
  const auto add_text = [&](std::string_view s) { add(s.data(), s.size()); };
  const auto end = [&] {
    unsigned int size = 0;
    ok = ok && EVP_DigestFinal_ex(ctx.get(), sum, &size) == 1 && size == sizeof sum;
  };

  begin();
  add_text(password);
  add_text(salt);
  add_text(password);
  end();
  unsigned char alternate[16];
  std::memcpy(alternate, sum, sizeof sum);
  begin();
  add_text(password);
  add_text(kMagic);
  add_text(salt);
  for (std::size_t left = password.size(); left > 0; left -= std::min<std::size_t>(left, 16)) {
    add(alternate, std::min<std::size_t>(left, 16));
  }
  for (std::size_t bits = password.size(); bits > 0; bits >>= 1) {
    add((bits & 1) != 0 ? "\0" : password.data(), 1);
  }
  end();
  for (int i = 0; i < 1000; ++i) {
    begin();
    if ((i & 1) != 0) {
      add_text(password);
    } else {
      add(sum, sizeof sum);
    }
    if (i % 3 != 0) add_text(salt);
    if (i % 7 != 0) add_text(password);
    if ((i & 1) != 0) {
      add(sum, sizeof sum);
    } else {
      add_text(password);
    }
    end();
  }
  OPENSSL_cleanse(alternate, sizeof alternate);
  if (!ok) return "";

  static constexpr char kItoa64[] =
      "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out = std::string(kMagic) + std::string(salt) + "$";
  const auto to64 = [&](unsigned value, int chars) {
    while (chars-- > 0) {
      out += kItoa64[value & 0x3f];
      value >>= 6;
    }
  };
  const auto b = [&](int i) { return static_cast<unsigned>(sum[i]); };
  to64((b(0) << 16) | (b(6) << 8) | b(12), 4);
  to64((b(1) << 16) | (b(7) << 8) | b(13), 4);
  to64((b(2) << 16) | (b(8) << 8) | b(14), 4);
  to64((b(3) << 16) | (b(9) << 8) | b(15), 4);
  to64((b(4) << 16) | (b(10) << 8) | b(5), 4);
  to64(b(11), 2);
  return out;
}

// "{SHA}" and the base64 of the password's SHA-1, as htpasswd -s writes it.
std::string Sha1(std::string_view password) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(password.data(), password.size(), digest, &size, EVP_sha1(), nullptr) != 1) {
    return "";
  }
  return "{SHA}" + EncodeBase64(digest, size);
}

// Constant-time for hashes of the same length (the length is not secret: it follows from the
// scheme in the file).
bool Same(const std::string& computed, const std::string& stored) {
  return !computed.empty() && computed.size() == stored.size() &&
         CRYPTO_memcmp(computed.data(), stored.data(), stored.size()) == 0;
}

struct Entry {
  std::string hash;
  Scheme scheme;
  int line;
};
using Entries = std::map<std::string, Entry, std::less<>>;

// Warnings name the line and the user, never the hash (or a password written in its place).
Entries ParseHtpasswd(const std::string& text, bool allow_weak,
                      std::vector<std::string>* warnings) {
  Entries out;
  int number = 0;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t newline = std::min(text.find('\n', start), text.size());
    std::string_view line(text.data() + start, newline - start);
    start = newline + 1;
    ++number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    const std::string where = "line " + std::to_string(number);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      warnings->push_back(where + ": not a \"user:hash\" line; skipped");
      continue;
    }
    const std::string user(line.substr(0, colon));
    // Like Apache, what follows a second ':' is not part of the hash.
    std::string_view hash = line.substr(colon + 1);
    hash = hash.substr(0, hash.find(':'));
    const Scheme scheme = SchemeOf(hash);
    const std::string who = where + " (" + user + "): ";
    if (scheme == Scheme::kPlain) {
      warnings->push_back(who + (hash.empty() ? "no password hash" : "not a password hash") +
                          " (a password in plain text is never accepted); re-create it with "
                          "htpasswd -B");
    } else if (scheme == Scheme::kUnsupported) {
      warnings->push_back(who +
                          "a hash scheme not supported here (bcrypt, SHA-512-crypt and "
                          "SHA-256-crypt are); re-create it with htpasswd -B");
    } else if (Weak(scheme)) {
      warnings->push_back(who + WeakName(scheme) +
                          (allow_weak ? " is weak (accepted as auth.allow_weak_hashes = true)"
                                      : " is weak and refused unless auth.allow_weak_hashes = "
                                        "true") +
                          "; re-create it with htpasswd -B");
    }
    const auto [it, added] = out.try_emplace(user, Entry{std::string(hash), scheme, number});
    if (!added) {
      warnings->push_back(who + "listed again; the entry on line " +
                          std::to_string(it->second.line) + " counts");
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
  Impl(const std::string& path, bool allow_weak)
      : file(path, "auth.htpasswd", /*secret=*/true,
             [allow_weak](const std::string& text, std::vector<std::string>* warnings) {
               return ParseHtpasswd(text, allow_weak, warnings);
             }) {}
  ParsedFile<Entries> file;
};

HtpasswdFile::HtpasswdFile(std::string path, bool allow_weak)
    : path_(std::move(path)),
      allow_weak_(allow_weak),
      impl_(std::make_shared<Impl>(path_, allow_weak_)) {}

std::string HtpasswdFile::Load(std::vector<std::string>* warnings) {
  return impl_->file.Load(warnings);
}

CheckResult HtpasswdFile::Verify(std::string_view user, std::string_view password) {
  // The only step under the file's lock (a stat, a read when it changed); hashing is not.
  const std::shared_ptr<const Entries> entries = impl_->file.Get();
  if (!entries) return CheckResult::kUnavailable;
  const auto it = entries->find(user);
  const Entry* entry = it == entries->end() ? nullptr : &it->second;
  const bool usable = entry != nullptr &&
                      (entry->scheme == Scheme::kStrong || (allow_weak_ && Weak(entry->scheme)));
  // crypt(3) would stop at a NUL, so "pw\0anything" would pass for "pw": never a match.
  if (!usable || password.find('\0') != std::string_view::npos) {
    Crypt(password, kDummyHash);  // the same work as a real check
    if (entry == nullptr) return CheckResult::kUnknownUser;
    return usable ? CheckResult::kWrongPassword : CheckResult::kRefusedScheme;
  }
  std::string computed;
  switch (entry->scheme) {
    case Scheme::kApr1:
      computed = Apr1(password, entry->hash);
      break;
    case Scheme::kSha1:
      computed = Sha1(password);
      break;
    default:  // bcrypt, SHA-crypt, and with allow_weak $1$ and DES: libcrypt
      computed = Crypt(password, entry->hash.c_str());
      break;
  }
  return Same(computed, entry->hash) ? CheckResult::kOk : CheckResult::kWrongPassword;
}

}  // namespace mintgate::proxy::auth
