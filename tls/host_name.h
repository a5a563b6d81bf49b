// Validation of the names a leaf is minted for. Every name that ends up in a certificate
// passes through here first, so nothing from the network (SNI, CONNECT host, an upstream
// certificate's SAN) can smuggle extra SAN entries or odd bytes into a minted leaf.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "tls/tls_error.h"

namespace mintgate::tls {

struct SanName {
  enum class Kind { kDns, kIp };
  Kind kind = Kind::kDns;
  // kDns: lower-case LDH name without trailing dot, possibly starting with "*.".
  // kIp: canonical text of the address ("192.0.2.1", "2001:db8::1").
  std::string text;
  std::array<std::uint8_t, 16> ip{};  // kIp: network-order address bytes
  std::uint8_t ip_len = 0;            // kIp: 4 or 16
};

inline constexpr std::size_t kMaxHostNameLength = 253;

// Accepts a DNS name (LDH labels of 1-63 characters, at most 253 characters, an optional
// leading "*." wildcard label, one optional trailing dot) or an IPv4/IPv6 literal (IPv6
// optionally in brackets). Upper case is folded. Anything else is refused with a reason.
Result<SanName> ParseSanName(std::string_view host);

}  // namespace mintgate::tls
