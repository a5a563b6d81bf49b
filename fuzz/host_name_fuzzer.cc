// Fuzzes the host names and addresses that reach decisions and minted certificates: the
// canonicalisation of hosts from the network (rules/canonical_host.h), the SAN validation of
// tls/host_name.h and the rules' host patterns, IP literals and CIDR blocks
// (rules/host_pattern.h, rules/ip_address.h). The input is one host text, as it comes from a
// request target, an SNI or a configuration file.
//
// Beyond "no crash", each parser must agree with itself: what it returns parses back to the
// same value (canonical text is a fixed point), and the rules' strict IP parser accepts
// exactly what the C library's inet_pton accepts, with the same bytes.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "rules/canonical_host.h"
#include "rules/host_pattern.h"
#include "rules/ip_address.h"
#include "tls/host_name.h"

namespace {

using mintgate::rules::CanonicalHost;
using mintgate::rules::Cidr;
using mintgate::rules::HostPattern;
using mintgate::rules::HostView;
using mintgate::rules::IpAddress;

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

bool IsLower(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

void CheckIpAddress(std::string_view text) {
  const std::optional<IpAddress> address = IpAddress::Parse(text);
  if (address) {
    const std::string canonical = address->ToString();
    const std::optional<IpAddress> again = IpAddress::Parse(canonical);
    FUZZ_CHECK(again && *again == *address);
    FUZZ_CHECK(again->ToString() == canonical);
  }
  // The same verdict as inet_pton, which the tls layer uses for the same literals. Brackets
  // are ours (inet_pton has none); NUL would end the C string early.
  if (text.find('\0') != std::string_view::npos || text.size() > 64) return;
  std::string_view bare = text;
  const bool bracketed = bare.size() >= 2 && bare.front() == '[' && bare.back() == ']';
  if (bracketed) bare = bare.substr(1, bare.size() - 2);
  const std::string c_text(bare);
  unsigned char bytes[16] = {};
  const bool v6 = bare.find(':') != std::string_view::npos;
  const bool libc_ok =
      (v6 || !bracketed) && inet_pton(v6 ? AF_INET6 : AF_INET, c_text.c_str(), bytes) == 1;
  FUZZ_CHECK(libc_ok == address.has_value());
  if (address) {
    FUZZ_CHECK(std::memcmp(bytes, address->bytes().data(), v6 ? 16 : 4) == 0);
  }
}

void CheckCidr(std::string_view text) {
  std::string error;
  const std::optional<Cidr> cidr = Cidr::Parse(text, &error);
  if (!cidr) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  FUZZ_CHECK(cidr->Contains(cidr->network()));
  const std::optional<Cidr> again = Cidr::Parse(cidr->ToString(), nullptr);
  FUZZ_CHECK(again && *again == *cidr);
}

void CheckHostPattern(std::string_view text) {
  std::string error;
  const std::optional<HostPattern> pattern = HostPattern::Parse(text, &error);
  if (!pattern) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  std::string canonical;
  switch (pattern->kind) {
    case HostPattern::Kind::kAddress:
      FUZZ_CHECK(pattern->name.empty());
      canonical = pattern->cidr.ToString();
      break;
    case HostPattern::Kind::kExact:
      canonical = pattern->name;
      break;
    case HostPattern::Kind::kBelow:
      canonical = "*." + pattern->name;
      break;
    case HostPattern::Kind::kSelfAndBelow:
      canonical = "." + pattern->name;
      break;
  }
  const std::optional<HostPattern> again = HostPattern::Parse(canonical, nullptr);
  FUZZ_CHECK(again && again->kind == pattern->kind && again->name == pattern->name &&
             again->cidr == pattern->cidr);
  if (pattern->kind == HostPattern::Kind::kAddress) {
    std::string buffer;
    const IpAddress& network = pattern->cidr.network();
    const HostView view = mintgate::rules::MakeHostView(network.ToString(), buffer);
    FUZZ_CHECK(view.address);
    // Mapped blocks ("::ffff:10.0.0.0/104") are stored as the IPv4 block, as targets in that
    // form are judged, so every address pattern matches its own network.
    FUZZ_CHECK(pattern->Matches(view));
    return;
  }
  FUZZ_CHECK(mintgate::rules::IsValidHostName(pattern->name, nullptr));
  std::string self_buffer, below_buffer;
  const HostView self = mintgate::rules::MakeHostView(pattern->name, self_buffer);
  // A name browsers would read as an address ("10.0.0.0x8") is no valid pattern.
  FUZZ_CHECK(!self.address);
  const HostView below = mintgate::rules::MakeHostView("a." + pattern->name, below_buffer);
  FUZZ_CHECK(self.name == pattern->name);
  FUZZ_CHECK(pattern->Matches(self) == (pattern->kind != HostPattern::Kind::kBelow));
  FUZZ_CHECK(pattern->Matches(below) == (pattern->kind != HostPattern::Kind::kExact));
}

void CheckHostView(std::string_view text) {
  std::string buffer;
  const HostView view = mintgate::rules::MakeHostView(text, buffer);
  FUZZ_CHECK(buffer == mintgate::rules::NormalizeHost(text));
  FUZZ_CHECK(IsLower(buffer));
  if (view.address) {
    FUZZ_CHECK(view.name.empty());
  } else {
    FUZZ_CHECK(view.name == buffer);
  }
  std::string error;
  if (mintgate::rules::IsValidHostName(text, &error)) {
    FUZZ_CHECK(view.address || view.name == text);
  } else {
    FUZZ_CHECK(!error.empty());
  }
}

void CheckSanName(std::string_view text) {
  const auto san = mintgate::tls::ParseSanName(text);
  if (!san) return;
  const mintgate::tls::SanName& name = *san;
  const auto again = mintgate::tls::ParseSanName(name.text);
  FUZZ_CHECK(again && again->kind == name.kind && again->text == name.text);
  if (name.kind == mintgate::tls::SanName::Kind::kIp) {
    FUZZ_CHECK(name.ip_len == 4 || name.ip_len == 16);
    FUZZ_CHECK(again->ip == name.ip && again->ip_len == name.ip_len);
    const std::optional<IpAddress> address = IpAddress::Parse(name.text);
    FUZZ_CHECK(address && std::memcmp(address->bytes().data(), name.ip.data(), name.ip_len) == 0);
    return;
  }
  FUZZ_CHECK(!name.text.empty() && name.text.size() <= mintgate::tls::kMaxHostNameLength);
  FUZZ_CHECK(IsLower(name.text) && name.text.back() != '.');
  // A DNS SAN never holds what a client would read as an IP address.
  FUZZ_CHECK(!IpAddress::Parse(name.text));
}

// The spelling every later step sees: canonical text is a fixed point, and the rules read it
// as the same name or address.
void CheckCanonicalHost(std::string_view text) {
  std::string error;
  const std::optional<CanonicalHost> host = mintgate::rules::CanonicalizeHost(text, &error);
  if (!host) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  FUZZ_CHECK(host->is_address() == host->name.empty());
  const std::string canonical = host->ToString();
  const std::optional<CanonicalHost> again = mintgate::rules::CanonicalizeHost(canonical, nullptr);
  FUZZ_CHECK(again && again->name == host->name && again->address == host->address);
  std::string buffer;
  const HostView view = mintgate::rules::MakeHostView(canonical, buffer);
  if (host->is_address()) {
    FUZZ_CHECK(view.address == host->address);
    FUZZ_CHECK(mintgate::rules::Unmapped(*host->address) == *host->address);
  } else {
    FUZZ_CHECK(!view.address && view.name == host->name);
    FUZZ_CHECK(IsLower(host->name) && host->name.size() <= 253);
  }
}

// Every check for one host text.
void CheckHost(std::string_view text) {
  CheckCanonicalHost(text);
  CheckIpAddress(text);
  CheckCidr(text);
  CheckHostPattern(text);
  CheckHostView(text);
  CheckSanName(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  CheckHost(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
