// IPv4/IPv6 addresses and CIDR blocks, parsed strictly with the standard library only (rules/
// may not use the platform's inet_pton). IPv4 and IPv6 are separate families: "::ffff:1.2.3.4"
// is an IPv6 address and is never contained in an IPv4 block.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mintgate::rules {

class IpAddress {
 public:
  enum class Family : std::uint8_t { kV4, kV6 };

  // Dotted quad (four decimal parts 0-255, no leading zeros, which other parsers read as
  // octal) or IPv6 (with "::" and an optional dotted-quad tail), optionally in [brackets].
  static std::optional<IpAddress> Parse(std::string_view text);
  // From a host-order IPv4 value, or 16 network-order IPv6 bytes.
  static IpAddress V4(std::uint32_t value);
  static IpAddress V6(const std::array<std::uint8_t, 16>& bytes);

  Family family() const { return family_; }
  int bit_width() const { return family_ == Family::kV4 ? 32 : 128; }
  // IPv4 uses the first 4 bytes; the rest are zero.
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  bool Bit(int index) const { return (bytes_[index / 8] >> (7 - index % 8)) & 1; }

  // Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run as "::").
  std::string ToString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  friend class Cidr;  // masks host bits when suggesting a corrected block

  Family family_ = Family::kV4;
  std::array<std::uint8_t, 16> bytes_{};
};

class Cidr {
 public:
  // "10.0.0.0/8", "2001:db8::/32", or a single address (= /32 or /128). Host bits set below
  // the prefix ("10.0.0.1/8") are an error: such a block usually means a typo.
  static std::optional<Cidr> Parse(std::string_view text, std::string* error);
  static Cidr Single(const IpAddress& address);

  const IpAddress& network() const { return network_; }
  int prefix_length() const { return prefix_length_; }
  bool Contains(const IpAddress& address) const;
  std::string ToString() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;

 private:
  IpAddress network_;
  int prefix_length_ = 0;
};

}  // namespace mintgate::rules
