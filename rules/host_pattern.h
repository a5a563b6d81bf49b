// One host pattern of a rule or category (SPEC §4) and the host normalization shared by
// patterns and decision targets, so both sides compare the same form.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "rules/ip_address.h"

namespace mintgate::rules {

// A target host after NormalizeHost: either a name or an IP literal, never both, so that
// name patterns cannot match addresses and address patterns cannot match names.
struct HostView {
  std::string_view name;  // normalized name; empty when `address` is set
  std::optional<IpAddress> address;
};

struct HostPattern {
  enum class Kind : std::uint8_t {
    kExact,         // "host.example"
    kBelow,         // "*.x.example": strictly below x.example, any depth
    kSelfAndBelow,  // ".x.example": x.example and below
    kAddress,       // an IP literal or CIDR
  };

  Kind kind = Kind::kExact;
  std::string name;  // normalized, without the "*." / "." prefix; empty for kAddress
  Cidr cidr;         // kAddress only
  std::string text;  // as written, for explanations

  // Validates and normalizes one pattern; on failure returns nullopt and says why in *error.
  static std::optional<HostPattern> Parse(std::string_view text, std::string* error);

  bool Matches(const HostView& host) const;
};

// Lowercase, one trailing dot removed, [brackets] around an IPv6 literal removed.
std::string NormalizeHost(std::string_view host);

// Same as NormalizeHost into `buffer`, plus the IP-literal check. The view points into buffer.
HostView MakeHostView(std::string_view host, std::string& buffer);

// Checks a normalized DNS name (ASCII; IDNs in xn-- form): labels of [a-z0-9-] not starting
// or ending with '-', 1-63 characters each, 253 in all, and a last label that is not all
// digits (that would be a mistyped IP address).
bool IsValidHostName(std::string_view name, std::string* error);

}  // namespace mintgate::rules
