// The client portal (SPEC §6): a small plain-HTTP site the gateway answers itself, on the
// reserved host name (portal.host) and on its own listen addresses. It lists the CA
// certificates clients must install (every profile a rule or canary signs with now or after a
// scheduled cutover; for a cross-signed profile the customer root), serves them as PEM and DER
// with per-OS install steps and an install package per platform (install_packages.h), and
// serves /proxy.pac. Built once per configuration from loaded
// profiles; answering is a pure function of the request's method and path.
#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proxy/config/config.h"
#include "rules/ip_address.h"
#include "rules/rule_set.h"
#include "tls/cert_authority.h"

namespace mintgate::proxy {

struct PortalResponse {
  int status = 200;
  std::string content_type;  // e.g. "text/html; charset=utf-8"
  // Extra headers, e.g. Content-Disposition, Allow, Cache-Control, Content-Security-Policy.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // always the full body, also for HEAD
};

class Portal {
 public:
  // One certificate the page offers (deduplicated by fingerprint).
  struct Certificate {
    std::string name;                  // download name: /ca/<name>.pem|.cer|.crt
    std::vector<std::string> aliases;  // other download names for the same certificate
    std::string subject_cn;
    std::string issuer_cn;
    std::string sha256;  // tls::Sha256Fingerprint
    std::time_t not_after = 0;
    std::vector<std::string> roles;      // why it is offered, e.g. "signing certificate of ..."
    std::vector<std::string> needed_by;  // e.g. "rule \"default\": now until 2026-..Z"
    bool alternative = false;            // an alternative to another offered root
    std::string pem;
    std::string der;
  };

  // Everything is precomputed here (a reload builds a new Portal). `authorities`: profile
  // name -> loaded profile (the generated "default" included when it is used); null or
  // missing profiles are listed as unavailable. `now` is the instant from which scheduled
  // cutovers (retire_at/successor) are followed.
  static std::shared_ptr<const Portal> Build(
      const Config& config, const rules::RuleSet& rules,
      const std::map<std::string, const tls::CertAuthority*>& authorities, std::time_t now);

  // True when a request for `host` (no port; case, brackets and a trailing dot are ignored)
  // and `port` is for the portal: the portal host name (any port), or one of
  // config.server.listen (host and port equal; "localhost" matches a loopback listen
  // address). A wildcard listen address (0.0.0.0, ::) matches loopback addresses and
  // `local_ip`, the accepting socket's local address when the caller knows it. Always false
  // when the portal is disabled. `balancer_port` nonzero: the client came through a load
  // balancer (a PROXY header) that it reached at `local_ip` and `balancer_port`, which then
  // count as the proxy's own address too.
  bool Serves(const std::string& host, std::uint16_t port, const std::string& local_ip = "",
              std::uint16_t balancer_port = 0) const;

  // The answer to `method` `path` (origin-form, query included). `local_ip` (optional) names
  // the proxy in /proxy.pac for wildcard listen addresses; with `balancer_port`, the PAC names
  // the balancer (`local_ip`:`balancer_port`) alone, so browsers keep going through it.
  PortalResponse Handle(const std::string& method, const std::string& path,
                        const std::string& local_ip = "", std::uint16_t balancer_port = 0) const;

  bool enabled() const { return enabled_; }
  const std::vector<Certificate>& certificates() const { return certificates_; }

 private:
  struct Listen {
    HostPort address;
    std::optional<rules::IpAddress> ip;  // when the host is an IP literal
    bool wildcard = false;
  };

  Portal() = default;
  std::string Pac(const std::string& local_ip) const;
  PortalResponse Download(const std::string& file) const;

  bool enabled_ = true;
  std::string host_;
  std::vector<Listen> listen_;
  std::vector<Certificate> certificates_;
  std::map<std::string, std::size_t> downloads_;  // name or alias -> certificates_ index
  // /install/<file name>: the install packages for every platform (install_packages.h).
  std::map<std::string, PortalResponse> packages_;
  std::string index_html_;
  std::string pac_head_;  // FindProxyForURL up to the final return
  std::string pac_tail_;
  std::string pac_fixed_;  // the whole file when no listen address is a wildcard
};

// The response as HTTP/1.1 bytes: status line, Content-Type, Content-Length, the extra
// headers, "Connection: close" when `close`, and the body unless `head_request`.
std::string SerializePortalResponse(const PortalResponse& response, bool head_request, bool close);

}  // namespace mintgate::proxy
