#include "proxy/control/audit_command.h"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "proxy/config/gateway_config.h"
#include "proxy/config/rfc3339.h"
#include "proxy/control/text_table.h"
#include "rules/ca_resolver.h"
#include "tls/cert_info.h"
#include "tls/cert_loader.h"

namespace mintgate::proxy {
namespace {

constexpr int kClean = 0;
constexpr int kNeedsMigration = 1;
constexpr int kConfigError = 2;
constexpr std::time_t kExpiringWindow = 30 * 24 * 3600;

// What the audit knows of one profile.
struct ProfileFacts {
  std::string name;
  std::optional<tls::CertInfo> info;  // unset when the certificate could not be read
  std::string error;
  bool pending = false;  // the generated CA, made at the gateway's first start: not an error
  std::optional<rules::Instant> retire_at;
  std::string successor;
  std::vector<std::string> used_by;
};

struct RuleRow {
  std::string rule;
  std::string action;
  std::string configured;  // the profile the rule names (or the default); "" for non-decrypt
  std::string profile;     // the profile that signs at --at
  std::string subject_cn;  // 発行先
  std::string issuer_cn;   // 発行元
  std::string status;      // ok | migrate | expiring | pending | error
  std::string switches;    // when a migrate rule switches (or switched), and to what
};

long long DaysLeft(const tls::CertInfo& info, rules::Instant at) {
  return (static_cast<long long>(info.not_after) - at.time_since_epoch().count()) / 86400;
}

}  // namespace

int RunCaAudit(const CaAuditArgs& args, std::ostream& out, std::ostream& err) {
  const std::optional<rules::Instant> at_option = ParseAtOption(args.at, err);
  if (!at_option) return kConfigError;
  const rules::Instant at = *at_option;
  // CA files are read here one by one, so that a broken profile is a row with status
  // "error" rather than the end of the audit.
  GatewayConfigOptions options;
  options.load_cas = false;
  GatewayConfig g = LoadGatewayConfig(args.config, options);
  if (!g.ok()) {
    for (const ConfigError& e : g.errors) err << "error: " << e.ToString() << "\n";
    return kConfigError;
  }
  // Entries of the overlay that no longer fit the file change what the audit shows.
  for (const std::string& w : g.schedule_overlay_warnings) err << "warning: " << w << "\n";

  std::map<std::string, ProfileFacts> profiles;
  auto read_profile = [&profiles](const std::string& name, const std::string& cert_file,
                                  std::optional<rules::Instant> retire_at,
                                  const std::string& successor) {
    ProfileFacts& p = profiles[name];
    p.name = name;
    p.retire_at = retire_at;
    p.successor = successor;
    try {
      tls::X509Ptr cert = tls::LoadCertificate(cert_file);
      p.info = tls::DescribeCertificate(cert.get());
    } catch (const std::exception& e) {
      p.error = e.what();
    }
  };
  for (const CaProfileConfig& ca : g.config.cas) {
    read_profile(ca.spec.name, ca.spec.cert_file, ca.retire_at, ca.successor);
  }
  if (g.uses_generated_ca) {
    read_profile(kGeneratedCaName, g.generated_ca_dir + "/ca.pem", std::nullopt, "");
    if (!profiles[kGeneratedCaName].info) {
      profiles[kGeneratedCaName].error =
          "generated at the gateway's first start in " + g.generated_ca_dir;
      profiles[kGeneratedCaName].pending = true;
    }
  }

  std::vector<RuleRow> rows;
  bool needs_migration = false;
  // A row for a decrypt path that signs with `configured` (after its retirements).
  auto decrypt_row = [&](const std::string& name, const std::string& configured_profile) {
    RuleRow row;
    row.rule = name;
    row.action = "decrypt";
    row.configured = configured_profile;
    row.profile = g.rules->ResolveCa(row.configured, at, nullptr).value_or(row.configured);
    profiles[row.configured].used_by.push_back(name);
    if (row.profile != row.configured) profiles[row.profile].used_by.push_back(name);
    const ProfileFacts& signing = profiles[row.profile];
    if (signing.info) {
      row.subject_cn = signing.info->subject_cn;
      row.issuer_cn = signing.info->issuer_cn;
    }
    // The first scheduled retirement on the chain from the configured profile.
    const ProfileFacts& configured = profiles[row.configured];
    const bool retires = configured.retire_at.has_value();
    if (retires) {
      const std::string target = g.rules->ResolveCa(row.configured, *configured.retire_at, nullptr)
                                     .value_or(configured.successor);
      row.switches = rules::FormatInstant(*configured.retire_at) + " -> " + target;
    }
    if (!signing.info) {
      row.status = signing.pending ? "pending" : "error";
    } else if (retires) {
      row.status = "migrate";
      needs_migration = true;
    } else if (signing.info->not_after - at.time_since_epoch().count() < kExpiringWindow) {
      row.status = "expiring";
    } else {
      row.status = "ok";
    }
    return row;
  };
  for (const rules::Rule& rule : g.rules->rules()) {
    if (rule.action != rules::Action::kDecrypt) {
      RuleRow row;
      row.rule = rule.name;
      row.action = std::string(rules::ToString(rule.action));
      row.status = "ok";  // tunnel and block rules sign nothing
      rows.push_back(row);
      continue;
    }
    rows.push_back(
        decrypt_row(rule.name, rule.ca.empty() ? g.config.inspection.default_ca : rule.ca));
  }
  if (!g.rules->options().login_ca.empty()) {
    // auth.unidentified = "decrypt-to-login": every client the gateway cannot identify is
    // decrypted with this profile, whatever the rules and the inspection switch say.
    rows.push_back(decrypt_row(std::string(kLoginRow), g.rules->options().login_ca));
  }

  // A profile that cannot be read is an error whether a rule uses it or not (the gateway
  // would not start with it), and it makes the audit fail: nothing about the rules that use
  // it can be known, least of all that they are migrated.
  std::vector<std::string> errors;
  for (const auto& [name, p] : profiles) {
    if (p.info || p.pending) continue;
    std::string used;
    for (const std::string& u : p.used_by) used += (used.empty() ? "" : ", ") + u;
    errors.push_back("CA profile \"" + name + "\" cannot be read: " +
                     (p.error.empty() ? std::string("no such profile") : p.error) +
                     (used.empty() ? std::string() : " (used by " + used + ")"));
  }
  const int exit_code = !errors.empty() ? kConfigError : needs_migration ? kNeedsMigration : kClean;

  if (args.json) {
    nlohmann::json j;
    j["config"] = args.config;
    j["at"] = rules::FormatInstant(at);
    j["needs_migration"] = needs_migration;
    j["ok"] = errors.empty();
    j["errors"] = errors;
    j["overlay"] = {{"file", g.schedule_overlay_file},
                    {"changes", g.schedule_overlay},
                    {"warnings", g.schedule_overlay_warnings}};
    j["rules"] = nlohmann::json::array();
    for (const RuleRow& r : rows) {
      auto opt = [](const std::string& s) {
        return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
      };
      j["rules"].push_back({{"rule", r.rule},
                            {"action", r.action},
                            {"configured_profile", opt(r.configured)},
                            {"profile", opt(r.profile)},
                            {"subject_cn", opt(r.subject_cn)},
                            {"issuer_cn", opt(r.issuer_cn)},
                            {"status", r.status},
                            {"switches", opt(r.switches)}});
    }
    j["profiles"] = nlohmann::json::array();
    for (const auto& [name, p] : profiles) {
      nlohmann::json pj = {{"name", name}, {"used_by", p.used_by}};
      if (p.info) {
        pj["subject"] = p.info->subject;
        pj["subject_cn"] = p.info->subject_cn;
        pj["issuer"] = p.info->issuer;
        pj["issuer_cn"] = p.info->issuer_cn;
        pj["key_type"] = p.info->key_type;
        pj["not_after"] = tls::FormatTime(p.info->not_after);
        pj["days_left"] = DaysLeft(*p.info, at);
        pj["sha256"] = p.info->sha256;
      } else {
        pj[p.pending ? "pending" : "error"] = p.error;
      }
      if (p.retire_at) pj["retire_at"] = rules::FormatInstant(*p.retire_at);
      if (!p.successor.empty()) pj["successor"] = p.successor;
      j["profiles"].push_back(pj);
    }
    out << j.dump(2) << "\n";
    return exit_code;
  }

  out << "CA migration audit of " << args.config << " at " << rules::FormatInstant(at) << "\n";
  if (!g.schedule_overlay.empty()) {
    out << "schedule overlay " << g.schedule_overlay_file << ":\n";
    for (const std::string& line : g.schedule_overlay) out << "  " << line << "\n";
  }
  out << "\n";
  std::vector<std::vector<std::string>> table = {
      {"RULE", "ACTION", "PROFILE", "発行先 (SUBJECT)", "発行元 (ISSUER)", "STATUS", "SWITCHES"}};
  for (const RuleRow& r : rows) {
    std::string profile = Cell(r.profile);
    if (!r.profile.empty() && r.profile != r.configured) profile += " (via " + r.configured + ")";
    table.push_back({r.rule, r.action, profile, Cell(r.subject_cn), Cell(r.issuer_cn), r.status,
                     Cell(r.switches)});
  }
  PrintTable(out, table);
  out << "\n";
  std::vector<std::vector<std::string>> ptable = {
      {"PROFILE", "SUBJECT", "ISSUER", "KEY", "NOT AFTER", "DAYS", "SHA-256", "USED BY"}};
  for (const auto& [name, p] : profiles) {
    std::string used;
    for (const std::string& u : p.used_by) used += (used.empty() ? "" : ",") + u;
    if (p.info) {
      ptable.push_back({name, p.info->subject_cn, p.info->issuer_cn, p.info->key_type,
                        tls::FormatTime(p.info->not_after), std::to_string(DaysLeft(*p.info, at)),
                        p.info->sha256, Cell(used)});
    } else {
      ptable.push_back({name, (p.pending ? "pending: " : "error: ") + p.error, "-", "-", "-", "-",
                        "-", Cell(used)});
    }
  }
  PrintTable(out, ptable);
  out << "\n";
  if (!errors.empty()) {
    for (const std::string& e : errors) err << "error: " << e << "\n";
    out << errors.size() << (errors.size() == 1 ? " error" : " errors")
        << ": the audit is incomplete and says nothing about the rules involved (exit 2).\n";
    return exit_code;
  }
  out << (needs_migration ? "Some rules still need migration (exit 1)."
                          : "No rule needs migration.")
      << "\n";
  return exit_code;
}

}  // namespace mintgate::proxy
