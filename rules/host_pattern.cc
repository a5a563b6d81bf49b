#include "rules/host_pattern.h"

#include "rules/canonical_host.h"

namespace mintgate::rules {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

void NormalizeInto(std::string_view host, std::string& out) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  out.resize(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) out[i] = Lower(host[i]);
}

// Cheap pre-check so that ordinary names skip the full parse: an address is IPv6 (a ':') or
// has a last label that starts with a digit (WHATWG's "ends in a number").
bool LooksLikeAddress(std::string_view host) {
  if (host.empty()) return false;
  if (host.find(':') != host.npos) return true;
  const std::size_t dot = host.rfind('.');
  const char first = dot == host.npos ? host[0] : dot + 1 < host.size() ? host[dot + 1] : 'x';
  return first >= '0' && first <= '9';
}

}  // namespace

std::string NormalizeHost(std::string_view host) {
  std::string out;
  NormalizeInto(host, out);
  return out;
}

HostView MakeHostView(std::string_view host, std::string& buffer) {
  NormalizeInto(host, buffer);
  HostView view;
  if (LooksLikeAddress(buffer)) {
    // Any spelling of an address is judged as the address (and IPv4-mapped IPv6 as IPv4), so
    // that CIDR rules see what the connection will reach.
    if (std::optional<CanonicalHost> canonical = CanonicalizeHost(buffer, nullptr)) {
      view.address = canonical->address;
    }
  }
  if (!view.address) view.name = buffer;
  return view;
}

bool IsValidHostName(std::string_view name, std::string* error) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (name.empty()) return fail("empty host name");
  if (name.size() > 253) return fail("longer than 253 characters");
  std::size_t start = 0;
  bool all_digits = true;
  while (true) {
    std::size_t end = name.find('.', start);
    std::string_view label = name.substr(start, end == name.npos ? name.npos : end - start);
    if (label.empty()) return fail("empty label");
    if (label.size() > 63) return fail("label \"" + std::string(label) + "\" is longer than 63");
    all_digits = true;
    for (char c : label) {
      if (c == '*') return fail("\"*\" is only allowed as a whole first label (\"*.example.com\")");
      bool digit = c >= '0' && c <= '9';
      if (!(digit || (c >= 'a' && c <= 'z') || c == '-')) {
        return fail("character '" + std::string(1, c) +
                    "' is not allowed (letters, digits and '-' only; IDNs in xn-- form)");
      }
      all_digits = all_digits && digit;
    }
    if (label.front() == '-' || label.back() == '-') {
      return fail("label \"" + std::string(label) + "\" starts or ends with '-'");
    }
    if (end == name.npos) break;
    start = end + 1;
  }
  if (all_digits) return fail("the last label is all digits, but it is not a valid IP address");
  // Browsers read a name whose last label is a number ("10.0.0.0x8", hex) as an IPv4 address
  // (WHATWG URL), and so does the gateway (CanonicalizeHost): as a name it would never match.
  const std::size_t last = name.rfind('.') == name.npos ? 0 : name.rfind('.') + 1;
  if (name.substr(last).starts_with("0x")) {
    const std::string_view digits = name.substr(last + 2);
    bool hex = true;
    for (char c : digits) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    if (hex) return fail("the last label is a hexadecimal number: an IP address spelt another way");
  }
  return true;
}

std::optional<HostPattern> HostPattern::Parse(std::string_view text, std::string* error) {
  HostPattern pattern;
  pattern.text = std::string(text);
  std::string normalized = NormalizeHost(text);
  if (normalized.empty()) {
    if (error) *error = "empty pattern";
    return std::nullopt;
  }
  bool bracketed = text.size() >= 2 && text.front() == '[' && text.back() == ']';
  if (bracketed || normalized.find_first_of("/:") != normalized.npos ||
      IpAddress::Parse(normalized)) {
    std::optional<Cidr> cidr = Cidr::Parse(normalized, error);
    if (!cidr) return std::nullopt;
    pattern.kind = Kind::kAddress;
    pattern.cidr = *cidr;
    // Targets in IPv4-mapped (or -compatible) IPv6 form are judged as IPv4 (MakeHostView), so
    // such a block means the IPv4 block inside it; kept as IPv6 it would never match.
    const IpAddress inside = Unmapped(cidr->network());
    if (inside.family() == IpAddress::Family::kV4 && cidr->prefix_length() >= 96) {
      std::string ignored;
      pattern.cidr = *Cidr::Parse(
          inside.ToString() + "/" + std::to_string(cidr->prefix_length() - 96), &ignored);
    }
    return pattern;
  }
  std::string_view name = normalized;
  if (name.starts_with("*.")) {
    pattern.kind = Kind::kBelow;
    name.remove_prefix(2);
  } else if (name.starts_with(".")) {
    pattern.kind = Kind::kSelfAndBelow;
    name.remove_prefix(1);
  }
  if (!IsValidHostName(name, error)) return std::nullopt;
  pattern.name = std::string(name);
  return pattern;
}

bool HostPattern::Matches(const HostView& host) const {
  if (kind == Kind::kAddress) return host.address && cidr.Contains(*host.address);
  std::string_view h = host.name;
  if (h.empty()) return false;
  bool below = h.size() > name.size() && h.ends_with(name) && h[h.size() - name.size() - 1] == '.';
  switch (kind) {
    case Kind::kExact:
      return h == name;
    case Kind::kBelow:
      return below;
    case Kind::kSelfAndBelow:
      return below || h == name;
    case Kind::kAddress:
      break;
  }
  return false;
}

}  // namespace mintgate::rules
