#include "tls/host_name.h"

#include <arpa/inet.h>

#include <cstring>

#include "rules/log_text.h"

namespace mintgate::tls {
namespace {

bool IsLdh(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

Error Refuse(std::string_view host, const char* why) {
  // Never echo control bytes or unbounded input back into logs.
  const std::string shown = rules::EscapeForLog(host, 80);
  return Error{"invalid host name \"" + shown + "\": " + why};
}

Result<SanName> ParseIp(std::string_view host, bool bracketed) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (host.size() >= sizeof buf) return Refuse(host, "not an IP literal");
  std::memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  SanName out;
  out.kind = SanName::Kind::kIp;
  if (!bracketed && inet_pton(AF_INET, buf, out.ip.data()) == 1) {
    out.ip_len = 4;
  } else if (inet_pton(AF_INET6, buf, out.ip.data()) == 1) {
    out.ip_len = 16;
  } else {
    return Refuse(host, "not an IP literal");
  }
  char text[INET6_ADDRSTRLEN];
  inet_ntop(out.ip_len == 4 ? AF_INET : AF_INET6, out.ip.data(), text, sizeof text);
  out.text = text;
  return out;
}

}  // namespace

Result<SanName> ParseSanName(std::string_view host) {
  if (host.empty()) return Refuse(host, "empty");
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return Refuse(host, "unbalanced brackets");
    return ParseIp(host.substr(1, host.size() - 2), true);
  }
  if (host.find(':') != std::string_view::npos) return ParseIp(host, false);

  if (host.back() == '.') host.remove_suffix(1);
  if (host.empty()) return Refuse(host, "empty");
  if (host.size() > kMaxHostNameLength) return Refuse(host, "longer than 253 characters");

  SanName out;
  out.text.reserve(host.size());
  std::size_t label_start = 0;
  bool all_numeric_dots = true;
  for (std::size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      std::size_t len = i - label_start;
      if (len == 0) return Refuse(host, "empty label");
      if (len > 63) return Refuse(host, "label longer than 63 characters");
      std::string_view label = host.substr(label_start, len);
      if (label == "*") {
        if (label_start != 0) return Refuse(host, "'*' is allowed only as the whole first label");
        if (i == host.size()) return Refuse(host, "a wildcard needs a domain below it");
        all_numeric_dots = false;
      } else if (label.find('*') != std::string_view::npos) {
        return Refuse(host, "'*' is allowed only as the whole first label");
      } else if (label.front() == '-' || label.back() == '-') {
        return Refuse(host, "label starts or ends with '-'");
      }
      if (i < host.size()) out.text += '.';
      label_start = i + 1;
      continue;
    }
    char c = host[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '*' && i == 0) {
      out.text += c;
      continue;
    }
    if (!IsLdh(c)) return Refuse(host, "characters other than letters, digits, '-' and '.'");
    if (c < '0' || c > '9') all_numeric_dots = false;
    out.text += c;
  }
  // "1.2.3" or "999.1.1.1" look like addresses but are not valid ones: a DNS SAN made from
  // them would be misleading, so refuse.
  if (all_numeric_dots) {
    auto ip = ParseIp(host, false);
    if (ip.ok()) return ip;
    return Refuse(host, "numeric name that is not a valid IPv4 address");
  }
  return out;
}

}  // namespace mintgate::tls
