// A configuration loaded and validated across modules: the TOML file (ConfigLoader), the CA
// profiles (tls::CertAuthority) and the rule set (rules::RuleSet). What `check`, `rules test`,
// `ca audit` and `run` all start from.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "rules/rule_set.h"
#include "tls/cert_authority.h"

namespace mintgate::proxy {

// The profile name that needs no [ca.NAME] table: a CA generated in state_dir.
inline constexpr const char* kGeneratedCaName = "default";

struct GatewayConfig {
  Config config;
  std::optional<rules::RuleSet> rules;  // set when the rules compiled
  // One per config.cas entry, in the same order; null where loading failed (or was skipped).
  std::vector<std::unique_ptr<tls::CertAuthority>> authorities;
  // True when "default" is used but not configured: it is the CA in state_dir/ca.
  bool uses_generated_ca = false;
  std::string generated_ca_dir;  // state_dir + "/ca"
  std::vector<ConfigError> errors;
  std::vector<std::string> warnings;
  // The schedule overlay (schedule_overlay.h), applied to `config` before anything was built
  // from it: its file, state_dir/schedule.toml whether or not it exists ("" when not applied),
  // one line per change it made, and the entries it skipped because they no longer fit the
  // file (those are in `warnings` too, so that everything that prints warnings shows them).
  std::string schedule_overlay_file;
  std::vector<std::string> schedule_overlay;
  std::vector<std::string> schedule_overlay_warnings;
  bool ok() const { return errors.empty(); }
};

struct GatewayConfigOptions {
  // false: check the CA section's shape only, and touch no file of state_dir (rules test)
  bool load_cas = true;
  std::time_t now = 0;  // 0: the current time
  // false: the configuration as its file says, without state_dir/schedule.toml (what
  // `mintgate ca schedule` validates a change against).
  bool apply_schedule_overlay = true;
};

// Why `state_dir` may not hold the generated CA key and the admin token, or "" when it may: a
// directory that group or others can write lets them replace those files. A state_dir that
// does not exist yet is fine (it is created 0700).
std::string StateDirProblem(const std::string& state_dir);

// Loads `path`, applies the schedule overlay of its state_dir, and validates everything it
// can, collecting every problem. A malformed overlay file is an error (it may hold a rollback
// that must not be lost); an entry that no longer fits the file is a warning.
GatewayConfig LoadGatewayConfig(const std::string& path, const GatewayConfigOptions& options);

}  // namespace mintgate::proxy
