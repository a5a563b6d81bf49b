// LDAP binds and group searches with OpenLDAP's libldap, one connection per call.
//
// TLS is configured on each connection handle, never globally: ldap_create() gives a new handle
// zeroed TLS file settings (struct ldaptls: CA file and directory) and no TLS context, and
// LDAP_OPT_X_TLS_NEWCTX on the handle builds a context from the handle's own settings (the
// verify mode from LDAP_OPT_X_TLS_REQUIRE_CERT is copied into it then, so it is set first).
// Without NEWCTX libldap would use its global default context, built once from the process's
// ldap.conf and LDAPTLS_* variables. So two configurations (a reload, the `check` command) and
// concurrent calls do not meet, and ldap.conf does not apply (libldap 2.5.13: open.c
// ldap_create(), tls2.c ldap_pvt_tls_set_option() and ldap_int_tls_connect()).
//
// With LDAP_OPT_X_TLS_DEMAND libldap checks the server's name against the URL's host after
// verifying its chain (ldap_pvt_tls_check_hostname(), skipped only for NEVER and ALLOW):
// subjectAltName DNS or IP entries, else the subject's CN. LDAP_OPT_X_TLS_REQUIRE_SAN = TRY
// drops the fallback to the CN when the certificate has subjectAltNames (RFC 6125); libldap's
// default (ALLOW) would accept a CN that matches next to subjectAltNames that do not. libldap
// checks the name "localhost" as the machine's own host name: use 127.0.0.1 or a real name.
//
// Debian builds libldap with GnuTLS (tls_g.c), which matters twice: a context without a CA
// file trusts nothing (no system store is loaded), so an empty ca_file means the system's CA
// bundle file, named explicitly; and every TLS failure is reported as "(unknown error code)",
// so a failed handshake is tried once more without verification to tell a refused
// certificate from a server that cannot be reached (nothing is sent on that connection).
//
// Timeouts: libldap 2.5 runs the TLS handshake of a synchronous connection without a timeout
// (a server that accepts and never answers blocks the call forever, or busy-loops on the
// non-blocking socket when LDAP_OPT_NETWORK_TIMEOUT is set; ITS#8047, fixed in 2.6.10).
// LDAP_OPT_CONNECT_ASYNC takes the path that polls with the network timeout, so every stage of
// a call is bounded: connect and handshake by LDAP_OPT_NETWORK_TIMEOUT, each request by
// LDAP_OPT_TIMEOUT.
#include "proxy/auth/ldap_directory.h"

#include <fcntl.h>
#include <lber.h>
#include <ldap.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mintgate::proxy::auth {
namespace {

constexpr std::size_t kMaxUserBytes = 256;
constexpr std::size_t kMaxSecretBytes = 4096;

// RFC 4514 §2.4: a string placed as (part of) an attribute value in a DN.
std::string EscapeDnValue(std::string_view value) {
  std::string out;
  out.reserve(value.size() * 2);
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\0') {
      out += "\\00";
      continue;
    }
    const bool special = c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' ||
                         c == ';' || c == '=' || (i == 0 && (c == ' ' || c == '#')) ||
                         (i + 1 == value.size() && c == ' ');
    if (special) out += '\\';
    out += c;
  }
  return out;
}

// RFC 4515 §3: a string placed as an assertion value in a search filter.
std::string EscapeFilterValue(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size() * 3);
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
      out += '\\';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

// `text` with each {field} replaced in one pass, so a value that happens to contain another
// field's token is never expanded again.
std::string Expand(std::string_view text,
                   std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    bool replaced = false;
    for (const auto& [token, value] : fields) {
      if (text.substr(i, token.size()) == token) {
        out += value;
        i += token.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i++];
  }
  return out;
}

