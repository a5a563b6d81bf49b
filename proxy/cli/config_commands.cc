#include "proxy/cli/config_commands.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "proxy/auth/authenticator.h"
#include "proxy/config/gateway_config.h"
#include "proxy/config/rfc3339.h"
#include "rules/ca_resolver.h"

namespace mintgate::proxy {
namespace {

constexpr int kOk = 0;
constexpr int kConfigError = 2;

void PrintProblems(const GatewayConfig& g, std::ostream& err) {
  for (const ConfigError& e : g.errors) err << "error: " << e.ToString() << "\n";
  for (const std::string& w : g.warnings) err << "warning: " << w << "\n";
}

// What state_dir/schedule.toml changes on top of the file, since the file alone no longer
// says what the gateway does.
void PrintScheduleOverlay(const GatewayConfig& g, std::ostream& out) {
  if (g.schedule_overlay.empty()) return;
  out << "schedule overlay " << g.schedule_overlay_file << ":\n";
  for (const std::string& line : g.schedule_overlay) out << "  " << line << "\n";
}

}  // namespace

int RunCheck(const std::string& config, std::ostream& out, std::ostream& err) {
  GatewayConfig g = LoadGatewayConfig(config, {});
  PrintProblems(g, err);
  if (!g.ok()) {
    err << config << ": " << g.errors.size() << (g.errors.size() == 1 ? " problem" : " problems")
        << "\n";
    return kConfigError;
  }
  if (g.config.auth.Enabled()) {
    // The files, the keytab and the LDAP settings, as the gateway reads them at start.
    auth::Authenticator::Options options;
    options.threads = 0;
    auth::Authenticator authenticator(g.config.auth, nullptr, options);
    std::vector<std::string> warnings;
    const std::vector<std::string> errors = authenticator.Load(&warnings);
    for (const std::string& w : warnings) err << config << ": warning: [auth]: " << w << "\n";
    for (const std::string& e : errors) err << config << ": [auth]: " << e << "\n";
    if (!errors.empty()) {
      err << config << ": " << errors.size() << (errors.size() == 1 ? " problem" : " problems")
          << "\n";
      return kConfigError;
    }
  }
  std::size_t patterns = 0;
  for (const rules::Category& category : g.config.categories) {
    patterns += category.patterns.size();
  }
  const std::size_t rule_count = g.rules->size();
  out << config << ": OK: " << g.config.cas.size() << " CA profile(s)"
      << (g.uses_generated_ca ? " + the generated \"default\"" : "") << ", " << rule_count
      << " rule(s) including " << (g.rules->has_implicit_default() ? "the implicit" : "a")
      << " default rule, " << g.config.categories.size() << " categor"
      << (g.config.categories.size() == 1 ? "y" : "ies") << " with " << patterns
      << " pattern(s); inspection " << (g.config.inspection.enabled ? "enabled" : "disabled")
      << "\n";
  PrintScheduleOverlay(g, out);
  return kOk;
}

int RunRulesTest(const RulesTestArgs& args, std::ostream& out, std::ostream& err) {
  const std::optional<rules::Instant> at_option = ParseAtOption(args.at, err);
  if (!at_option) return kConfigError;
  const rules::Instant at = *at_option;
  // The rules alone decide: CA files need not be in place to test a rule set.
  GatewayConfigOptions options;
  options.load_cas = false;
  GatewayConfig g = LoadGatewayConfig(args.config, options);
  if (!g.ok()) {
    PrintProblems(g, err);
    return kConfigError;
  }
  rules::Target target;
  target.host = args.sni.empty() ? args.host : args.sni;
  target.port = args.port;
  target.client = args.client;
  target.user = args.user;
  target.groups = args.groups;
  target.identity_known = !args.unidentified;
  const rules::Decision d = g.rules->Decide(target, at);

  const std::string ca = d.action == rules::Action::kDecrypt ? d.ca : "";
  if (args.json) {
    nlohmann::json j = {
        {"host", target.host},
        {"port", target.port},
        {"client", target.client},
        {"user", target.user},
        {"groups", target.groups},
        {"at", rules::FormatInstant(at)},
        {"rule", d.rule},
        {"rule_index", d.rule_index},
        {"action", std::string(rules::ToString(d.action))},
        {"rule_action", std::string(rules::ToString(d.rule_action))},
        {"ca", ca.empty() ? nlohmann::json(nullptr) : nlohmann::json(ca)},
        {"configured_ca", d.configured_ca},
        {"reason", d.reason},
        {"login", d.login},
    };
    out << j.dump(2) << "\n";
    return kOk;
  }
  const std::vector<rules::Rule>& list = g.rules->rules();
  const int line = d.rule_index >= 0 && static_cast<std::size_t>(d.rule_index) < list.size()
                       ? list[static_cast<std::size_t>(d.rule_index)].line
                       : 0;
  out << "target:  " << target.host << ":" << target.port;
  if (!target.client.empty()) out << " from " << target.client;
  if (!target.user.empty()) out << " user " << target.user;
  for (const std::string& group : target.groups) out << " group " << group;
  if (args.unidentified) out << " (user not identified)";
  out << " at " << rules::FormatInstant(at) << "\n";
  out << "rule:    " << d.rule << " (#" << d.rule_index + 1;
  if (line > 0) out << ", " << args.config << ":" << line;
  out << ")\n";
  out << "action:  " << rules::ToString(d.action);
  if (d.action != d.rule_action) out << " (the rule says " << rules::ToString(d.rule_action) << ")";
  out << "\n";
  out << "ca:      " << (ca.empty() ? "-" : ca);
  if (!ca.empty() && ca != d.configured_ca) out << " (configured: " << d.configured_ca << ")";
  out << "\n";
  out << "reason:  " << d.reason << "\n";
  return kOk;
}

}  // namespace mintgate::proxy
