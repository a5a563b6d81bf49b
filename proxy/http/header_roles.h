// Private to proxy/http: the text rules of header fields that parsing and forwarding share
// (case-insensitive names, list values, token characters, line breaks) and what each header
// name means to a proxy (its role).
#pragma once

#include <algorithm>
#include <array>
#include <string_view>

namespace mintgate::proxy::http_text {

inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `fn` with each trimmed, non-empty element of a comma-separated header value.
template <typename Fn>
void ForEachListElement(std::string_view value, Fn&& fn) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    std::string_view element = TrimOws(value.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// RFC 9110 §5.6.2 token characters, as a table: every byte of every header name is looked up.
inline constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

inline bool IsTchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }

// One pass (find_first_of would call memchr over the set for every byte of every header).
inline bool HasLineBreak(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

enum class HeaderRole { kOther, kHopByHop, kContentLength, kTransferEncoding, kHost, kUpgrade };

// What a header name means to a proxy (parsing and forwarding both ask), by length first so that
// most names cost one compare.
inline HeaderRole RoleOf(std::string_view name) {
  auto is = [name](std::string_view known) { return EqualsIgnoreCase(name, known); };
  switch (name.size()) {
    case 2:
      return is("TE") ? HeaderRole::kHopByHop : HeaderRole::kOther;
    case 4:
      return is("Host") ? HeaderRole::kHost : HeaderRole::kOther;
    case 7:
      if (is("Upgrade")) return HeaderRole::kUpgrade;
      return is("Trailer") ? HeaderRole::kHopByHop : HeaderRole::kOther;
    case 10:
      return is("Connection") || is("Keep-Alive") ? HeaderRole::kHopByHop : HeaderRole::kOther;
    case 14:
      return is("Content-Length") ? HeaderRole::kContentLength : HeaderRole::kOther;
    case 16:
      return is("Proxy-Connection") ? HeaderRole::kHopByHop : HeaderRole::kOther;
    case 17:
      return is("Transfer-Encoding") ? HeaderRole::kTransferEncoding : HeaderRole::kOther;
    case 18:
      // An origin's proxy challenge would make the client prompt for credentials meant for
      // the gateway (RFC 9110 11.7.1: it applies to the next hop only).
      return is("Proxy-Authenticate") ? HeaderRole::kHopByHop : HeaderRole::kOther;
    case 19:
      return is("Proxy-Authorization") ? HeaderRole::kHopByHop : HeaderRole::kOther;
    case 25:
      return is("Proxy-Authentication-Info") ? HeaderRole::kHopByHop : HeaderRole::kOther;
    default:
      return HeaderRole::kOther;
  }
}

}  // namespace mintgate::proxy::http_text