bool ValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n > s.size() - i - 1) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::array<std::uint32_t, 4> kMin = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// Why `user` cannot name an entry ("" when it can): it goes into DNs and filters.
std::string UnusableName(std::string_view user) {
  if (user.empty()) return "empty user name";
  if (user.size() > kMaxUserBytes) return "user name longer than 256 bytes";
  if (std::any_of(user.begin(), user.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return "control character in the user name";
  }
  if (!ValidUtf8(user)) return "user name is not UTF-8";
  return "";
}

bool ValidDn(const std::string& dn) {
  LDAPDN parsed = nullptr;
  const int rc = ldap_str2dn(dn.c_str(), &parsed, LDAP_DN_FORMAT_LDAPV3);
  if (parsed != nullptr) ldap_dnfree(parsed);
  return rc == LDAP_SUCCESS;
}

timeval Timeval(std::uint64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>(ms % 1000 * 1000);
  return tv;
}

// A password read from a file, wiped when done with.
class Secret {
 public:
  Secret() = default;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() { explicit_bzero(buffer_.data(), buffer_.size()); }
  // Reads `path` (a trailing "\n" or "\r\n" dropped): "" or why not.
  std::string Read(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return "cannot read: " + std::string(std::strerror(errno));
    std::size_t n = 0;
    std::string error;
    while (n < buffer_.size()) {
      const ssize_t got = ::read(fd, buffer_.data() + n, buffer_.size() - n);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        error = "cannot read: " + std::string(std::strerror(errno));
        break;
      }
      if (got == 0) break;
      n += static_cast<std::size_t>(got);
    }
    ::close(fd);
    if (!error.empty()) return error;
    if (n == buffer_.size()) return "is longer than 4096 bytes";
    if (n > 0 && buffer_[n - 1] == '\n') --n;
    if (n > 0 && buffer_[n - 1] == '\r') --n;
    if (n == 0) return "is empty";
    size_ = n;
    return "";
  }
  berval Credentials() { return berval{static_cast<ber_len_t>(size_), buffer_.data()}; }

 private:
  std::array<char, kMaxSecretBytes> buffer_{};
  std::size_t size_ = 0;
};

// The scheme of every server in auth.ldap.url (a list, as ldap_initialize takes it), or why
// the URL cannot be used. A cleartext ldap:// without StartTLS is refused here, so neither
// Check() nor any call ever sends a password in clear.
std::string UrlProblem(const LdapConfig& c, std::string* scheme) {
  if (c.url.empty()) return "auth.ldap.url is empty";
  scheme->clear();
  std::size_t at = 0;
  while (at < c.url.size()) {
    const std::size_t end = std::min(c.url.find_first_of(", ", at), c.url.size());
    const std::string one = c.url.substr(at, end - at);
    at = end + 1;
    if (one.empty()) continue;
    LDAPURLDesc* desc = nullptr;
    if (ldap_url_parse(one.c_str(), &desc) != LDAP_URL_SUCCESS || desc == nullptr) {
      if (desc != nullptr) ldap_free_urldesc(desc);
      return "auth.ldap.url must be ldaps://host, ldap://host (with auth.ldap.starttls = "
             "true) or ldapi://, got \"" +
             one + "\"";
    }
    const std::string this_scheme = desc->lud_scheme != nullptr ? desc->lud_scheme : "";
    const bool has_host = desc->lud_host != nullptr && desc->lud_host[0] != '\0';
    ldap_free_urldesc(desc);
    if (this_scheme != "ldaps" && this_scheme != "ldap" && this_scheme != "ldapi") {
      return "auth.ldap.url must be ldaps://host, ldap://host (with auth.ldap.starttls = "
             "true) or ldapi://, got \"" +
             one + "\"";
    }
    if (this_scheme != "ldapi" && !has_host) {
      return "auth.ldap.url \"" + one + "\" names no host";
    }
    if (!scheme->empty() && *scheme != this_scheme) {
      return "auth.ldap.url mixes " + *scheme + ":// and " + this_scheme +
             ":// servers; list servers of one scheme";
    }
    *scheme = this_scheme;
  }
  if (scheme->empty()) return "auth.ldap.url is empty";
  if (*scheme == "ldap" && !c.starttls) {
    return "auth.ldap.url is ldap:// without auth.ldap.starttls = true: the password would "
           "cross the network in clear; use ldaps:// or set starttls = true";
  }
  return "";
}

// libldap's TLS layer is set up on first use by tls_init() (tls2.c), which guards the creation
// of a mutex and the TLS library's global set-up (gnutls_global_init() or OpenSSL's) with
// plain static counters, unsynchronised: two threads making the process's first TLS contexts
// at once would race there. So the first context is made here, once, before any other; later
// calls only increment those counters. ldap_initialize()'s own global set-up
// (ldap_int_initialize()) is guarded by a mutex in libldap. ThreadSanitizer cannot see this
// race (libldap is not instrumented): the guard comes from reading libldap 2.5's source.
void InitialiseLibraryOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    LDAP* ld = nullptr;
    if (ldap_initialize(&ld, nullptr) != LDAP_SUCCESS || ld == nullptr) return;
    const int is_server = 0;
    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server);
    ldap_unbind_ext_s(ld, nullptr, nullptr);
  });
}

