// Basic credentials against an LDAP directory (a simple bind as the user, OpenLDAP's libldap)
// and group membership from it, over ldaps:// or StartTLS with the server's certificate
// verified (ca_file or the system store); a plain ldap:// bind without StartTLS is refused by
// the configuration, never attempted. Each call uses its own connection: calls come from the
// authenticator's threads, never from an event loop. Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/auth/htpasswd.h"  // CheckResult
#include "proxy/config/config.h"

namespace mintgate::proxy::auth {

struct LdapBind {
  CheckResult result = CheckResult::kUnavailable;
  std::string dn;  // the user's entry, when found
  // The name as the entry spells it (the value of its DN's first attribute, "ALICE " typed
  // -> "alice"): LDAP compares names without case and outer spaces, rules compare exactly.
  // "" when the entry could not be read (the typed name then stands).
  std::string user;
  std::string error;  // for the log (never the password)
};

class LdapDirectory {
 public:
  explicit LdapDirectory(LdapConfig config);
  ~LdapDirectory();
  // Configuration problems found without connecting (URL scheme, templates, files): "" or why.
  std::string Check() const;
  // A simple bind as `user` with `password`. An empty password is refused without asking
  // the server (an LDAP "unauthenticated bind" would succeed). {user} in templates and
  // filters is escaped (RFC 4514 for DNs, RFC 4515 for filters).
  LdapBind Bind(std::string_view user, std::string_view password) const;
  // The groups of the user (its entry `dn`, from Bind or found by search when empty), named by
  // group_attribute; nullopt (and *error) when the directory could not be asked.
  std::optional<std::vector<std::string>> Groups(std::string_view user, std::string_view dn,
                                                 std::string* error) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mintgate::proxy::auth
