// The access log (SPEC §7): one line per request and per tunnel, as JSON or in Squid's native
// access.log format, to a file or standard output. Shared by all workers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "proxy/config/config.h"

namespace mintgate::proxy {

struct AccessRecord {
  double time = 0;  // seconds since the epoch, when the request (or tunnel) started
  std::uint64_t duration_ms = 0;
  std::string client;
  // The PROXY protocol v2 header's unique id (a balancer's connection id), "" when none.
  std::string proxy_id;
  std::string user;  // "" = unknown
  // How the user was identified ("negotiate", "basic", "static", "login"), or why not
  // ("failed", "required", "login_required"); "" when [auth] is not configured.
  std::string auth;
  std::vector<std::string> groups;  // the user's groups (rules on `groups` match these)
  std::string method;
  std::string url;  // the absolute URL, or host:port for CONNECT
  std::string sni;  // CONNECT: the ClientHello's server name (escaped), "" when none
  int status = 0;   // status sent to the client; 0 when the connection closed without one
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_to_client = 0;
  std::string action;  // decrypt | tunnel | block | http
  std::string rule;
  std::string ca;               // the profile that signed, "" when none
  std::string cert_cache;       // hit | miss | coalesced | "" when no leaf was needed
  std::string upstream;         // the origin address, or why there was none
  std::string upstream_verify;  // "ok", or why the origin's certificate was not trusted
  std::string note;             // a short reason when the gateway refused or failed
  // Decrypted CONNECTs: the client's verdict on its leaf (client readiness): "trusts",
  // "rejects", "unused" (a spare connection), or "" when there was none; and how it was seen
  // ("application_data", "alert:unknown_ca", "closed_after_handshake", ...).
  std::string readiness;
  std::string evidence;
  // Why the exchange failed, as "source/kind" (net::ConnError::Tag, "upstream/timeout"); ""
  // when it did not. The reason in words is the note.
  std::string error;
};

class AccessLog {
 public:
  // "-" writes to standard output. Throws std::runtime_error when the file cannot be opened.
  AccessLog(const std::string& path, LogFormat format);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Queues the line; it reaches the file at the next Flush (a worker's flush timer, at most
  // Worker::kLogFlushMs after the line: one write for all the requests finished meanwhile),
  // at 64 KiB queued, or when the log is destroyed.
  void Write(const AccessRecord& record) const;
  void Flush() const;
  // Flushes every access log alive (a reload may leave connections writing to the previous
  // one): called by the workers' flush timers and when a worker stops.
  static void FlushAll();
  // Every access log alive written to a file opens its path again (SIGUSR1, after logrotate
  // renamed the file): what is queued goes to the old file, later lines to the new one.
  // Returns "" or why a log could not be reopened (it then keeps writing to the old file).
  static std::string ReopenAll();
  // The line Write would print, without its newline.
  std::string Format(const AccessRecord& record) const;

 private:
  std::string Reopen() const;

  LogFormat format_;
  std::string path_;
  std::FILE* file_;
  bool owned_;
  mutable std::mutex mutex_;
  mutable std::string pending_;  // lines not yet written, guarded by mutex_

  static constexpr std::size_t kFlushBytes = 64 * 1024;
  void WriteOutLocked() const;
  static std::set<const AccessLog*>& Registry();  // guarded by a mutex of access_log.cc
  static void Register(const AccessLog* log);
};

}  // namespace mintgate::proxy