std::string Describe(LDAP* ld, int rc) {
  std::string out = ldap_err2string(rc);
  char* diagnostic = nullptr;
  if (ld != nullptr &&
      ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == LDAP_OPT_SUCCESS &&
      diagnostic != nullptr) {
    // GnuTLS's text for the codes libldap hands it, which says nothing.
    if (diagnostic[0] != '\0' && std::strcmp(diagnostic, "(unknown error code)") != 0) {
      out += std::string(" (") + diagnostic + ")";
    }
    ldap_memfree(diagnostic);
  }
  return out;
}

// An LDAP handle, unbound (its socket closed, its TLS context freed) however the call ends.
class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (ld_ != nullptr) ldap_unbind_ext_s(ld_, nullptr, nullptr);
  }
  LDAP* get() const { return ld_; }
  LDAP** out() { return &ld_; }

 private:
  LDAP* ld_ = nullptr;
};

// SIGPIPE held off this thread for a call: libldap writes with write(2), so a request or the
// unbind sent to a server that already closed the connection would raise SIGPIPE, which kills
// a process that does not ignore it (the gateway does; a tool or a test may not). A SIGPIPE
// raised meanwhile is taken off the thread before the mask is restored.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;
  ~SigpipeBlocked() {
    if (!blocked_) return;
    const int saved_errno = errno;
    sigset_t pending;
    sigemptyset(&pending);
    if (!was_pending_ && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec now{};
      while (sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved_errno;
  }

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool blocked_ = false;
};

struct MessageFree {
  void operator()(LDAPMessage* m) const { ldap_msgfree(m); }
};
using Message = std::unique_ptr<LDAPMessage, MessageFree>;

struct ValuesFree {
  void operator()(berval** v) const { ldap_value_free_len(v); }
};
using Values = std::unique_ptr<berval*, ValuesFree>;

struct MemFree {
  void operator()(char* p) const { ldap_memfree(p); }
};
using LdapString = std::unique_ptr<char, MemFree>;

// The system's CA certificates as one PEM file ("" when there is none): what an empty ca_file
// means. libldap's GnuTLS build loads only the files it is given.
std::string SystemCaFile() {
  for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                           "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"}) {
    if (::access(path, R_OK) == 0) return path;
  }
  return "";
}

// Where the server's issuer must be, for messages.
std::string CaSource(const LdapConfig& c) {
  if (!c.ca_file.empty()) return "auth.ldap.ca_file \"" + c.ca_file + "\"";
  const std::string system = SystemCaFile();
  return "the system's CA certificates" + (system.empty() ? "" : " (" + system + ")");
}

// TLS settings on the handle, then its own context (see the top of this file). `verify` off
// only for the diagnosis of a failed handshake.
bool ConfigureTls(LDAP* ld, const LdapConfig& c, bool verify, std::string* error) {
  const int require = verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
  const int san = LDAP_OPT_X_TLS_TRY;
  const std::string ca_file = !c.ca_file.empty() ? c.ca_file : SystemCaFile();
  if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require) != LDAP_OPT_SUCCESS ||
      ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_SAN, &san) != LDAP_OPT_SUCCESS ||
      (verify && !ca_file.empty() &&
       ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, ca_file.c_str()) != LDAP_OPT_SUCCESS)) {
    *error = "cannot set libldap's TLS options";
    return false;
  }
  const int is_server = 0;
  if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server) != LDAP_OPT_SUCCESS) {
    *error = "cannot set up TLS with " + CaSource(c) + ": not a readable PEM file";
    return false;
  }
  return true;
}

enum class Stage { kSetup, kConnect, kStartTls };

