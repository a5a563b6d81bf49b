#include "proxy/cli/run_command.h"

#include "proxy/config/admin_token.h"
#include "proxy/control/gateway.h"
#include "proxy/control/runtime_builder.h"
#include "tls/cert_info.h"
#include "tls/cert_loader.h"

namespace mintgate::proxy {

int RunGateway(const std::string& config, std::ostream& out, std::ostream& err) {
  Gateway gateway(config);
  RuntimeBuild build = BuildRuntime(config, gateway.build_options(), out);
  for (const std::string& w : build.warnings) err << "warning: " << w << "\n";
  if (!build.runtime) {
    for (const std::string& e : build.errors) err << "error: " << e << "\n";
    return build.exit_code;
  }
  const Config& c = build.runtime->config;
  for (const std::string& line : build.schedule_overlay) {
    out << "mintgate: schedule overlay " << build.schedule_overlay_file << ": " << line << "\n";
  }
  const std::string proxy = "http://" + c.server.listen.front().ToString();
  out << "mintgate: listening on";
  for (const HostPort& hp : c.server.listen) out << " " << hp.ToString();
  out << "\n";
  const std::string& ca_file = build.ca_file;
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
  out << "mintgate: admin on http://" << c.admin.listen.ToString()
      << " (/healthz; /metrics, /audit, /readiness and POST /reload with the bearer token in "
      << AdminTokenPath(c) << ")\n"
      << std::flush;
  return gateway.Run(std::move(build.runtime), out, err);
}

}  // namespace mintgate::proxy
