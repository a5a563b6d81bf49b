// The running gateway: its workers, the admin listener and the main thread's loop, which
// handles the signals (SIGTERM/SIGINT: stop accepting, drain for up to 10 s while /readyz
// answers 503, exit 0; SIGHUP: reload the configuration; SIGUSR1: reopen the access log after
// a rotation) and the reloads. Under systemd (Type=notify) it reports ready, reloading and
// stopping (service_notify.h).
#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "proxy/control/admin_server.h"
#include "proxy/control/runtime_builder.h"
#include "proxy/runtime/mint_service.h"
#include "proxy/runtime/runtime.h"

namespace mintgate::proxy {

class Worker;

class Gateway {
 public:
  // `config_path` "": the embedded default, which cannot be reloaded.
  explicit Gateway(std::string config_path);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Options for BuildRuntime: the running runtime (null before Run) and the hand-over of new
  // mint services, which the gateway shuts down on its main loop once no runtime uses them.
  RuntimeBuildOptions build_options();

  // Blocks until a stop signal has been handled. Returns the process exit code: 0 after a
  // clean stop, 3 when the listeners could not be set up.
  int Run(RuntimePtr runtime, std::ostream& out, std::ostream& err);

  // Loads the configuration file again. When it is valid, every worker and the admin listener
  // get the new runtime (connections already open keep the one they started with); otherwise
  // the running one keeps serving and the errors are logged. Main loop only (SIGHUP,
  // POST /reload).
  ReloadOutcome Reload();

  static constexpr std::chrono::seconds kDrain{10};

 private:
  struct Released;
  void Stop(int signum);
  // Main loop: once every worker's loop has ended, the admin listener closes too.
  void OnWorkerStopped();
  void Apply(RuntimePtr runtime);
  void DeleteReleasedMints();
  void TearDown();

  std::string config_path_;
  // Mint services no runtime uses any more: their pools are joined and they are deleted on the
  // main thread, never on a worker loop that the pool posts to.
  std::shared_ptr<Released> released_;
  std::vector<std::weak_ptr<MintService>> mints_;  // every one made, to shut down at exit
  RuntimePtr runtime_;
  std::ostream* out_ = nullptr;
  std::ostream* err_ = nullptr;
  uv_loop_t loop_{};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;
  uv_signal_t term_{};
  uv_signal_t interrupt_{};
  uv_signal_t hangup_{};
  uv_signal_t user1_{};
  uv_async_t worker_stopped_{};
  std::mutex stopped_mutex_;
  std::size_t workers_stopped_ = 0;  // guarded by stopped_mutex_
  uv_async_t released_async_{};
  bool stopping_ = false;
  ReloadStats reload_stats_;
};

}  // namespace mintgate::proxy