// A new connection in `conn`: options set, connected, StartTLS done for ldap://. LDAP_SUCCESS,
// or the code that failed with *stage (for kSetup, *error says why).
int Connect(Connection& conn, const LdapConfig& c, const std::string& scheme, bool verify,
            std::uint64_t timeout_ms, Stage* stage, std::string* error) {
  *stage = Stage::kSetup;
  int rc = ldap_initialize(conn.out(), c.url.c_str());
  if (rc != LDAP_SUCCESS || conn.get() == nullptr) {
    *error = "cannot use auth.ldap.url \"" + c.url + "\": " + ldap_err2string(rc);
    return rc != LDAP_SUCCESS ? rc : LDAP_LOCAL_ERROR;
  }
  LDAP* ld = conn.get();
  const int version = LDAP_VERSION3;
  const timeval timeout = Timeval(timeout_ms);
  if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS ||
      ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
      ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
      ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &timeout) != LDAP_OPT_SUCCESS ||
      ldap_set_option(ld, LDAP_OPT_TIMEOUT, &timeout) != LDAP_OPT_SUCCESS ||
      ldap_set_option(ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON) != LDAP_OPT_SUCCESS) {
    *error = "cannot set libldap's connection options";
    return LDAP_LOCAL_ERROR;
  }
  if (!ConfigureTls(ld, c, verify, error)) return LDAP_LOCAL_ERROR;
  *stage = Stage::kConnect;
  if (ldap_connect(ld) != LDAP_SUCCESS) {
    rc = LDAP_SERVER_DOWN;
    if (ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &rc) != LDAP_OPT_SUCCESS || rc == 0) {
      rc = LDAP_SERVER_DOWN;
    }
    return rc;
  }
  if (scheme == "ldap") {
    *stage = Stage::kStartTls;
    return ldap_start_tls_s(ld, nullptr, nullptr);
  }
  return LDAP_SUCCESS;
}

// An entry found by a search: its DN and the values of the attribute asked for.
struct Entry {
  std::string dn;
  std::vector<std::string> values;
};

}  // namespace

struct LdapDirectory::Impl {
  LdapConfig config;

  // A connection to the directory with TLS in place and the server's certificate verified;
  // false and *error when there is none.
  bool Open(Connection& conn, std::string* error) const {
    InitialiseLibraryOnce();
    std::string scheme;
    if (std::string why = UrlProblem(config, &scheme); !why.empty()) {
      *error = why;
      return false;
    }
    const auto start = std::chrono::steady_clock::now();
    Stage stage = Stage::kSetup;
    const int rc = Connect(conn, config, scheme, true, config.timeout_ms, &stage, error);
    if (rc == LDAP_SUCCESS) return true;
    if (stage == Stage::kSetup) return false;
    const auto elapsed_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
    *error = (stage == Stage::kStartTls ? "StartTLS with " + config.url + " failed: "
                                        : "cannot connect to " + config.url + ": ") +
             Describe(conn.get(), rc);
    if (elapsed_ms >= config.timeout_ms) {
      *error += " (no answer within " + std::to_string(config.timeout_ms) + " ms)";
      return false;
    }
    // The handshake (ldaps://, or after a successful StartTLS request) failed, or the server
    // could not be reached: libldap's GnuTLS build does not say which. A handshake that works
    // without verification means the certificate was refused.
    const bool handshake =
        scheme == "ldaps" || (stage == Stage::kStartTls && rc == LDAP_CONNECT_ERROR);
    if (handshake && config.timeout_ms - elapsed_ms >= 10) {
      Connection probe;
      std::string ignored;
      if (Connect(probe, config, scheme, false, config.timeout_ms - elapsed_ms, &stage, &ignored) ==
          LDAP_SUCCESS) {
        *error = "TLS with " + config.url +
                 " failed: the server's certificate was refused: not issued by a CA in " +
                 CaSource(config) + ", expired, or not issued for the host name in auth.ldap.url";
      }
    }
    return false;
  }

  static int SimpleBind(LDAP* ld, const std::string& dn, berval* password) {
    return ldap_sasl_bind_s(ld, dn.c_str(), LDAP_SASL_SIMPLE, password, nullptr, nullptr, nullptr);
  }

  // Binds for searches: as bind_dn with the password from bind_password_file, or stays
  // anonymous.
  bool BindForSearch(LDAP* ld, std::string* error) const {
    if (config.bind_dn.empty()) return true;
    Secret secret;
    if (config.bind_password_file.empty()) {
      *error = "auth.ldap.bind_dn is set without auth.ldap.bind_password_file";
      return false;
    }
    if (std::string why = secret.Read(config.bind_password_file); !why.empty()) {
      *error = "auth.ldap.bind_password_file \"" + config.bind_password_file + "\" " + why;
      return false;
    }
    berval credentials = secret.Credentials();
    const int rc = SimpleBind(ld, config.bind_dn, &credentials);
    if (rc != LDAP_SUCCESS) {
      *error = "bind as auth.ldap.bind_dn \"" + config.bind_dn + "\" failed: " + Describe(ld, rc);
      return false;
    }
    return true;
  }

