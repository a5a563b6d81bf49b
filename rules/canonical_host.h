// The one spelling of a host that everything after the request parser sees (rules, the
// destination check, the resolver, the access log). A client can write one address many ways
// ("0177.1", "2130706433", "127.0.0.01", "[::ffff:127.0.0.1]"); decisions made on one spelling
// and connections made on another are how filters are bypassed. So every host from the
// network is canonicalised here first, the way the WHATWG URL standard (and so every browser)
// reads it, or refused.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "rules/ip_address.h"

namespace mintgate::rules {

struct CanonicalHost {
  std::string name;                  // lower-case DNS name, no trailing dot; empty for addresses
  std::optional<IpAddress> address;  // IPv4-mapped and -compatible IPv6 become IPv4
  bool is_address() const { return address.has_value(); }
  // The name, a dotted quad, or RFC 5952 IPv6 text without brackets.
  std::string ToString() const { return address ? address->ToString() : name; }
};

// Accepts a DNS name (labels of letters, digits, '-' and '_', 1-63 characters each, 253 in
// all, one trailing dot dropped, case folded) or an IP address: IPv6 in brackets (or bare, as
// SNI-less tools write it), IPv4 in any form the WHATWG host parser accepts (decimal, octal
// with a leading 0, hexadecimal with 0x, one to four parts: "0x7f.1" is 127.0.0.1). A host
// whose last label is numeric but that is not a valid address ("1.2.3.4.5", "999.1.1.1",
// "a.0x1") is refused, as browsers refuse it, rather than sent to DNS. Percent-encoding, zone
// identifiers, '*', spaces and non-ASCII bytes are refused. On failure *error says why.
std::optional<CanonicalHost> CanonicalizeHost(std::string_view host, std::string* error);

// The IPv4 address an IPv6 address stands for on this host's own stack: IPv4-mapped
// (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d, not :: or ::1). Otherwise the address.
IpAddress Unmapped(const IpAddress& address);

// The IPv4 address an IPv6 address carries to another network: the NAT64 well-known prefix
// 64:ff9b::/96 (RFC 6052) and 6to4 2002:aabb:ccdd::/48 (RFC 3056), besides the forms of
// Unmapped. nullopt when it carries none.
std::optional<IpAddress> EmbeddedIpv4(const IpAddress& address);

}  // namespace mintgate::rules
