// `mintgate ca audit`: the migration check of the original product ("open every decryption
// rule and compare the issued-to and issued-by of its certificate"), for all rules at once.
#pragma once

#include <ostream>
#include <string>

namespace mintgate::proxy {

// The audit's row for auth.unidentified = "decrypt-to-login" (not a rule: the login path).
inline constexpr char kLoginRow[] = "(login: unidentified users)";

struct CaAuditArgs {
  std::string config;
  std::string at;  // RFC 3339; "" = now
  bool json = false;
};

// Exit 1 when any rule still needs migration, 0 when none does, 2 on a configuration error.
int RunCaAudit(const CaAuditArgs& args, std::ostream& out, std::ostream& err);

}  // namespace mintgate::proxy