  // The value of the first attribute of `dn` in its entry that matches `typed` as LDAP
  // matches names (ASCII case and outer spaces ignored): how the directory spells the name.
  // "" when the entry cannot be read or no value matches.
  std::string NamingValue(LDAP* ld, const std::string& dn, std::string_view typed) const {
    const std::size_t eq = dn.find('=');
    if (eq == std::string::npos || eq == 0) return "";
    std::string attribute = dn.substr(0, eq);
    while (!attribute.empty() && attribute.back() == ' ') attribute.pop_back();
    std::array<char*, 2> attrs = {attribute.data(), nullptr};
    timeval timeout = Timeval(config.timeout_ms);
    LDAPMessage* raw = nullptr;
    const int rc = ldap_search_ext_s(ld, dn.c_str(), LDAP_SCOPE_BASE, "(objectClass=*)",
                                     attrs.data(), 0, nullptr, nullptr, &timeout, 1, &raw);
    Message result(raw);
    if (rc != LDAP_SUCCESS) return "";
    auto fold = [](std::string_view v) {
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      std::string out(v);
      for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return out;
    };
    const std::string wanted = fold(typed);
    LDAPMessage* e = ldap_first_entry(ld, result.get());
    if (e == nullptr) return "";
    if (Values values{ldap_get_values_len(ld, e, attribute.c_str())}) {
      for (berval** v = values.get(); *v != nullptr; ++v) {
        const std::string value((*v)->bv_val, (*v)->bv_len);
        if (fold(value) == wanted) return value;
      }
    }
    return "";
  }

  // Entries under `base` (subtree) matching `filter`, with the values of `attribute` (none
  // when null). `limit` > 0: at most that many are asked for and a longer answer is not an
  // error. nullopt and *error on failure.
  std::optional<std::vector<Entry>> Search(LDAP* ld, const std::string& base,
                                           const std::string& filter, const char* attribute,
                                           int limit, std::string* error) const {
    std::array<char*, 2> attrs = {
        const_cast<char*>(attribute != nullptr ? attribute : LDAP_NO_ATTRS), nullptr};
    timeval timeout = Timeval(config.timeout_ms);
    LDAPMessage* raw = nullptr;
    const int rc = ldap_search_ext_s(ld, base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(),
                                     attrs.data(), 0, nullptr, nullptr, &timeout, limit, &raw);
    Message result(raw);
    if (rc != LDAP_SUCCESS && !(rc == LDAP_SIZELIMIT_EXCEEDED && limit > 0)) {
      *error = "search for " + filter + " under \"" + base + "\" failed: " + Describe(ld, rc);
      return std::nullopt;
    }
    std::vector<Entry> out;
    for (LDAPMessage* e = ldap_first_entry(ld, result.get()); e != nullptr;
         e = ldap_next_entry(ld, e)) {
      Entry entry;
      if (LdapString dn{ldap_get_dn(ld, e)}) entry.dn = dn.get();
      if (attribute != nullptr) {
        if (Values values{ldap_get_values_len(ld, e, attribute)}) {
          for (berval** v = values.get(); *v != nullptr; ++v) {
            entry.values.emplace_back((*v)->bv_val, (*v)->bv_len);
          }
        }
      }
      out.push_back(std::move(entry));
    }
    return out;
  }

  // The user's DN: from the template, or found by a search under search_base (the connection
  // then bound as bind_dn). nullopt with out->result and out->error when there is none.
  std::optional<std::string> FindDn(LDAP* ld, std::string_view user, bool bound,
                                    LdapBind* out) const {
    if (!config.user_dn.empty()) {
      return Expand(config.user_dn, {{"{user}", EscapeDnValue(user)}});
    }
    out->result = CheckResult::kUnavailable;
    if (!bound && !BindForSearch(ld, &out->error)) return std::nullopt;
    const std::string filter = Expand(config.search_filter, {{"{user}", EscapeFilterValue(user)}});
    auto found = Search(ld, config.search_base, filter, nullptr, 2, &out->error);
    if (!found) return std::nullopt;
    if (found->empty()) {
      out->result = CheckResult::kUnknownUser;
      out->error = "no entry matches " + filter + " under \"" + config.search_base + "\"";
      return std::nullopt;
    }
    if (found->size() > 1) {
      out->error = "ambiguous: more than one entry matches " + filter + " under \"" +
                   config.search_base + "\"";
      return std::nullopt;
    }
    if (found->front().dn.empty()) {
      out->error = "the entry matching " + filter + " came without its DN";
      return std::nullopt;
    }
    return found->front().dn;
  }
};

