#include "proxy/log/json_text.h"

#include <cstdio>

namespace mintgate::proxy {

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    // Printable ASCII that needs no escape, appended as one run (URLs are mostly that).
    std::size_t plain = i;
    while (plain < s.size()) {
      const auto p = static_cast<unsigned char>(s[plain]);
      if (p < 0x20 || p >= 0x80 || p == '"' || p == '\\') break;
      ++plain;
    }
    if (plain > i) {
      out.append(s.data() + i, plain - i);
      i = plain;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          char escaped[8];  // only control characters are left here
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
      }
      ++i;
      continue;
    }
    // A multi-byte sequence: its expected length from the lead byte, and the allowed range of
    // the second byte (which excludes overlong forms, surrogates and code points above
    // U+10FFFF). An ill-formed one becomes one U+FFFD per maximal subpart (Unicode's rule).
    std::size_t expected = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      expected = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      expected = 3;
      if (c == 0xe0) low = 0xa0;
      if (c == 0xed) high = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      expected = 4;
      if (c == 0xf0) low = 0x90;
      if (c == 0xf4) high = 0x8f;
    }
    std::size_t valid = 1;  // bytes of the sequence that are right so far
    while (expected != 0 && valid < expected && i + valid < s.size()) {
      const auto b = static_cast<unsigned char>(s[i + valid]);
      const bool ok = valid == 1 ? b >= low && b <= high : (b & 0xc0) == 0x80;
      if (!ok) break;
      ++valid;
    }
    if (expected != 0 && valid == expected) {
      out.append(s.data() + i, expected);
    } else {
      out += "\xef\xbf\xbd";
    }
    i += valid;
  }
  out += '"';
}

}  // namespace mintgate::proxy
