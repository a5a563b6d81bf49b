#include "proxy/auth/ldap_directory.h"

#include <lber.h>
#include <ldap.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>

namespace mintgate::proxy::auth {
namespace {

// RFC 4514: a value inside a DN.
std::string EscapeDnValue(std::string_view value) {
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    const bool special = c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' ||
                         c == ';' || c == '=' || (c == '#' && i == 0) ||
                         (c == ' ' && (i == 0 || i + 1 == value.size()));
    if (c == '\0') {
      out += "\\00";
    } else if (special) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

// RFC 4515: a value inside a search filter.
std::string EscapeFilterValue(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : value) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
      out += '\\';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Replace(std::string text, std::string_view token, const std::string& with) {
  for (std::size_t at = text.find(token); at != std::string::npos;
       at = text.find(token, at + with.size())) {
    text.replace(at, token.size(), with);
  }
  return text;
}

bool Usable(std::string_view user) {
  if (user.empty() || user.size() > 256) return false;
  return std::none_of(user.begin(), user.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

struct Connection {
  LDAP* ld = nullptr;
  ~Connection() {
    if (ld != nullptr) ldap_unbind_ext_s(ld, nullptr, nullptr);
  }
};

std::string LdapError(LDAP* ld, int rc) {
  std::string out = ldap_err2string(rc);
  char* diagnostic = nullptr;
  if (ld != nullptr && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == 0 &&
      diagnostic != nullptr) {
    if (diagnostic[0] != '\0') out += std::string(" (") + diagnostic + ")";
    ldap_memfree(diagnostic);
  }
  return out;
}

}  // namespace

struct LdapDirectory::Impl {
  LdapConfig config;
  std::string bind_password;  // from bind_password_file, read once

  // A connection ready for binds (TLS set up and verified); null and *error on failure.
  bool Open(Connection& c, std::string* error) const {
    int rc = ldap_initialize(&c.ld, config.url.c_str());
    if (rc != LDAP_SUCCESS) {
      *error = "cannot use " + config.url + ": " + ldap_err2string(rc);
      return false;
    }
    const int version = LDAP_VERSION3;
    ldap_set_option(c.ld, LDAP_OPT_PROTOCOL_VERSION, &version);
    ldap_set_option(c.ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    timeval timeout{static_cast<time_t>(config.timeout_ms / 1000),
                    static_cast<suseconds_t>(config.timeout_ms % 1000 * 1000)};
    ldap_set_option(c.ld, LDAP_OPT_NETWORK_TIMEOUT, &timeout);
    ldap_set_option(c.ld, LDAP_OPT_TIMEOUT, &timeout);
    // TLS options on this handle only, then a context of its own (LDAP_OPT_X_TLS_NEWCTX):
    // nothing global, so concurrent calls and configurations do not meet.
    const int demand = LDAP_OPT_X_TLS_DEMAND;
    ldap_set_option(c.ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
    if (!config.ca_file.empty()) {
      ldap_set_option(c.ld, LDAP_OPT_X_TLS_CACERTFILE, config.ca_file.c_str());
    }
    const int server = 0;
    rc = ldap_set_option(c.ld, LDAP_OPT_X_TLS_NEWCTX, &server);
    if (rc != LDAP_OPT_SUCCESS) {
      *error = "TLS setup failed: " + LdapError(c.ld, rc);
      return false;
    }
    if (config.starttls) {
      rc = ldap_start_tls_s(c.ld, nullptr, nullptr);
      if (rc != LDAP_SUCCESS) {
        *error = "StartTLS with " + config.url + " failed: " + LdapError(c.ld, rc);
        return false;
      }
    }
    return true;
  }

  int SimpleBind(LDAP* ld, const std::string& dn, std::string_view password) const {
    berval cred{static_cast<ber_len_t>(password.size()), const_cast<char*>(password.data())};
    return ldap_sasl_bind_s(ld, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
  }

  // Binds for searches: as bind_dn, or anonymously.
  bool BindForSearch(LDAP* ld, std::string* error) const {
    if (config.bind_dn.empty()) return true;
    const int rc = SimpleBind(ld, config.bind_dn, bind_password);
    if (rc != LDAP_SUCCESS) {
      *error = "bind as auth.ldap.bind_dn failed: " + LdapError(ld, rc);
      return false;
    }
    return true;
  }

  // The DNs of entries under `base` matching `filter`; nullopt and *error on failure.
  std::optional<std::vector<std::pair<std::string, std::vector<std::string>>>> Search(
      LDAP* ld, const std::string& base, const std::string& filter, const char* attribute,
      std::string* error) const {
    char* attrs[] = {const_cast<char*>(attribute != nullptr ? attribute : LDAP_NO_ATTRS), nullptr};
    LDAPMessage* result = nullptr;
    timeval timeout{static_cast<time_t>(config.timeout_ms / 1000),
                    static_cast<suseconds_t>(config.timeout_ms % 1000 * 1000)};
    const int rc = ldap_search_ext_s(ld, base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attrs, 0,
                                     nullptr, nullptr, &timeout, 1000, &result);
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
      *error = "search under \"" + base + "\" failed: " + LdapError(ld, rc);
      if (result != nullptr) ldap_msgfree(result);
      return std::nullopt;
    }
    for (LDAPMessage* e = ldap_first_entry(ld, result); e != nullptr; e = ldap_next_entry(ld, e)) {
      std::pair<std::string, std::vector<std::string>> entry;
      if (char* dn = ldap_get_dn(ld, e)) {
        entry.first = dn;
        ldap_memfree(dn);
      }
      if (attribute != nullptr) {
        if (berval** values = ldap_get_values_len(ld, e, attribute)) {
          for (berval** v = values; *v != nullptr; ++v) {
            entry.second.emplace_back((*v)->bv_val, (*v)->bv_len);
          }
          ldap_value_free_len(values);
        }
      }
      out.push_back(std::move(entry));
    }
    ldap_msgfree(result);
    return out;
  }

  // The user's DN: from the template, or by a search.
  std::optional<std::string> FindDn(LDAP* ld, std::string_view user, LdapBind* out) const {
    if (!config.user_dn.empty()) return Replace(config.user_dn, "{user}", EscapeDnValue(user));
    std::string error;
    if (!BindForSearch(ld, &error)) {
      out->result = CheckResult::kUnavailable;
      out->error = error;
      return std::nullopt;
    }
    const std::string filter = Replace(config.search_filter, "{user}", EscapeFilterValue(user));
    auto found = Search(ld, config.search_base, filter, nullptr, &error);
    if (!found) {
      out->result = CheckResult::kUnavailable;
      out->error = error;
      return std::nullopt;
    }
    if (found->empty()) {
      out->result = CheckResult::kUnknownUser;
      return std::nullopt;
    }
    if (found->size() > 1) {
      out->result = CheckResult::kUnavailable;
      out->error = "ambiguous: " + std::to_string(found->size()) + " entries match " + filter;
      return std::nullopt;
    }
    return found->front().first;
  }
};

LdapDirectory::LdapDirectory(LdapConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
}

LdapDirectory::~LdapDirectory() = default;

std::string LdapDirectory::Check() const {
  const LdapConfig& c = impl_->config;
  const bool ldaps = c.url.rfind("ldaps://", 0) == 0;
  const bool ldap = c.url.rfind("ldap://", 0) == 0;
  const bool ldapi = c.url.rfind("ldapi://", 0) == 0;
  if (!ldaps && !ldap && !ldapi) {
    return "auth.ldap.url must start with ldaps://, ldap:// (with starttls) or ldapi://";
  }
  if (ldap && !c.starttls) return "auth.ldap.url is ldap:// without starttls = true";
  if (c.user_dn.empty() == c.search_base.empty()) {
    return "[auth.ldap] needs exactly one of user_dn or search_base";
  }
  if (!c.user_dn.empty() && c.user_dn.find("{user}") == std::string::npos) {
    return "auth.ldap.user_dn must contain {user}";
  }
  LDAPURLDesc* desc = nullptr;
  if (ldap_url_parse(c.url.c_str(), &desc) != LDAP_URL_SUCCESS) {
    return "auth.ldap.url \"" + c.url + "\" is not an LDAP URL";
  }
  ldap_free_urldesc(desc);
  if (!c.ca_file.empty()) {
    std::ifstream in(c.ca_file);
    if (!in) return "auth.ldap.ca_file \"" + c.ca_file + "\": cannot read: " + std::strerror(errno);
  }
  if (!c.bind_password_file.empty()) {
    struct stat st {};
    std::ifstream in(c.bind_password_file);
    if (!in || ::stat(c.bind_password_file.c_str(), &st) != 0) {
      return "auth.ldap.bind_password_file \"" + c.bind_password_file +
             "\": cannot read: " + std::strerror(errno);
    }
    if ((st.st_mode & 077) != 0) {
      return "auth.ldap.bind_password_file \"" + c.bind_password_file +
             "\" is readable by group or others; run: chmod 600 " + c.bind_password_file;
    }
    std::getline(in, impl_->bind_password);
    if (!impl_->bind_password.empty() && impl_->bind_password.back() == '\r') {
      impl_->bind_password.pop_back();
    }
  }
  return "";
}

LdapBind LdapDirectory::Bind(std::string_view user, std::string_view password) const {
  LdapBind out;
  if (password.empty()) {
    // An LDAP bind with a DN and no password is an "unauthenticated bind" that succeeds.
    out.result = CheckResult::kWrongPassword;
    return out;
  }
  if (!Usable(user)) {
    out.result = CheckResult::kUnknownUser;
    return out;
  }
  Connection c;
  if (!impl_->Open(c, &out.error)) {
    out.result = CheckResult::kUnavailable;
    return out;
  }
  std::optional<std::string> dn = impl_->FindDn(c.ld, user, &out);
  if (!dn) return out;
  const int rc = impl_->SimpleBind(c.ld, *dn, password);
  if (rc == LDAP_SUCCESS) {
    out.result = CheckResult::kOk;
    out.dn = *dn;
  } else if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INVALID_DN_SYNTAX) {
    // A DN from the template that does not exist also gives invalid credentials.
    out.result = CheckResult::kWrongPassword;
  } else {
    out.result = CheckResult::kUnavailable;
    out.error = "bind failed: " + LdapError(c.ld, rc);
  }
  return out;
}

std::optional<std::vector<std::string>> LdapDirectory::Groups(std::string_view user,
                                                              std::string_view dn,
                                                              std::string* error) const {
  const LdapConfig& config = impl_->config;
  if (config.group_base.empty()) return std::vector<std::string>{};
  if (!Usable(user)) return std::vector<std::string>{};
  Connection c;
  std::string why;
  if (!impl_->Open(c, &why) || !impl_->BindForSearch(c.ld, &why)) {
    if (error != nullptr) *error = why;
    return std::nullopt;
  }
  std::string user_dn(dn);
  if (user_dn.empty()) {
    LdapBind found;
    std::optional<std::string> d = impl_->FindDn(c.ld, user, &found);
    if (!d) {
      if (found.result == CheckResult::kUnknownUser) return std::vector<std::string>{};
      if (error != nullptr) *error = found.error;
      return std::nullopt;
    }
    user_dn = *d;
  }
  std::string filter = Replace(config.group_filter, "{dn}", EscapeFilterValue(user_dn));
  filter = Replace(filter, "{user}", EscapeFilterValue(user));
  auto found = impl_->Search(c.ld, config.group_base, filter, config.group_attribute.c_str(), &why);
  if (!found) {
    if (error != nullptr) *error = why;
    return std::nullopt;
  }
  std::vector<std::string> groups;
  for (auto& [entry_dn, values] : *found) {
    for (std::string& v : values) groups.push_back(std::move(v));
  }
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  return groups;
}

}  // namespace mintgate::proxy::auth
