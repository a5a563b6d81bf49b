#include "proxy/control/runtime_builder.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <exception>
#include <variant>

#include "proxy/config/admin_token.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/gateway_config.h"
#include "proxy/log/access_log.h"
#include "proxy/runtime/portal.h"
#include "proxy/runtime/readiness.h"
#include "tls/ca_generator.h"
#include "tls/cert_loader.h"
#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

constexpr int kConfigError = 2;
constexpr int kRuntimeFailure = 3;

// The generated default CA: made once in state_dir/ca, reused after. Returns its certificate
// path, or "" with `error` set.
std::string EnsureGeneratedCa(const std::string& dir, std::ostream& out, std::string& error) {
  const std::string cert = dir + "/ca.pem";
  struct stat st {};
  if (::stat(cert.c_str(), &st) == 0) return cert;
  try {
    tls::CaInitOptions options;
    options.common_name = "mintgate Root CA";
    tls::WriteCaFiles(dir, tls::GenerateRootCa(options));
    out << "mintgate: created a new CA in " << dir << " (its key never leaves that folder)\n";
    return cert;
  } catch (const std::exception& e) {
    error = "cannot create the CA in " + dir + ": " + e.what();
    return "";
  }
}

// The embedded default (SPEC §2): an empty configuration with paths relative to the working
// folder, decrypting everything with the generated CA.
GatewayConfig EmbeddedDefault() {
  GatewayConfig g;
  ConfigLoadResult loaded = ConfigLoader::Parse("", "");
  g.config = std::move(loaded.config);
  rules::RuleSetOptions options;
  options.default_ca = g.config.inspection.default_ca;
  options.cas = {{kGeneratedCaName, std::nullopt, ""}};
  auto compiled = rules::RuleSet::Compile({}, {}, options);
  g.rules = std::get<rules::RuleSet>(std::move(compiled));
  g.uses_generated_ca = true;
  g.generated_ca_dir = g.config.server.state_dir + "/ca";
  return g;
}

bool SameCert(X509* a, X509* b) { return a != nullptr && b != nullptr && X509_cmp(a, b) == 0; }

bool SameAuthority(const tls::CertAuthority& a, const tls::CertAuthority& b) {
  if (a.cert_file() != b.cert_file() || !SameCert(a.cert(), b.cert()) ||
      EVP_PKEY_eq(a.key(), b.key()) != 1 || a.chain().size() != b.chain().size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.chain().size(); ++i) {
    if (!SameCert(a.chain()[i].get(), b.chain()[i].get())) return false;
  }
  return true;
}

bool SameProfileConfig(const CaProfileConfig& a, const CaProfileConfig& b) {
  return a.spec.name == b.spec.name && a.spec.cert_file == b.spec.cert_file &&
         a.spec.key_file == b.spec.key_file && a.spec.chain_files == b.spec.chain_files &&
         a.spec.passphrase.file == b.spec.passphrase.file &&
         a.spec.passphrase.env == b.spec.passphrase.env && a.retire_at == b.retire_at &&
         a.successor == b.successor;
}

bool SameHostPorts(const std::vector<HostPort>& a, const std::vector<HostPort>& b) {
  return std::equal(
      a.begin(), a.end(), b.begin(), b.end(),
      [](const HostPort& x, const HostPort& y) { return x.host == y.host && x.port == y.port; });
}

// Settings read once when the listeners, workers and resolvers are made: a reload keeps the
// running values and says that a restart applies the new ones.
void KeepRestartSettings(const Config& running, Config& next, std::vector<std::string>& changed) {
  if (!SameHostPorts(running.server.listen, next.server.listen)) {
    changed.push_back("server.listen");
    next.server.listen = running.server.listen;
  }
  if (running.server.workers != next.server.workers) {
    changed.push_back("server.workers");
    next.server.workers = running.server.workers;
  }
  if (!SameHostPorts({running.admin.listen}, {next.admin.listen})) {
    changed.push_back("admin.listen");
    next.admin.listen = running.admin.listen;
  }
  // Each worker's c-ares channel is made with its servers at start.
  if (!SameHostPorts(running.dns.servers, next.dns.servers)) {
    changed.push_back("dns.servers");
    next.dns.servers = running.dns.servers;
  }
}

}  // namespace

