// The decryption-rule model (SPEC §4): what a rule matches, what it does, and what a decision
// about one connection says. Standard library only: the config loader (proxy/) fills these.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rules/action.h"

namespace mintgate::rules {

using Instant = std::chrono::sys_seconds;

inline Instant Now() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

// Where a value was written in a configuration file, to point errors at it: 1-based line and
// column, 0 when unknown (a rule built in code, a value the file does not set).
struct SourcePos {
  int line = 0;
  int column = 0;
  bool known() const { return line > 0; }
  friend bool operator==(const SourcePos&, const SourcePos&) = default;
};

// Where the loader read each of a rule's values. The lists are parallel to Rule's match lists
// (an element without a position, or a shorter list, is unknown).
struct RuleSource {
  SourcePos table;  // the [[rule]] header
  SourcePos name;
  SourcePos action;
  SourcePos ca;
  std::vector<SourcePos> hosts;
  std::vector<SourcePos> ports;
  std::vector<SourcePos> clients;
  std::vector<SourcePos> users;
  std::vector<SourcePos> groups;
  std::vector<SourcePos> categories;
};

// One decryption rule. An empty match list matches anything; all non-empty lists must match.
struct Rule {
  std::string name;
  Action action = Action::kDecrypt;
  // Host patterns: "host.example" (exactly that name), "*.x.example" (any name below
  // x.example, at any depth, not x.example itself), ".x.example" (x.example and every name
  // below it), an IP literal ("192.0.2.1", "2001:db8::1") or a CIDR ("10.0.0.0/8").
  // Names are ASCII (IDNs in their xn-- form), compared case-insensitively.
  std::vector<std::string> hosts;
  std::vector<std::uint16_t> ports;
  std::vector<std::string> clients;     // CIDRs or single addresses, IPv4 or IPv6
  std::vector<std::string> users;       // exact user names
  std::vector<std::string> groups;      // the target matches if it is in any of them
  std::vector<std::string> categories;  // names of category lists
  std::string ca;                       // CA profile for decrypt rules; "" = inspection.default_ca
  int line = 0;                         // where the rule starts in its config file (0: unknown)
  RuleSource source;                    // where each value was written, for errors
};

// A named list of host patterns (same syntax as Rule::hosts), e.g. from a category file.
struct Category {
  std::string name;
  std::vector<std::string> patterns;
};

// Where a category was defined and its patterns were read (RuleSetOptions::category_sources).
struct CategorySource {
  SourcePos table;                  // its table in the configuration file
  std::string file;                 // the file its patterns come from ("": the configuration)
  std::vector<SourcePos> patterns;  // in `file`, parallel to Category::patterns
};

// Where a CA profile's scheduling keys were written (RuleSetOptions::ca_sources).
struct CaScheduleSource {
  SourcePos table;  // its [ca.NAME] table
  SourcePos retire_at;
  SourcePos successor;
};

// The scheduling facts of a CA profile that decisions need (retire_at + successor).
struct CaSchedule {
  std::string name;
  std::optional<Instant> retire_at;
  std::string successor;  // required when retire_at is set
};

struct RuleSetOptions {
  bool inspection_enabled = true;
  std::string default_ca = "default";
  std::vector<CaSchedule> cas;  // every profile; rules naming others are a config error
  // auth.unidentified = "decrypt-to-login": a target whose user is not known
  // (identity_known == false) is decrypted with this profile (auth.login_ca, else default_ca)
  // whatever the rule and the inspection switch say, so the gateway can run its login.
  // "" = no such exception.
  std::string login_ca;
  // Where these were written, for errors; each list parallel to its own (`cas`, the
  // categories given to Compile), and may be empty. Unknown positions stay 0.
  std::vector<CaScheduleSource> ca_sources;
  std::vector<CategorySource> category_sources;
  SourcePos default_ca_source;  // inspection.default_ca
  SourcePos login_ca_source;    // auth.login_ca (or inspection.default_ca when that is used)
};

// What is being decided about: one connection (or request).
struct Target {
  std::string host;  // SNI, or the CONNECT/request host when there is no SNI
  std::uint16_t port = 443;
  std::string client;  // client address, textual IPv4/IPv6
  std::string user;    // "" when unknown
  std::vector<std::string> groups;
  // False when the gateway could not identify the user and must run its login: the original
  // product's exception, decrypted even where inspection is off (RuleSetOptions::login_ca).
  bool identity_known = true;
};

struct Decision {
  Action action = Action::kDecrypt;
  std::string rule;                       // the matched rule's name; "default" for the default rule
  int rule_index = -1;                    // position in the rule list (the default rule is last)
  Action rule_action = Action::kDecrypt;  // before the inspection switch was applied
  std::string ca;             // the profile that signs, after retirement; "" unless decrypt
  std::string configured_ca;  // the profile the rule names (or the default CA)
  std::string reason;         // a human explanation of why
  bool login = false;         // decrypted only to run the login (identity unknown)
};

}  // namespace mintgate::rules
