// The admin listener (SPEC §7), on the main thread's loop and never on the proxy port:
// /healthz, /metrics (Prometheus text format) and /audit (the ca audit report as JSON).
#pragma once

#include <uv.h>

#include <string>

#include "proxy/runtime.h"

namespace mintgate::proxy {

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, RuntimePtr runtime, std::string config_path);
  // Binds and listens on runtime->config.admin.listen; returns "" or why it failed.
  std::string Start();
  // Closes the listener (connections in progress finish on their own).
  void Close();

  // The response for one request (exposed for tests).
  std::string Respond(const std::string& method, const std::string& path) const;

 private:
  struct Connection;
  void OnConnection();

  uv_loop_t* loop_;
  RuntimePtr runtime_;
  std::string config_path_;
  uv_tcp_t* listener_ = nullptr;
};

}  // namespace mintgate::proxy
