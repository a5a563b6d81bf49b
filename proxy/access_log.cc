#include "proxy/access_log.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

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

}  // namespace

AccessLog::AccessLog(const std::string& path, LogFormat format) : format_(format) {
  if (path == "-") {
    file_ = stdout;
    owned_ = false;
    return;
  }
  file_ = std::fopen(path.c_str(), "ae");
  if (file_ == nullptr) {
    throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(errno));
  }
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_) std::fclose(file_);
}

std::string AccessLog::Format(const AccessRecord& r) const {
  if (format_ == LogFormat::kJson) {
    nlohmann::json j = {
        {"time", r.time},
        {"duration_ms", r.duration_ms},
        {"client", r.client},
        {"user", r.user.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.user)},
        {"method", r.method},
        {"url", r.url},
        {"status", r.status},
        {"bytes_from_client", r.bytes_from_client},
        {"bytes_to_client", r.bytes_to_client},
        {"action", r.action},
        {"rule", r.rule.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.rule)},
        {"ca", r.ca.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.ca)},
        {"cert_cache",
         r.cert_cache.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.cert_cache)},
        {"upstream", r.upstream.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.upstream)},
        {"upstream_verify",
         r.upstream_verify.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.upstream_verify)},
    };
    if (!r.note.empty()) j["note"] = r.note;
    // Replace invalid UTF-8 (a URL is network input) instead of throwing.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
  const std::string line = Format(record) + "\n";
  std::lock_guard<std::mutex> lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace mintgate::proxy
