// The admin listener (SPEC §7), on the main thread's loop and never on the proxy port:
// /healthz, /readyz, /metrics (Prometheus text format), /audit (the ca audit report as JSON) and
// /readiness (which clients trust which CA profile, as JSON); POST /reload loads the
// configuration file again. Everything but /healthz and the console needs the admin bearer
// token (proxy/config/admin_token.h); the migration console (/console/) logs in with it.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "proxy/http/http_codec.h"
#include "proxy/runtime/runtime.h"
#include "proxy/session/worker_metrics.h"

namespace mintgate::proxy {

class Console;

// One configuration reload (SIGHUP or POST /reload), as POST /reload answers it.
struct ReloadOutcome {
  bool ok = false;
  int http_status = 422;            // 200 applied, 422 rejected config, 409 nothing to reload
  std::vector<std::string> errors;  // why it was rejected: "file:line:column: message"
  std::string message;              // "configuration reloaded from FILE (N rules, M CA profiles)"
  std::string file;
  std::size_t rules = 0;
  std::size_t ca_profiles = 0;
  bool mint_kept = false;  // the certificate cache survived
  std::vector<std::string> restart_needed;
};

// For /metrics; kept by whoever reloads.
struct ReloadStats {
  std::uint64_t ok = 0;
  std::uint64_t rejected = 0;
  std::time_t last_success = 0;  // the first load at start counts
  bool last_ok = true;
};

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, RuntimePtr runtime, std::string config_path);
  ~AdminServer();
  // Binds and listens on runtime->config.admin.listen; returns "" or why it failed.
  std::string Start();
  // Closes the listener and the connections whose request has not arrived; answers being
  // written finish on their own.
  void Close();

  // The runtime later requests read (main loop only: the admin listener runs there).
  void SetRuntime(RuntimePtr runtime) { runtime_ = std::move(runtime); }
  // POST /reload runs `reload`; /metrics reports `stats` (owned by the caller, may be null).
  // Unset, POST /reload answers 501.
  void SetReloader(std::function<ReloadOutcome()> reload, const ReloadStats* stats);
  Console& console() { return *console_; }
  // /metrics sums these workers' counters (they must outlive this server).
  void SetWorkerMetrics(std::vector<const WorkerMetrics*> workers) {
    workers_ = std::move(workers);
  }
  // From now on /readyz answers 503: a stop began and the workers are draining.
  void SetDraining() { draining_ = true; }

  // The response for one request (exposed for tests): every request must name this listener
  // in its Host header (400 without one, 403 for another name: see AdminHostProblem), and
  // every one but /healthz must carry the runtime's admin token as a bearer token (else 401).
  // "/" and /console/ are the migration console (proxy/control/console.h): its own login
  // and session cookie instead of the bearer token; `body` is its forms, `peer` the client.
  std::string Respond(const std::string& method, const std::string& target,
                      const std::vector<HttpHeader>& headers, const std::string& body = "",
                      const std::string& peer = "") const;

 private:
  struct Connection;
  void OnConnection();
  std::string Serve(const std::string& method, const std::string& path) const;
  std::string RespondReload(const std::string& method) const;

  uv_loop_t* loop_;
  RuntimePtr runtime_;
  std::string config_path_;
  HostPort listen_;  // admin.listen, with the port actually bound once started
  uv_tcp_t* listener_ = nullptr;
  std::unordered_set<Connection*> connections_;  // open, not yet closing
  std::function<ReloadOutcome()> reload_;
  const ReloadStats* reload_stats_ = nullptr;
  std::unique_ptr<Console> console_;
  std::vector<const WorkerMetrics*> workers_;
  bool draining_ = false;
};

}  // namespace mintgate::proxy
