// Negotiate (SPNEGO/Kerberos, RFC 4559) for proxy authentication through MIT GSS-API: the
// client's token from "Proxy-Authorization: Negotiate <base64>" is accepted with the keytab's
// HTTP/ service key, and the user is the client's principal. Kerberos completes in one round
// trip; a mechanism that needs more (NTLM inside SPNEGO) is refused. Thread-safe: each Accept
// has its own security context.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace mintgate::proxy::auth {

struct NegotiateResult {
  bool ok = false;
  std::string user;       // the principal, without "@REALM" when strip_realm
  std::string principal;  // as Kerberos gave it: "alice@EXAMPLE.COM"
  std::string reply;      // base64 token for "Proxy-Authenticate: Negotiate <reply>" ("" = none)
  std::string error;      // why not, for the log (never a secret)
};

class NegotiateAcceptor {
 public:
  // `keytab`: the file with the service key; `service_principal`: "HTTP/gw.example.com@REALM"
  // or "" for any key the keytab holds.
  NegotiateAcceptor(std::string keytab, std::string service_principal, bool strip_realm);
  ~NegotiateAcceptor();
  NegotiateAcceptor(const NegotiateAcceptor&) = delete;
  NegotiateAcceptor& operator=(const NegotiateAcceptor&) = delete;
  // Checks that the keytab can be read and holds the service key: "" when usable, else why.
  std::string Load();
  // `token_base64`: what follows "Negotiate " in the header.
  NegotiateResult Accept(std::string_view token_base64) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mintgate::proxy::auth