bool SameMintInputs(const Config& before, const MintService& running, const Config& after,
                    const std::vector<std::unique_ptr<tls::CertAuthority>>& loaded) {
  const MintConfig& m1 = before.mint;
  const MintConfig& m2 = after.mint;
  if (m1.leaf_key != m2.leaf_key || m1.leaf_days != m2.leaf_days ||
      m1.cache_entries != m2.cache_entries || m1.signing_intermediate != m2.signing_intermediate) {
    return false;
  }
  // retire_at and successor do not change how a profile signs, but the service remembers
  // which cutovers it has logged: a new schedule gets a fresh service, so its cutover is
  // logged again.
  if (before.cas.size() != after.cas.size()) return false;
  for (const CaProfileConfig& ca : after.cas) {
    auto it = std::find_if(before.cas.begin(), before.cas.end(),
                           [&ca](const CaProfileConfig& b) { return b.spec.name == ca.spec.name; });
    if (it == before.cas.end() || !SameProfileConfig(*it, ca)) return false;
  }
  // The files' contents, as loaded: a profile re-issued under the same file name differs.
  if (running.ProfileExpiry().size() != loaded.size()) return false;
  for (const auto& ca : loaded) {
    const tls::CertAuthority* current = ca ? running.Find(ca->name()) : nullptr;
    if (current == nullptr || !SameAuthority(*current, *ca)) return false;
  }
  return true;
}

