// The immutable snapshot of configuration every worker reads: swapped as a whole on reload,
// never modified while in use.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/auth/authenticator.h"
#include "proxy/config/config.h"
#include "proxy/log/access_log.h"
#include "proxy/runtime/connection_limiter.h"
#include "proxy/runtime/destination_policy.h"
#include "proxy/runtime/mint_service.h"
#include "rules/ip_address.h"
#include "rules/rule_set.h"

namespace mintgate::proxy {

class ReadinessTracker;  // proxy/runtime/readiness.h
class CanaryRouter;      // proxy/runtime/readiness.h
class Portal;            // proxy/runtime/portal.h

struct Runtime {
  Config config;
  std::vector<rules::Cidr> allow_clients;
  // server.proxy_protocol_from: the balancers whose PROXY protocol header is believed.
  std::vector<rules::Cidr> proxy_protocol_from;
  std::optional<rules::RuleSet> rules;
  std::shared_ptr<const AccessLog> access_log;  // null: no access log
  std::shared_ptr<MintService> mint;            // null: decryption unavailable
  // Which clients trust which CA: one tracker for the gateway's life, shared by every runtime
  // after a reload (null: not tracked).
  std::shared_ptr<ReadinessTracker> readiness;
  std::shared_ptr<const CanaryRouter> canary;  // built per configuration; null: no canaries
  std::shared_ptr<const Portal> portal;        // CA downloads and /proxy.pac; null: none
  // Where bytes may go: built per configuration, never null once built.
  std::shared_ptr<const DestinationPolicy> destinations;
  // Open client connections: one for the gateway's life, shared by every runtime after a
  // reload (null: not limited).
  std::shared_ptr<ConnectionLimiter> connections;
  // Who is behind a request ([auth]); null when [auth] identifies nobody. Its portal logins
  // are kept across reloads.
  std::shared_ptr<auth::Authenticator> auth;
  // The bearer token admin requests need (read again on every reload); "" refuses them all.
  std::string admin_token;

  bool ClientAllowed(const rules::IpAddress& address) const {
    for (const rules::Cidr& cidr : allow_clients) {
      if (cidr.Contains(address)) return true;
    }
    return false;
  }
  bool ProxyHeaderAllowedFrom(const rules::IpAddress& peer) const {
    for (const rules::Cidr& cidr : proxy_protocol_from) {
      if (cidr.Contains(peer)) return true;
    }
    return false;
  }
};

using RuntimePtr = std::shared_ptr<const Runtime>;

}  // namespace mintgate::proxy
