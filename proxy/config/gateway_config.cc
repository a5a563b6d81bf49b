#include "proxy/config/gateway_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <variant>

#include "proxy/config/admin_access.h"
#include "proxy/config/admin_token.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/schedule_overlay.h"
#include "rules/ip_address.h"
#include "tls/cert_info.h"
#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool HasNameConstraints(X509* cert) {
  return X509_get_ext_by_NID(cert, NID_name_constraints, -1) >= 0;
}

// Chrome enforces nameConstraints on every CA in the path, so a constrained enterprise CA
// cannot vouch for leaves minted for arbitrary hosts.
void WarnNameConstraints(const tls::CertAuthority& ca, std::vector<std::string>& warnings) {
  std::vector<X509*> path{ca.cert()};
  for (const tls::X509Ptr& c : ca.chain()) path.push_back(c.get());
  for (X509* cert : path) {
    if (!HasNameConstraints(cert)) continue;
    warnings.push_back("[ca." + ca.name() + "]: \"" + tls::DescribeCertificate(cert).subject_cn +
                       "\" carries nameConstraints: browsers will reject leaves for hosts "
                       "outside them, so this profile cannot inspect arbitrary sites");
  }
}

// Where the value that a CA profile's load error concerns is written: the key naming the file
// it is about (cert, key, a chain element, passphrase_file; passphrase_env for its own
// problems), else the profile's table.
rules::SourcePos CaLoadErrorSource(const Config& c, const CaProfileConfig& ca,
                                   const tls::LoadError& e) {
  const std::string table = "ca." + ca.spec.name;
  const tls::CaProfileSpec& spec = ca.spec;
  rules::SourcePos table_at = c.SourceOf(table);
  if (!table_at.known()) table_at = {ca.line, 0};
  auto key = [&](const std::string& name) {
    const rules::SourcePos at = c.SourceOf(table + "." + name);
    return at.known() ? at : table_at;
  };
  if (e.reason().rfind("passphrase_env", 0) == 0 && !spec.passphrase.env.empty()) {
    return key("passphrase_env");
  }
  if (e.file().empty()) return table_at;
  if (e.file() == spec.cert_file) return key("cert");
  if (e.file() == spec.key_file) return key("key");
  for (std::size_t i = 0; i < spec.chain_files.size(); ++i) {
    if (e.file() == spec.chain_files[i]) return key("chain[" + std::to_string(i) + "]");
  }
  if (e.file() == spec.passphrase.file) return key("passphrase_file");
  return table_at;
}

}  // namespace

std::string StateDirProblem(const std::string& state_dir) {
  struct stat st {};
  if (::stat(state_dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return "";
    return "server.state_dir: cannot access " + state_dir + ": " + std::strerror(errno);
  }
  if (!S_ISDIR(st.st_mode)) return "server.state_dir: " + state_dir + " is not a directory";
  const mode_t mode = st.st_mode & 07777;
  if ((mode & 022) != 0) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    return "server.state_dir: " + state_dir + " is writable by group or others (mode " + octal +
           "), who could replace the generated CA key and the admin token; run: chmod 700 " +
           state_dir;
  }
  return "";
}

