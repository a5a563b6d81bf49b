// Heads serialised for the next hop, request targets and authorities parsed, chunks framed:
// the parts of proxy/http that are not the parser.
#include <cassert>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "proxy/http/header_roles.h"
#include "proxy/http/http_codec.h"
#include "rules/canonical_host.h"

namespace mintgate::proxy {

using http_text::EqualsIgnoreCase;
using http_text::ForEachListElement;
using http_text::HasLineBreak;
using http_text::HeaderRole;
using http_text::IsTchar;
using http_text::Lower;
using http_text::RoleOf;
using http_text::TrimOws;

namespace {

// Appends the end-to-end headers of `head`. `drop_host`: requests get the Host of the URL the
// rules were checked against (RFC 7230 §5.4), never the client's own.
void AppendEndToEnd(std::string& out, const HttpHead& head, bool keep_upgrade, bool drop_host) {
  std::vector<std::string_view> listed;  // views into `head`, which outlives them
  for (const HttpHeader& h : head.headers) {
    if (!EqualsIgnoreCase(h.name, "Connection")) continue;
    ForEachListElement(h.value, [&](std::string_view e) { listed.emplace_back(e); });
  }
  for (const HttpHeader& h : head.headers) {
    const std::string_view name = h.name;
    const HeaderRole role = RoleOf(name);
    if (drop_host && role == HeaderRole::kHost) continue;
    bool drop = role == HeaderRole::kHopByHop;
    if (role == HeaderRole::kUpgrade) {
      drop = !keep_upgrade;
    } else if (role != HeaderRole::kContentLength && role != HeaderRole::kTransferEncoding &&
               role != HeaderRole::kHost) {
      // A client could otherwise make us strip the framing headers or Host by listing them in
      // Connection, and the next hop would frame the message differently from us.
      drop = drop || std::any_of(listed.begin(), listed.end(),
                                 [&](std::string_view l) { return EqualsIgnoreCase(name, l); });
    }
    if (drop) continue;
    assert(!HasLineBreak(h.name) && !HasLineBreak(h.value));
    if (name.empty() || HasLineBreak(h.name) || HasLineBreak(h.value)) continue;
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  if (keep_upgrade) out.append("Connection: upgrade\r\n");
}

void AppendExtra(std::string& out, const std::vector<HttpHeader>& extra) {
  for (const HttpHeader& h : extra) {
    assert(!HasLineBreak(h.name) && !HasLineBreak(h.value));
    if (h.name.empty() || HasLineBreak(h.name) || HasLineBreak(h.value)) continue;
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  }
}

}  // namespace

std::string SerializeRequestHead(const HttpHead& head, std::string_view path, std::string_view host,
                                 bool keep_upgrade, const std::vector<HttpHeader>& extra) {
  std::string out;
  out.reserve(256);
  out.append(head.method).append(" ").append(path).append(" HTTP/1.1\r\n");
  if (!HasLineBreak(host)) out.append("Host: ").append(host).append("\r\n");
  AppendEndToEnd(out, head, keep_upgrade, /*drop_host=*/true);
  AppendExtra(out, extra);
  out.append("\r\n");
  return out;
}

std::string SerializeResponseHead(const HttpHead& head, bool keep_upgrade,
                                  const std::vector<HttpHeader>& extra) {
  std::string out;
  out.reserve(256);
  out.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ");
  if (!HasLineBreak(head.reason)) out.append(head.reason);
  out.append("\r\n");
  AppendEndToEnd(out, head, keep_upgrade, /*drop_host=*/false);
  AppendExtra(out, extra);
  out.append("\r\n");
  return out;
}

namespace {

std::optional<std::uint16_t> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// Splits "host[:port]" / "[v6][:port]"; the port is empty when absent. The host comes back
// canonical (rules::CanonicalizeHost): a lower-case name, a dotted quad whatever spelling the
// client used, or IPv6 text without brackets.
std::optional<std::pair<std::string, std::string_view>> SplitAuthority(std::string_view a,
                                                                       std::string* error) {
  std::string_view host;
  std::string_view rest;
  if (!a.empty() && a.front() == '[') {
    const std::size_t close = a.find(']');
    if (close == std::string_view::npos) {
      if (error) *error = "unbalanced '[' in the host";
      return std::nullopt;
    }
    host = a.substr(0, close + 1);
    rest = a.substr(close + 1);
  } else {
    const std::size_t colon = a.find(':');
    host = a.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : a.substr(colon);
  }
  std::optional<rules::CanonicalHost> canonical = rules::CanonicalizeHost(host, error);
  if (!canonical) return std::nullopt;
  std::string_view port;
  if (!rest.empty()) {
    if (rest.front() != ':' || rest.size() == 1) {
      if (error) *error = "invalid port after the host";
      return std::nullopt;
    }
    port = rest.substr(1);
  }
  return std::make_pair(canonical->ToString(), port);
}

}  // namespace

std::optional<HttpUrl> ParseAbsoluteHttpUrl(std::string_view target, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  if (target.size() < kScheme.size() || !EqualsIgnoreCase(target.substr(0, 7), kScheme)) {
    return std::nullopt;
  }
  target.remove_prefix(kScheme.size());
  const std::size_t end = target.find_first_of("/?#");
  const std::string_view authority = target.substr(0, end);
  // Userinfo is refused: "http://allowed.example@evil.example/" is a classic policy trick.
  if (authority.find('@') != std::string_view::npos) {
    if (error) *error = "user information in the URL (user@host) is not allowed";
    return std::nullopt;
  }
  auto split = SplitAuthority(authority, error);
  if (!split) return std::nullopt;
  HttpUrl url;
  url.host = std::move(split->first);
  if (!split->second.empty()) {
    auto port = ParsePort(split->second);
    if (!port) {
      if (error) *error = "invalid port in the URL";
      return std::nullopt;
    }
    url.port = *port;
  }
  std::string_view rest = end == std::string_view::npos ? std::string_view() : target.substr(end);
  // A fragment is never sent to the origin.
  rest = rest.substr(0, rest.find('#'));
  if (rest.empty() || rest.front() != '/') url.path = "/";
  url.path.append(rest);
  return url;
}

std::optional<std::pair<std::string, std::uint16_t>> ParseAuthority(std::string_view target,
                                                                    std::string* error) {
  if (target.find_first_of("@/?#") != std::string_view::npos) {
    if (error) *error = "a CONNECT target is host:port, nothing else";
    return std::nullopt;
  }
  auto split = SplitAuthority(target, error);
  if (!split) return std::nullopt;
  auto port = split->second.empty() ? std::nullopt : ParsePort(split->second);
  if (!port) {
    if (error) *error = "a CONNECT target needs a port from 1 to 65535";
    return std::nullopt;
  }
  return std::make_pair(std::move(split->first), *port);
}

std::string SerializeChunk(std::string_view data) {
  if (data.empty()) return "0\r\n\r\n";
  char head[32];
  const int n = std::snprintf(head, sizeof head, "%zx\r\n", data.size());
  std::string out;
  out.reserve(static_cast<std::size_t>(n) + data.size() + 2);
  out.append(head, static_cast<std::size_t>(n));
  out.append(data);
  out += "\r\n";
  return out;
}

}  // namespace mintgate::proxy
