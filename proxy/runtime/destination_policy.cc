#include "proxy/runtime/destination_policy.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "rules/canonical_host.h"

namespace mintgate::proxy {
namespace {

rules::Cidr MustCidr(const char* text) { return *rules::Cidr::Parse(text, nullptr); }

bool IsUnspecified(const rules::IpAddress& a) {
  for (int k = 0; k < a.bit_width() / 8; ++k) {
    if (a.bytes()[k] != 0) return false;
  }
  return true;
}

bool IsLoopback(const rules::IpAddress& a) {
  if (a.family() == rules::IpAddress::Family::kV4) return a.bytes()[0] == 127;
  return a == *rules::IpAddress::Parse("::1");
}

std::vector<rules::IpAddress> InterfaceAddresses() {
  std::vector<rules::IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      std::uint32_t value = 0;
      std::memcpy(&value, &v4->sin_addr, 4);
      out.push_back(rules::IpAddress::V4(ntohl(value)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      std::array<std::uint8_t, 16> bytes{};
      std::memcpy(bytes.data(), &v6->sin6_addr, 16);
      out.push_back(rules::IpAddress::V6(bytes));
    }
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

std::vector<DestinationPolicy::Range> DestinationPolicy::BuiltInRanges(bool allow_loopback) {
  std::vector<Range> ranges = {
      {MustCidr("0.0.0.0/8"), "\"this network\" (unspecified)"},
      {MustCidr("169.254.0.0/16"), "link-local: cloud metadata services and routers"},
      {MustCidr("100.64.0.0/10"), "shared address space: carrier NAT and cloud metadata"},
      {MustCidr("224.0.0.0/4"), "multicast"},
      {MustCidr("240.0.0.0/4"), "reserved and broadcast"},
      {MustCidr("::/128"), "unspecified"},
      {MustCidr("fe80::/10"), "link-local"},
      {MustCidr("fec0::/10"), "site-local (deprecated)"},
      {MustCidr("fc00::/7"), "unique local: private networks and cloud metadata"},
      {MustCidr("ff00::/8"), "multicast"},
      // Local-use NAT64 (RFC 8215) embeds IPv4 where no fixed rule can find it.
      {MustCidr("64:ff9b:1::/48"), "local-use NAT64"},
  };
  if (!allow_loopback) {
    ranges.insert(ranges.begin() + 1, {MustCidr("127.0.0.0/8"), "loopback: the gateway's host"});
    ranges.insert(ranges.begin() + 7, {MustCidr("::1/128"), "loopback: the gateway's host"});
  }
  return ranges;
}

DestinationPolicy DestinationPolicy::FromConfig(const Config& config) {
  return FromConfig(config, InterfaceAddresses());
}

DestinationPolicy DestinationPolicy::FromConfig(
    const Config& config, const std::vector<rules::IpAddress>& local_addresses) {
  DestinationPolicy policy;
  policy.ranges_ = BuiltInRanges(config.server.allow_loopback_upstreams);
  for (const std::string& text : config.server.deny_destinations) {
    // Validated with the configuration; a bad entry cannot get here.
    if (std::optional<rules::Cidr> cidr = rules::Cidr::Parse(text, nullptr)) {
      policy.ranges_.push_back({*cidr, "listed in server.deny_destinations"});
    }
  }
  auto add = [&policy](const HostPort& hp, const char* role) {
    Listener l;
    l.port = hp.port;
    l.what = std::string("its ") + role + " listener " + hp.ToString();
    std::optional<rules::IpAddress> ip =
        rules::IpAddress::Parse(hp.host == "localhost" ? "127.0.0.1" : hp.host);
    if (ip && !IsUnspecified(*ip)) l.address = rules::Unmapped(*ip);
    policy.listeners_.push_back(std::move(l));
  };
  for (const HostPort& hp : config.server.listen) add(hp, "proxy");
  add(config.admin.listen, "admin");
  policy.connect_ports_ = config.inspection.connect_ports;
  policy.http_ports_ = config.server.http_ports;
  for (const rules::IpAddress& a : local_addresses) {
    policy.local_addresses_.push_back(rules::Unmapped(a));
  }
  return policy;
}

std::optional<std::string> DestinationPolicy::Check(const rules::IpAddress& address,
                                                    std::uint16_t port) const {
  const rules::IpAddress judged = rules::Unmapped(address);
  if (std::optional<std::string> why = CheckOne(judged, port, address)) return why;
  if (judged.family() == rules::IpAddress::Family::kV6) {
    if (std::optional<rules::IpAddress> inside = rules::EmbeddedIpv4(judged)) {
      return CheckOne(*inside, port, address);
    }
  }
  return std::nullopt;
}

std::optional<std::string> DestinationPolicy::CheckConnectPort(std::uint16_t port) const {
  if (std::find(connect_ports_.begin(), connect_ports_.end(), port) != connect_ports_.end()) {
    return std::nullopt;
  }
  return "CONNECT to port " + std::to_string(port) + " is not allowed (inspection.connect_ports)";
}

std::optional<std::string> DestinationPolicy::CheckHttpPort(std::uint16_t port) const {
  for (const PortRange& r : http_ports_) {
    if (r.Contains(port)) return std::nullopt;
  }
  return "http:// requests to port " + std::to_string(port) +
         " are not allowed (server.http_ports)";
}

std::optional<std::string> DestinationPolicy::CheckOne(const rules::IpAddress& a,
                                                       std::uint16_t port,
                                                       const rules::IpAddress& shown) const {
  const std::string text = shown.ToString() + (shown == a ? "" : " (" + a.ToString() + ")");
  for (const Listener& l : listeners_) {
    if (l.port != port) continue;
    // A wildcard listener answers on every address of this host, loopback included.
    const bool own = l.address ? *l.address == a
                               : IsLoopback(a) || IsUnspecified(a) ||
                                     std::find(local_addresses_.begin(), local_addresses_.end(),
                                               a) != local_addresses_.end();
    if (own) {
      return "refusing to connect the gateway to itself: " + text + ":" + std::to_string(port) +
             " is " + l.what;
    }
  }
  for (const Range& r : ranges_) {
    if (r.cidr.Contains(a)) {
      return text + " is in " + r.cidr.ToString() + " (" + r.why +
             "), which this gateway does not connect to";
    }
  }
  return std::nullopt;
}

}  // namespace mintgate::proxy
