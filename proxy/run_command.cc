#include "proxy/run_command.h"

#include <sys/stat.h>

#include <memory>

#include "proxy/config_loader.h"
#include "proxy/gateway.h"
#include "proxy/gateway_config.h"
#include "proxy/mint_service.h"
#include "proxy/readiness.h"
#include "tls/ca_generator.h"
#include "tls/cert_info.h"
#include "tls/cert_loader.h"

namespace mintgate::proxy {
namespace {

constexpr int kConfigError = 2;
constexpr int kRuntimeFailure = 3;

// The generated default CA: made once in state_dir/ca, reused after. Returns its certificate
// path, or "" after printing why it could not be made.
std::string EnsureGeneratedCa(const std::string& dir, std::ostream& out, std::ostream& err) {
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
    err << "mintgate: cannot create the CA in " << dir << ": " << e.what() << "\n";
    return "";
  }
}

}  // namespace

int RunGateway(const std::string& config, std::ostream& out, std::ostream& err) {
  GatewayConfig g;
  if (config.empty()) {
    // The embedded default: an empty configuration, with paths relative to the working folder.
    ConfigLoadResult loaded = ConfigLoader::Parse("", "");
    g.config = std::move(loaded.config);
    rules::RuleSetOptions options;
    options.default_ca = g.config.inspection.default_ca;
    options.cas = {{kGeneratedCaName, std::nullopt, ""}};
    auto compiled = rules::RuleSet::Compile({}, {}, options);
    g.rules = std::get<rules::RuleSet>(std::move(compiled));
    g.uses_generated_ca = true;
    g.generated_ca_dir = g.config.server.state_dir + "/ca";
  } else {
    g = LoadGatewayConfig(config, {});
  }
  for (const std::string& w : g.warnings) {
    if (w.find("generated in") == std::string::npos) err << "warning: " << w << "\n";
  }
  if (!g.ok()) {
    for (const ConfigError& e : g.errors) err << "error: " << e.ToString() << "\n";
    return kConfigError;
  }

  std::string ca_file;
  if (g.uses_generated_ca) {
    ca_file = EnsureGeneratedCa(g.generated_ca_dir, out, err);
    if (ca_file.empty()) return kRuntimeFailure;
  } else {
    for (const CaProfileConfig& ca : g.config.cas) {
      if (ca.spec.name == g.config.inspection.default_ca) ca_file = ca.spec.cert_file;
    }
  }

  auto runtime = std::make_shared<Runtime>();
  try {
    runtime->access_log = std::make_shared<AccessLog>(g.config.log.access, g.config.log.format);
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return kRuntimeFailure;
  }
  runtime->config = g.config;
  runtime->rules = g.rules;
  // The CA profiles move into the mint service, which signs for every worker.
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
      err << "error: the generated CA: " << e.what() << "\n";
      return kConfigError;
    }
  }
  MintService::Options mint_options;
  mint_options.leaf_key = g.config.mint.leaf_key;
  mint_options.leaf_days = g.config.mint.leaf_days;
  mint_options.cache_entries = g.config.mint.cache_entries;
  runtime->mint = std::make_shared<MintService>(std::move(authorities), mint_options);
  for (const std::string& client : g.config.server.allow_clients) {
    std::string why;
    if (auto cidr = rules::Cidr::Parse(client, &why)) runtime->allow_clients.push_back(*cidr);
  }
  runtime->readiness = std::make_shared<ReadinessTracker>(g.config.readiness.max_clients);
  if (!g.config.canaries.empty()) {
    runtime->canary = std::make_shared<const CanaryRouter>(g.config.canaries);
  }

  const std::string proxy = "http://" + g.config.server.listen.front().ToString();
  out << "mintgate: listening on";
  for (const HostPort& hp : g.config.server.listen) out << " " << hp.ToString();
  out << "\n";
  if (!ca_file.empty()) {
    try {
      tls::X509Ptr cert = tls::LoadCertificate(ca_file);
      out << "mintgate: clients must trust the CA " << ca_file << "\n"
          << "mintgate:   SHA-256 " << tls::Sha256Fingerprint(cert.get()) << "\n";
    } catch (const std::exception& e) {
      err << "warning: " << e.what() << "\n";
    }
  }
  out << "mintgate: try: curl --proxy " << proxy;
  if (!ca_file.empty()) out << " --cacert " << ca_file;
  out << " https://example.com/\n";
  out << "mintgate: admin on http://" << g.config.admin.listen.ToString()
      << " (/healthz, /metrics, /audit)\n"
      << std::flush;
  return Gateway(std::move(runtime), config).Run(out, err);
}

}  // namespace mintgate::proxy
