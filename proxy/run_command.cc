#include "proxy/run_command.h"

#include <sys/stat.h>

#include <memory>

#include "proxy/config_loader.h"
#include "proxy/gateway.h"
#include "proxy/gateway_config.h"
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
  for (const std::string& client : g.config.server.allow_clients) {
    std::string why;
    if (auto cidr = rules::Cidr::Parse(client, &why)) runtime->allow_clients.push_back(*cidr);
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
  out << "mintgate: try: curl --proxy " << proxy << " http://example.com/\n" << std::flush;
  return Gateway(std::move(runtime)).Run(out, err);
}

}  // namespace mintgate::proxy
