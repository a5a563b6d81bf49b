#include "proxy/access_log.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string_view>

namespace mintgate::proxy {
namespace {

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

// Squid's native format cannot carry spaces inside a field.
std::string NoSpaces(std::string s) {
  for (char& c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = '_';
  }
  return s;
}

// A JSON string: quotes, backslashes and control characters escaped; bytes that are not
// valid UTF-8 (URLs are network input) replaced by U+FFFD.
void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
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
          if (c < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
            out += escaped;
          } else {
            out += static_cast<char>(c);
          }
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

void AppendJsonStringOrNull(std::string& out, std::string_view s) {
  if (s.empty()) {
    out += "null";
  } else {
    AppendJsonString(out, s);
  }
}

std::mutex& RegistryMutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

std::set<const AccessLog*>& AccessLog::Registry() {
  static std::set<const AccessLog*> logs;
  return logs;
}

void AccessLog::Register(const AccessLog* log) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry().insert(log);
}

AccessLog::AccessLog(const std::string& path, LogFormat format) : format_(format) {
  if (path == "-") {
    file_ = stdout;
    owned_ = false;
    Register(this);
    return;
  }
  file_ = std::fopen(path.c_str(), "ae");
  if (file_ == nullptr) {
    throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(errno));
  }
  owned_ = true;
  Register(this);
}

AccessLog::~AccessLog() {
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    Registry().erase(this);
  }
  Flush();
  if (owned_) std::fclose(file_);
}

std::string AccessLog::Format(const AccessRecord& r) const {
  if (format_ == LogFormat::kJson) {
    // Written by hand (a JSON library's DOM cost ~50,000 instructions a line, a third of a
    // relayed request); keys in sorted order, as before.
    std::string out;
    out.reserve(320 + r.url.size() + r.note.size());
    out += "{\"action\":";
    AppendJsonString(out, r.action);
    out += ",\"bytes_from_client\":";
    out += std::to_string(r.bytes_from_client);
    out += ",\"bytes_to_client\":";
    out += std::to_string(r.bytes_to_client);
    out += ",\"ca\":";
    AppendJsonStringOrNull(out, r.ca);
    out += ",\"cert_cache\":";
    AppendJsonStringOrNull(out, r.cert_cache);
    out += ",\"client\":";
    AppendJsonString(out, r.client);
    out += ",\"duration_ms\":";
    out += std::to_string(r.duration_ms);
    out += ",\"method\":";
    AppendJsonString(out, r.method);
    if (!r.note.empty()) {
      out += ",\"note\":";
      AppendJsonString(out, r.note);
    }
    out += ",\"rule\":";
    AppendJsonStringOrNull(out, r.rule);
    out += ",\"status\":";
    out += std::to_string(r.status);
    out += ",\"time\":";
    char number[32];
    const auto written = std::to_chars(number, number + sizeof number, r.time);
    out.append(number, written.ptr);
    out += ",\"upstream\":";
    AppendJsonStringOrNull(out, r.upstream);
    out += ",\"upstream_verify\":";
    AppendJsonStringOrNull(out, r.upstream_verify);
    out += ",\"url\":";
    AppendJsonString(out, r.url);
    out += ",\"user\":";
    AppendJsonStringOrNull(out, r.user);
    out += '}';
    return out;
  }
  // time elapsed client code/status bytes method URL user hierarchy/from type
  char time[32];
  std::snprintf(time, sizeof time, "%.3f", r.time);
  const std::string code = r.action == "tunnel"               ? "TCP_TUNNEL"
                           : r.status >= 400 || r.status == 0 ? "TCP_DENIED"
                                                              : "TCP_MISS";
  return std::string(time) + " " + std::to_string(r.duration_ms) + " " + Dash(r.client) + " " +
         code + "/" + std::to_string(r.status) + " " + std::to_string(r.bytes_to_client) + " " +
         Dash(NoSpaces(r.method)) + " " + Dash(NoSpaces(r.url)) + " " + Dash(NoSpaces(r.user)) +
         " " + (r.upstream.empty() ? "HIER_NONE/-" : "HIER_DIRECT/" + NoSpaces(r.upstream)) + " -";
}

void AccessLog::Write(const AccessRecord& record) const {
  std::string line = Format(record);
  line += '\n';
  std::lock_guard<std::mutex> lock(mutex_);
  pending_ += line;
  if (pending_.size() >= kFlushBytes) WriteOutLocked();
}

void AccessLog::Flush() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!pending_.empty()) WriteOutLocked();
}

void AccessLog::WriteOutLocked() const {
  std::fwrite(pending_.data(), 1, pending_.size(), file_);
  std::fflush(file_);
  pending_.clear();
}

void AccessLog::FlushAll() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  for (const AccessLog* log : Registry()) log->Flush();
}

}  // namespace mintgate::proxy