RuntimeBuild BuildRuntime(const std::string& config_path, const RuntimeBuildOptions& options,
                          std::ostream& out) {
  RuntimeBuild build;
  auto fail = [&build](int code, std::string message) {
    build.errors.push_back(std::move(message));
    build.exit_code = code;
    return std::move(build);
  };
  GatewayConfig g = config_path.empty() ? EmbeddedDefault() : LoadGatewayConfig(config_path, {});
  for (std::string& w : g.warnings) {
    // The generated CA is made just below: no need to announce it.
    if (w.find("generated in") == std::string::npos) build.warnings.push_back(std::move(w));
  }
  build.schedule_overlay_file = g.schedule_overlay_file;
  build.schedule_overlay = g.schedule_overlay;
  if (!g.ok()) {
    for (const ConfigError& e : g.errors) build.errors.push_back(e.ToString());
    build.exit_code = kConfigError;
    return build;
  }
  if (config_path.empty()) {
    // LoadGatewayConfig checks a file's state_dir; the embedded default's is checked here.
    if (std::string problem = StateDirProblem(g.config.server.state_dir); !problem.empty()) {
      return fail(kConfigError, std::move(problem));
    }
  }
  // Checked here rather than when each worker builds its TLS contexts, so that a bad file is
  // a configuration error (and a reload with one is rejected).
  for (const std::string& file : g.config.inspection.extra_trust) {
    try {
      tls::LoadCertificates(file);
    } catch (const std::exception& e) {
      build.errors.push_back(
          ConfigError{config_path, 0, 0, std::string("inspection.extra_trust: ") + e.what()}
              .ToString());
    }
  }
  if (!build.errors.empty()) {
    build.exit_code = kConfigError;
    return build;
  }

  if (g.uses_generated_ca) {
    std::string error;
    build.ca_file = EnsureGeneratedCa(g.generated_ca_dir, out, error);
    if (build.ca_file.empty()) return fail(kRuntimeFailure, error);
  } else {
    for (const CaProfileConfig& ca : g.config.cas) {
      if (ca.spec.name == g.config.inspection.default_ca) build.ca_file = ca.spec.cert_file;
    }
  }

  const Runtime* previous = options.previous.get();
  auto runtime = std::make_shared<Runtime>();
  runtime->config = g.config;
  try {
    AdminToken token = EnsureAdminToken(g.config);
    if (token.created) {
      out << "mintgate: created the admin token in " << token.path
          << " (mode 0600): admin requests need \"Authorization: Bearer <its content>\"\n";
    }
    runtime->admin_token = std::move(token.token);
  } catch (const tls::LoadError& e) {
    // A file that is there but unusable is the configuration's fault; one that could not be
    // made is the machine's, like a CA that cannot be generated.
    struct stat st {};
    const bool exists = ::stat(AdminTokenPath(g.config).c_str(), &st) == 0;
    const std::string message = std::string("admin token: ") + e.what();
    return fail(exists ? kConfigError : kRuntimeFailure,
                config_path.empty() ? message : ConfigError{config_path, 0, 0, message}.ToString());
  }
  if (previous != nullptr) {
    KeepRestartSettings(previous->config, runtime->config, build.restart_needed);
  }
  // A reload opens the access log file again (after logrotate moved it away); standard
  // output has nothing to reopen.
  const LogConfig& log = g.config.log;
  if (previous != nullptr && previous->access_log && log.access == "-" &&
      previous->config.log.access == "-" && previous->config.log.format == log.format) {
    runtime->access_log = previous->access_log;
  } else {
    try {
      runtime->access_log = std::make_shared<AccessLog>(log.access, log.format);
    } catch (const std::exception& e) {
      return fail(kRuntimeFailure, e.what());
    }
  }
  runtime->rules = g.rules;

  std::vector<std::unique_ptr<tls::CertAuthority>> authorities;
  for (auto& ca : g.authorities) {
    if (ca) authorities.push_back(std::move(ca));
  }
  if (g.uses_generated_ca) {
    tls::CaProfileSpec spec;
    spec.name = kGeneratedCaName;
    spec.cert_file = g.generated_ca_dir + "/ca.pem";
    spec.key_file = g.generated_ca_dir + "/ca.key";
    tls::SignerOptions signer;
    signer.signing_intermediate = g.config.mint.signing_intermediate;
    signer.leaf_days = g.config.mint.leaf_days;
    try {
      authorities.push_back(tls::CertAuthority::Load(spec, signer, std::time(nullptr)));
    } catch (const std::exception& e) {
      return fail(kConfigError, std::string("the generated CA: ") + e.what());
    }
  }
  build.ca_profiles = authorities.size();
  build.rule_count = g.rules->size();

  if (previous != nullptr && previous->mint &&
      SameMintInputs(previous->config, *previous->mint, g.config, authorities)) {
    runtime->mint = previous->mint;
    runtime->mint->set_max_pending(g.config.mint.max_pending);
    build.mint_kept = true;
  } else {
    // The profiles move into the mint service, which signs for every worker.
    MintService::Options mint_options;
    mint_options.leaf_key = g.config.mint.leaf_key;
    mint_options.leaf_days = g.config.mint.leaf_days;
    mint_options.cache_entries = g.config.mint.cache_entries;
    mint_options.max_pending = g.config.mint.max_pending;
    auto mint = std::make_unique<MintService>(std::move(authorities), mint_options);
    runtime->mint = options.adopt_mint ? options.adopt_mint(std::move(mint))
                                       : std::shared_ptr<MintService>(std::move(mint));
  }

  // What clients were seen to trust is worth keeping whatever changed.
  if (previous != nullptr && previous->readiness) {
    runtime->readiness = previous->readiness;
    runtime->readiness->set_max_clients(g.config.readiness.max_clients);
  } else {
    runtime->readiness = std::make_shared<ReadinessTracker>(g.config.readiness.max_clients);
  }
  if (!g.config.canaries.empty()) {
    runtime->canary = std::make_shared<const CanaryRouter>(g.config.canaries);
  }
  for (const std::string& client : g.config.server.allow_clients) {
    std::string why;
    if (auto cidr = rules::Cidr::Parse(client, &why)) runtime->allow_clients.push_back(*cidr);
  }
  for (const std::string& balancer : g.config.server.proxy_protocol_from) {
    std::string why;
    if (auto cidr = rules::Cidr::Parse(balancer, &why)) {
      runtime->proxy_protocol_from.push_back(*cidr);
    }
  }
  runtime->destinations =
      std::make_shared<const DestinationPolicy>(DestinationPolicy::FromConfig(runtime->config));
  if (g.config.auth.Enabled()) {
    // Portal logins outlive a reload, like readiness; the files, keytab and caches are read
    // again.
    std::shared_ptr<auth::LoginSessions> logins = previous != nullptr && previous->auth
                                                      ? previous->auth->logins_ptr()
                                                      : std::make_shared<auth::LoginSessions>();
    auto authenticator = std::make_shared<auth::Authenticator>(g.config.auth, std::move(logins));
    std::vector<std::string> auth_errors = authenticator->Load(&build.warnings);
    if (!auth_errors.empty()) {
      std::string message = "[auth]: " + auth_errors.front();
      for (std::size_t i = 1; i < auth_errors.size(); ++i) message += "; " + auth_errors[i];
      return fail(kConfigError,
                  config_path.empty()
                      ? message
                      : ConfigError{config_path, g.config.auth.line, 0, message}.ToString());
    }
    runtime->auth = std::move(authenticator);
  }
  runtime->connections = previous != nullptr && previous->connections
                             ? previous->connections
                             : std::make_shared<ConnectionLimiter>();
  if (g.config.portal.enabled) {
    std::map<std::string, const tls::CertAuthority*> loaded;
    for (const CaProfileConfig& ca : g.config.cas) {
      loaded[ca.spec.name] = runtime->mint->Find(ca.spec.name);
    }
    if (g.uses_generated_ca) loaded[kGeneratedCaName] = runtime->mint->Find(kGeneratedCaName);
    runtime->portal = Portal::Build(runtime->config, *runtime->rules, loaded, std::time(nullptr));
  }
  build.runtime = std::move(runtime);
  return build;
}

}  // namespace mintgate::proxy