LdapDirectory::LdapDirectory(LdapConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
}

LdapDirectory::~LdapDirectory() = default;

std::string LdapDirectory::Check() const {
  const LdapConfig& c = impl_->config;
  std::string scheme;
  if (std::string why = UrlProblem(c, &scheme); !why.empty()) return why;
  if (c.user_dn.empty() == c.search_base.empty()) {
    return "[auth.ldap] needs exactly one of auth.ldap.user_dn (\"uid={user},ou=people,...\") "
           "or auth.ldap.search_base (with auth.ldap.search_filter)";
  }
  if (!c.user_dn.empty()) {
    if (c.user_dn.find("{user}") == std::string::npos) {
      return "auth.ldap.user_dn must contain {user}";
    }
    if (!ValidDn(Expand(c.user_dn, {{"{user}", "x"}}))) {
      return "auth.ldap.user_dn \"" + c.user_dn + "\" is not a DN";
    }
  } else {
    if (!ValidDn(c.search_base))
      return "auth.ldap.search_base \"" + c.search_base + "\" is not a DN";
    if (c.search_filter.find("{user}") == std::string::npos) {
      return "auth.ldap.search_filter must contain {user}";
    }
  }
  if (!c.bind_dn.empty()) {
    if (!ValidDn(c.bind_dn)) return "auth.ldap.bind_dn \"" + c.bind_dn + "\" is not a DN";
    if (c.bind_password_file.empty()) {
      return "auth.ldap.bind_dn needs auth.ldap.bind_password_file (a bind without a password "
             "is anonymous)";
    }
  } else if (!c.bind_password_file.empty()) {
    return "auth.ldap.bind_password_file is set without auth.ldap.bind_dn";
  }
  if (!c.bind_password_file.empty()) {
    const std::string& path = c.bind_password_file;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return "auth.ldap.bind_password_file \"" + path + "\": cannot read: " + std::strerror(errno);
    }
    if (!S_ISREG(st.st_mode)) return "auth.ldap.bind_password_file \"" + path + "\" is not a file";
    if ((st.st_mode & 077) != 0) {
      std::array<char, 8> mode{};
      std::snprintf(mode.data(), mode.size(), "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return "auth.ldap.bind_password_file \"" + path + "\" is open to group or others (mode " +
             mode.data() + "); run: chmod 600 " + path;
    }
    Secret secret;
    if (std::string why = secret.Read(path); !why.empty()) {
      return "auth.ldap.bind_password_file \"" + path + "\" " + why;
    }
  }
  if (!c.group_base.empty()) {
    if (!ValidDn(c.group_base)) return "auth.ldap.group_base \"" + c.group_base + "\" is not a DN";
    if (c.group_filter.find("{dn}") == std::string::npos &&
        c.group_filter.find("{user}") == std::string::npos) {
      return "auth.ldap.group_filter must contain {dn} or {user}";
    }
    if (c.group_attribute.empty()) return "auth.ldap.group_attribute is empty";
  }
  if (c.timeout_ms == 0) return "auth.ldap.timeout must be more than 0";
  if (!c.ca_file.empty()) {
    std::ifstream in(c.ca_file, std::ios::binary);
    if (!in) {
      return "auth.ldap.ca_file \"" + c.ca_file + "\": cannot read: " + std::strerror(errno);
    }
    // libldap's GnuTLS build takes a file without certificates as an empty list.
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos &&
        pem.find("-----BEGIN TRUSTED CERTIFICATE-----") == std::string::npos &&
        pem.find("-----BEGIN X509 CERTIFICATE-----") == std::string::npos) {
      return "auth.ldap.ca_file \"" + c.ca_file + "\" holds no PEM certificate";
    }
  } else if (scheme != "ldapi" && SystemCaFile().empty()) {
    return "auth.ldap.ca_file is not set and no system CA bundle was found "
           "(/etc/ssl/certs/ca-certificates.crt): set auth.ldap.ca_file";
  }
  // The TLS context a call would make (the CA file loaded), without connecting.
  InitialiseLibraryOnce();
  Connection conn;
  if (ldap_initialize(conn.out(), c.url.c_str()) != LDAP_SUCCESS || conn.get() == nullptr) {
    return "auth.ldap.url \"" + c.url + "\" is not usable by libldap";
  }
  if (std::string why; !ConfigureTls(conn.get(), c, true, &why)) return why;
  return "";
}

