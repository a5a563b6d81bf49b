#include "rules/canonical_host.h"

#include <array>
#include <cstdint>
#include <vector>

#include "rules/log_text.h"

namespace mintgate::rules {
namespace {

constexpr std::size_t kMaxName = 253;
constexpr std::size_t kMaxLabel = 63;

bool Fail(std::string* error, std::string why) {
  if (error) *error = std::move(why);
  return false;
}

// One part of a WHATWG IPv4 address: decimal, octal after a leading 0, hexadecimal after 0x.
// Values above 2^32 are clamped (they are refused by the caller anyway).
std::optional<std::uint64_t> ParseIpv4Number(std::string_view part) {
  if (part.empty()) return std::nullopt;
  unsigned radix = 10;
  if (part.size() >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
    radix = 16;
    part.remove_prefix(2);
  } else if (part.size() >= 2 && part[0] == '0') {
    radix = 8;
    part.remove_prefix(1);
  }
  std::uint64_t value = 0;
  for (char c : part) {
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    if (digit >= radix) return std::nullopt;
    value = value * radix + digit;
    if (value > 0xffffffffull) value = 0x100000000ull;  // too big whatever follows
  }
  return value;
}

std::vector<std::string_view> Split(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    parts.push_back(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

// WHATWG "ends in a number": the host is meant as an IPv4 address and must parse as one.
bool EndsInANumber(const std::vector<std::string_view>& labels) {
  const std::string_view last = labels.back();
  if (last.empty()) return false;
  bool digits = true;
  for (char c : last) digits = digits && c >= '0' && c <= '9';
  return digits || ParseIpv4Number(last).has_value();
}

std::optional<IpAddress> ParseWhatwgIpv4(const std::vector<std::string_view>& parts,
                                         std::string* error) {
  if (parts.size() > 4) {
    Fail(error, "more than four parts in a numeric address");
    return std::nullopt;
  }
  std::array<std::uint64_t, 4> numbers{};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::optional<std::uint64_t> n = ParseIpv4Number(parts[i]);
    if (!n) {
      Fail(error, "a numeric address with a part that is not a number");
      return std::nullopt;
    }
    numbers[i] = *n;
  }
  const std::size_t n = parts.size();
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (numbers[i] > 255) {
      Fail(error, "a numeric address with a part above 255");
      return std::nullopt;
    }
  }
  const std::uint64_t limit = 1ull << (8 * (5 - n));
  if (numbers[n - 1] >= limit) {
    Fail(error, "a numeric address out of range");
    return std::nullopt;
  }
  std::uint64_t value = numbers[n - 1];
  for (std::size_t i = 0; i + 1 < n; ++i) value += numbers[i] << (8 * (3 - i));
  return IpAddress::V4(static_cast<std::uint32_t>(value));
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

IpAddress Unmapped(const IpAddress& address) {
  if (address.family() != IpAddress::Family::kV6) return address;
  const auto& b = address.bytes();
  bool zero80 = true;
  for (int k = 0; k < 10; ++k) zero80 = zero80 && b[k] == 0;
  if (!zero80) return address;
  const std::uint32_t v4 = (std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) |
                           (std::uint32_t{b[14]} << 8) | b[15];
  if (b[10] == 0xff && b[11] == 0xff) return IpAddress::V4(v4);  // ::ffff:a.b.c.d
  // ::a.b.c.d; "::" and "::1" are IPv6's own unspecified and loopback addresses.
  if (b[10] == 0 && b[11] == 0 && v4 > 1) return IpAddress::V4(v4);
  return address;
}

std::optional<IpAddress> EmbeddedIpv4(const IpAddress& address) {
  if (address.family() != IpAddress::Family::kV6) return std::nullopt;
  const IpAddress unmapped = Unmapped(address);
  if (unmapped.family() == IpAddress::Family::kV4) return unmapped;
  const auto& b = address.bytes();
  auto v4_at = [&b](int k) {
    return IpAddress::V4((std::uint32_t{b[k]} << 24) | (std::uint32_t{b[k + 1]} << 16) |
                         (std::uint32_t{b[k + 2]} << 8) | b[k + 3]);
  };
  static constexpr std::array<std::uint8_t, 12> kNat64{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  bool nat64 = true;
  for (int k = 0; k < 12; ++k) nat64 = nat64 && b[k] == kNat64[k];
  if (nat64) return v4_at(12);
  if (b[0] == 0x20 && b[1] == 0x02) return v4_at(2);  // 6to4
  return std::nullopt;
}

std::optional<CanonicalHost> CanonicalizeHost(std::string_view host, std::string* error) {
  auto refuse = [&](const std::string& why) -> std::optional<CanonicalHost> {
    Fail(error, "invalid host \"" + EscapeForLog(host, 80) + "\": " + why);
    return std::nullopt;
  };
  if (host.empty()) return refuse("empty");
  if (host.size() > kMaxName + 2) return refuse("longer than 253 characters");
  CanonicalHost out;
  const bool bracketed = host.front() == '[';
  if (bracketed || host.find(':') != std::string_view::npos) {
    if (bracketed && (host.size() < 3 || host.back() != ']')) return refuse("unbalanced brackets");
    const std::string_view inner = bracketed ? host.substr(1, host.size() - 2) : host;
    if (inner.find_first_of("%[]") != std::string_view::npos) {
      return refuse("not an IPv6 address (zone identifiers are not allowed)");
    }
    std::optional<IpAddress> v6 = IpAddress::Parse(inner);
    if (!v6 || v6->family() != IpAddress::Family::kV6) return refuse("not an IPv6 address");
    out.address = Unmapped(*v6);
    return out;
  }
  std::string lower(host);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  std::string_view text = lower;
  std::vector<std::string_view> labels = Split(text);
  // One trailing dot is the root: "example.com." is "example.com".
  if (labels.size() > 1 && labels.back().empty()) {
    labels.pop_back();
    text.remove_suffix(1);
  }
  if (EndsInANumber(labels)) {
    std::string why;
    std::optional<IpAddress> v4 = ParseWhatwgIpv4(labels, &why);
    if (!v4) return refuse(why);
    out.address = *v4;
    return out;
  }
  if (text.size() > kMaxName) return refuse("longer than 253 characters");
  for (std::string_view label : labels) {
    if (label.empty()) return refuse("empty label");
    if (label.size() > kMaxLabel) return refuse("label longer than 63 characters");
    for (char c : label) {
      if (!IsNameChar(c)) {
        return refuse(
            "characters other than letters, digits, '-', '_' and '.' (IDNs in xn-- form)");
      }
    }
    if (label.front() == '-' || label.back() == '-') return refuse("label starts or ends with '-'");
  }
  out.name = std::string(text);
  return out;
}

}  // namespace mintgate::rules
