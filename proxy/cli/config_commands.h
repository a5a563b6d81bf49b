// `mintgate check` and `mintgate rules test`: how an administrator validates a configuration
// and asks what it would do, before deploying it. Each returns the exit code (SPEC §3).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace mintgate::proxy {

// Loads everything (TOML, CA files, categories, rules) and reports every problem.
int RunCheck(const std::string& config, std::ostream& out, std::ostream& err);

struct RulesTestArgs {
  std::string config;
  std::string host;
  std::uint16_t port = 443;
  std::string client;
  std::string user;
  std::vector<std::string> groups;
  bool unidentified = false;  // the user is not known (auth.unidentified applies)
  std::string sni;            // decides instead of host when given, as on the wire
  std::string at;             // RFC 3339; "" = now
  bool json = false;
};

int RunRulesTest(const RulesTestArgs& args, std::ostream& out, std::ostream& err);

}  // namespace mintgate::proxy