LdapBind LdapDirectory::Bind(std::string_view user, std::string_view password) const {
  LdapBind out;
  if (password.empty()) {
    // A simple bind with a DN and no password is an "unauthenticated bind" (RFC 4513 §5.1.2),
    // which many servers answer with success.
    out.result = CheckResult::kWrongPassword;
    out.error = "empty password (not sent to the directory)";
    return out;
  }
  if (std::string why = UnusableName(user); !why.empty()) {
    out.result = CheckResult::kUnknownUser;
    out.error = why;
    return out;
  }
  const SigpipeBlocked no_sigpipe;  // outlives the connection and its unbind
  Connection conn;
  if (!impl_->Open(conn, &out.error)) {
    out.result = CheckResult::kUnavailable;
    return out;
  }
  std::optional<std::string> dn = impl_->FindDn(conn.get(), user, false, &out);
  if (!dn) return out;
  berval credentials{static_cast<ber_len_t>(password.size()), const_cast<char*>(password.data())};
  const int rc = Impl::SimpleBind(conn.get(), *dn, &credentials);
  out.error.clear();
  if (rc == LDAP_SUCCESS) {
    out.result = CheckResult::kOk;
    out.user = impl_->NamingValue(conn.get(), *dn, user);
    out.dn = std::move(*dn);
  } else if (rc == LDAP_INVALID_CREDENTIALS) {
    // Also the answer for a DN from the template that names no entry.
    out.result = CheckResult::kWrongPassword;
  } else if (rc == LDAP_INVALID_DN_SYNTAX && !impl_->config.user_dn.empty()) {
    // The name makes a DN the server's schema refuses (uidNumber={user} with letters): no
    // such user can exist, as for a DN that names no entry.
    out.result = CheckResult::kWrongPassword;
    out.error = "the server refused the DN \"" + *dn + "\": " + Describe(conn.get(), rc);
  } else {
    out.result = CheckResult::kUnavailable;
    out.error = "bind as \"" + *dn + "\" failed: " + Describe(conn.get(), rc);
  }
  return out;
}

std::optional<std::vector<std::string>> LdapDirectory::Groups(std::string_view user,
                                                              std::string_view dn,
                                                              std::string* error) const {
  const LdapConfig& c = impl_->config;
  std::string why;
  std::vector<std::string> groups;
  if (c.group_base.empty()) return groups;
  if (dn.empty() && !UnusableName(user).empty()) return groups;  // no entry can have it
  const SigpipeBlocked no_sigpipe;  // outlives the connection and its unbind
  Connection conn;
  if (!impl_->Open(conn, &why) || !impl_->BindForSearch(conn.get(), &why)) {
    if (error != nullptr) *error = why;
    return std::nullopt;
  }
  std::string user_dn(dn);
  if (user_dn.empty()) {
    LdapBind found;
    std::optional<std::string> d = impl_->FindDn(conn.get(), user, true, &found);
    if (!d) {
      if (found.result == CheckResult::kUnknownUser) return groups;
      if (error != nullptr) *error = found.error;
      return std::nullopt;
    }
    user_dn = std::move(*d);
  }
  const std::string filter = Expand(
      c.group_filter, {{"{dn}", EscapeFilterValue(user_dn)}, {"{user}", EscapeFilterValue(user)}});
  // No size limit of ours: a list cut short would silently drop groups (rules on them).
  auto found = impl_->Search(conn.get(), c.group_base, filter, c.group_attribute.c_str(), 0, &why);
  if (!found) {
    if (error != nullptr) *error = why;
    return std::nullopt;
  }
  for (Entry& entry : *found) {
    for (std::string& value : entry.values) groups.push_back(std::move(value));
  }
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  return groups;
}

}  // namespace mintgate::proxy::auth
