// Where the gateway may send bytes: the one place that decides it, for every path that
// connects (plain HTTP, CONNECT tunnels, decryption, retries). Judged on canonical addresses
// after resolution, never on how a client spelt a host: an IPv4-mapped, -compatible, NAT64 or
// 6to4 IPv6 address is judged by the IPv4 address inside it as well as by itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "rules/ip_address.h"

namespace mintgate::proxy {

class DestinationPolicy {
 public:
  // A network the gateway never connects to, and why (for the 403 page and the log).
  struct Range {
    rules::Cidr cidr;
    std::string why;
  };

  // From a validated configuration: the built-in ranges (loopback only unless
  // server.allow_loopback_upstreams), server.deny_destinations, and the gateway's own
  // listeners (proxy and admin; a wildcard listener covers every address of this host, read
  // from its interfaces now).
  static DestinationPolicy FromConfig(const Config& config);
  // The same with this host's addresses given (tests).
  static DestinationPolicy FromConfig(const Config& config,
                                      const std::vector<rules::IpAddress>& local_addresses);

  // nullopt when `address`:`port` may be connected to; else why not, for example
  // "169.254.169.254 is link-local (169.254.0.0/16): cloud metadata and routers".
  std::optional<std::string> Check(const rules::IpAddress& address, std::uint16_t port) const;

  // nullopt when a request may go to `port`: CONNECT to inspection.connect_ports, absolute-form
  // http:// requests to server.http_ports; else why not.
  std::optional<std::string> CheckConnectPort(std::uint16_t port) const;
  std::optional<std::string> CheckHttpPort(std::uint16_t port) const;

  // The built-in list, in the order it is checked (for documentation and tests).
  static std::vector<Range> BuiltInRanges(bool allow_loopback);

 private:
  struct Listener {
    std::optional<rules::IpAddress> address;  // nullopt: a wildcard (0.0.0.0 or ::)
    std::uint16_t port = 0;
    std::string what;  // "the proxy listener 127.0.0.1:3128"
  };
  std::optional<std::string> CheckOne(const rules::IpAddress& address, std::uint16_t port,
                                      const rules::IpAddress& shown) const;

  std::vector<Range> ranges_;
  std::vector<Listener> listeners_;
  std::vector<rules::IpAddress> local_addresses_;
  std::vector<std::uint16_t> connect_ports_;
  std::vector<PortRange> http_ports_;
};

}  // namespace mintgate::proxy
