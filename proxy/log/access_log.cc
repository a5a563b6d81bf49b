#include "proxy/log/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string_view>

#include "proxy/log/json_text.h"

namespace mintgate::proxy {
namespace {

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

// Squid's native format has no quoting: a field is one run of printable bytes. What a
// client sent that is not (spaces, control bytes, non-ASCII) is percent-encoded, as are '%'
// themselves, so a field can neither split nor forge a line.
std::string NoSpaces(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c > 0x20 && c < 0x7f && c != '%') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
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

AccessLog::AccessLog(const std::string& path, LogFormat format) : format_(format), path_(path) {
  if (path == "-") {
    file_ = stdout;
    owned_ = false;
    Register(this);
    return;
  }
  // Decrypted URLs are private: a new file is readable by its owner and group only, whatever
  // the umask (an existing one keeps the mode its administrator gave it).
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  file_ = fd < 0 ? nullptr : ::fdopen(fd, "a");
  if (file_ == nullptr) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(error));
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
    if (!r.auth.empty()) {
      out += ",\"auth\":";
      AppendJsonString(out, r.auth);
    }
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
    if (!r.error.empty()) {
      out += ",\"error\":";
      AppendJsonString(out, r.error);
    }
    if (!r.evidence.empty()) {
      out += ",\"evidence\":";
      AppendJsonString(out, r.evidence);
    }
    if (!r.groups.empty()) {
      out += ",\"groups\":[";
      for (std::size_t i = 0; i < r.groups.size(); ++i) {
        if (i > 0) out += ',';
        AppendJsonString(out, r.groups[i]);
      }
      out += ']';
    }
    out += ",\"method\":";
    AppendJsonString(out, r.method);
    if (!r.note.empty()) {
      out += ",\"note\":";
      AppendJsonString(out, r.note);
    }
    if (!r.proxy_id.empty()) {
      out += ",\"proxy_id\":";
      AppendJsonString(out, r.proxy_id);
    }
    if (!r.readiness.empty()) {
      out += ",\"readiness\":";
      AppendJsonString(out, r.readiness);
    }
    out += ",\"rule\":";
    AppendJsonStringOrNull(out, r.rule);
    out += ",\"sni\":";
    AppendJsonStringOrNull(out, r.sni);
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

std::string AccessLog::Reopen() const {
  if (!owned_) return "";
  std::lock_guard<std::mutex> lock(mutex_);
  if (!pending_.empty()) WriteOutLocked();
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return "cannot reopen access log " + path_ + ": " + std::strerror(errno);
  // The new file takes the old one's descriptor number: the FILE stays valid for the writers.
  const int rc = ::dup3(fd, ::fileno(file_), O_CLOEXEC);
  const int error = errno;
  ::close(fd);
  if (rc < 0) return "cannot reopen access log " + path_ + ": " + std::strerror(error);
  return "";
}

std::string AccessLog::ReopenAll() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::string errors;
  for (const AccessLog* log : Registry()) {
    if (std::string error = log->Reopen(); !error.empty()) {
      errors += (errors.empty() ? "" : "; ") + error;
    }
  }
  return errors;
}

}  // namespace mintgate::proxy