GatewayConfig LoadGatewayConfig(const std::string& path, const GatewayConfigOptions& options) {
  GatewayConfig g;
  const std::time_t now = options.now != 0 ? options.now : std::time(nullptr);
  ConfigLoadResult loaded = ConfigLoader::LoadFile(path);
  g.config = std::move(loaded.config);
  g.errors = std::move(loaded.errors);
  const Config& c = g.config;
  auto error = [&g, &path](rules::SourcePos at, std::string message) {
    g.errors.push_back({path, at.line, at.column, std::move(message)});
  };

  // Before anything reads the schedule, so that the rules, the canaries, the audit and the
  // portal all see the one in force. Not over a file with errors: its state_dir and profiles
  // may be wrong, and the overlay would only add noise to the errors that matter.
  if (options.apply_schedule_overlay && g.errors.empty()) {
    g.schedule_overlay_file = ScheduleOverlayPath(c.server.state_dir);
    ScheduleOverlayLoad overlay = LoadScheduleOverlay(g.schedule_overlay_file);
    if (!overlay.ok()) {
      for (ConfigError& e : overlay.errors) g.errors.push_back(std::move(e));
      g.errors.push_back({g.schedule_overlay_file, 0, 0,
                          "the schedule overlay (changes made with `mintgate ca schedule` or the "
                          "console) cannot be applied: fix or remove this file; " +
                              ScheduleAuditPath(c.server.state_dir) + " lists those changes"});
    } else {
      ScheduleOverlayApplied applied =
          ApplyScheduleOverlay(overlay.overlay, g.schedule_overlay_file, g.config);
      g.schedule_overlay = std::move(applied.lines);
      g.warnings.insert(g.warnings.end(), applied.warnings.begin(), applied.warnings.end());
      g.schedule_overlay_warnings = std::move(applied.warnings);
    }
  }

  // Reachable from elsewhere, it is only as safe as the token, which crosses the network in
  // clear (plain HTTP).
  if (!IsLoopbackAddress(c.admin.listen.host)) {
    g.warnings.push_back("admin.listen " + c.admin.listen.ToString() +
                         " is not a loopback address: other hosts can reach the admin listener, "
                         "which speaks plain HTTP (the admin token crosses the network in "
                         "clear); prefer 127.0.0.1 or a dedicated management network");
  }

  for (const CanaryConfig& canary : c.canaries) {
    // A canary of the schedule overlay has no position in the file, hence the fallbacks.
    const rules::SourcePos table{canary.line, 0};
    const bool known = canary.ca == kGeneratedCaName ||
                       std::any_of(c.cas.begin(), c.cas.end(), [&](const CaProfileConfig& ca) {
                         return ca.spec.name == canary.ca;
                       });
    if (!known && !canary.ca.empty()) {
      error(canary.ca_source.known() ? canary.ca_source : table,
            "[[canary]]: ca = \"" + canary.ca + "\" is not a [ca.NAME] profile");
    }
    for (std::size_t i = 0; i < canary.clients.size(); ++i) {
      std::string why;
      if (!rules::Cidr::Parse(canary.clients[i], &why)) {
        const bool placed = i < canary.client_sources.size() && canary.client_sources[i].known();
        error(placed ? canary.client_sources[i] : table,
              "[[canary]] clients: \"" + canary.clients[i] + "\": " + why);
      }
    }
  }

  // The CA profiles, and the generated default when something relies on it.
  std::vector<rules::CaSchedule> schedules;
  std::vector<rules::CaScheduleSource> schedule_sources;
  bool default_configured = false;
  for (const CaProfileConfig& ca : c.cas) {
    schedules.push_back({ca.spec.name, ca.retire_at, ca.successor});
    const std::string table = "ca." + ca.spec.name;
    rules::CaScheduleSource source{c.SourceOf(table), c.SourceOf(table + ".retire_at"),
                                   c.SourceOf(table + ".successor")};
    if (!source.table.known()) source.table = {ca.line, 0};
    schedule_sources.push_back(source);
    default_configured = default_configured || ca.spec.name == kGeneratedCaName;
  }
  const bool default_referenced =
      c.inspection.default_ca == kGeneratedCaName ||
      std::any_of(c.rules.begin(), c.rules.end(),
                  [](const rules::Rule& r) { return r.ca == kGeneratedCaName; });
  if (!default_configured && default_referenced) {
    g.uses_generated_ca = true;
    g.generated_ca_dir = c.server.state_dir + "/ca";
    schedules.push_back({kGeneratedCaName, std::nullopt, ""});
  }

  if (options.load_cas) {
    if (std::string problem = StateDirProblem(c.server.state_dir); !problem.empty()) {
      error(c.SourceOf("server.state_dir"), std::move(problem));
    }
    // A configured token file must be there; the generated one only once it exists.
    const std::string token = AdminTokenPath(c);
    if (!c.admin.token_file.empty() || Exists(token)) {
      try {
        ReadAdminToken(token);
      } catch (const tls::LoadError& e) {
        error(c.admin.token_file.empty() ? rules::SourcePos{} : c.SourceOf("admin.token_file"),
              (c.admin.token_file.empty() ? "admin token: " : "admin.token_file: ") +
                  std::string(e.what()));
      }
    }
  }

  g.authorities.resize(c.cas.size());
  if (options.load_cas) {
    tls::SignerOptions signer_options;
    signer_options.signing_intermediate = c.mint.signing_intermediate;
    signer_options.leaf_days = c.mint.leaf_days;
    for (std::size_t i = 0; i < c.cas.size(); ++i) {
      try {
        g.authorities[i] = tls::CertAuthority::Load(c.cas[i].spec, signer_options, now);
        WarnNameConstraints(*g.authorities[i], g.warnings);
      } catch (const tls::LoadError& e) {
        error(CaLoadErrorSource(c, c.cas[i], e), "[ca." + c.cas[i].spec.name + "]: " + e.what());
      }
    }
    if (g.uses_generated_ca && !Exists(g.generated_ca_dir + "/ca.pem")) {
      g.warnings.push_back("CA profile \"default\" is generated in " + g.generated_ca_dir +
                           " at first start; clients must then install " + g.generated_ca_dir +
                           "/ca.pem");
    }
  }

  rules::RuleSetOptions rule_options;
  rule_options.inspection_enabled = c.inspection.enabled;
  rule_options.default_ca = c.inspection.default_ca;
  rule_options.default_ca_source = c.SourceOf("inspection.default_ca");
  if (c.auth.unidentified == Unidentified::kDecryptToLogin) {
    rule_options.login_ca = c.auth.login_ca.empty() ? c.inspection.default_ca : c.auth.login_ca;
    rule_options.login_ca_source =
        c.auth.login_ca.empty() ? rule_options.default_ca_source : c.SourceOf("auth.login_ca");
  }
  rule_options.cas = std::move(schedules);
  rule_options.ca_sources = std::move(schedule_sources);
  rule_options.category_sources = c.category_sources;
  auto compiled = rules::RuleSet::Compile(c.rules, c.categories, std::move(rule_options));
  if (auto* set = std::get_if<rules::RuleSet>(&compiled)) {
    g.rules = std::move(*set);
  } else {
    for (rules::RuleError& e : std::get<std::vector<rules::RuleError>>(compiled)) {
      // A category's pattern is placed in the category's own file.
      g.errors.push_back({e.file.empty() ? path : e.file, e.line, e.column, std::move(e.message)});
    }
  }
  return g;
}

}  // namespace mintgate::proxy
