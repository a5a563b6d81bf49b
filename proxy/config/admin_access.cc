#include "proxy/config/admin_access.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "rules/ip_address.h"

namespace mintgate::proxy {
namespace {

std::optional<rules::IpAddress> ListenAddress(const std::string& host) {
  return rules::IpAddress::Parse(host == "localhost" ? "127.0.0.1" : host);
}

bool IsWildcard(const rules::IpAddress& ip) {
  const auto& b = ip.bytes();
  return std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; });
}

bool IsLoopback(const rules::IpAddress& ip) {
  const auto& b = ip.bytes();
  if (ip.family() == rules::IpAddress::Family::kV4) return b[0] == 127;
  return std::all_of(b.begin(), b.end() - 1, [](std::uint8_t x) { return x == 0; }) && b[15] == 1;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Printable for a message: a Host value is the client's, so control bytes are masked.
std::string Printable(std::string_view text) {
  std::string out(text.substr(0, 100));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return out;
}

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  const std::optional<rules::IpAddress> ip = ListenAddress(address);
  return ip && IsLoopback(*ip);
}

std::string AdminHostProblem(std::string_view host, const HostPort& listen) {
  const std::string where = "this admin listener (" + listen.ToString() + ")";
  const std::string refused = "Host \"" + Printable(host) + "\" does not name " + where;
  // Split "name[:port]" or "[v6][:port]".
  std::string_view name = host;
  std::optional<std::string_view> port;
  bool bracketed = false;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return refused;
    name = host.substr(1, close - 1);
    bracketed = true;
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return refused;
      port = rest.substr(1);
    }
  } else if (const std::size_t colon = host.find(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
  }
  if (port) {
    const bool digits =
        !port->empty() && port->size() <= 5 &&
        std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoul(std::string(*port)) != listen.port) return refused;
  }

  const std::optional<rules::IpAddress> own = ListenAddress(listen.host);
  if (!own) return refused;  // Start() refuses such a listener: nothing can be named
  const std::optional<rules::IpAddress> ip = rules::IpAddress::Parse(name);
  if (ip) {
    // IPv6 only in brackets (RFC 3986 §3.2.2), IPv4 never.
    if (bracketed != (ip->family() == rules::IpAddress::Family::kV6)) return refused;
    if (IsWildcard(*own) || *ip == *own) return "";
    return refused;
  }
  if (!bracketed && Lower(name) == "localhost" && (IsLoopback(*own) || IsWildcard(*own))) {
    return "";
  }
  return refused + ": use its address, as in http://" + listen.ToString() +
         "/ (names are refused so that a web page cannot reach it through DNS rebinding)";
}

}  // namespace mintgate::proxy
