#include "proxy/control/gateway.h"

#include <sys/resource.h>

#include <csignal>
#include <ctime>
#include <mutex>
#include <thread>
#include <utility>

#include "proxy/control/service_notify.h"
#include "proxy/log/access_log.h"
#include "proxy/session/worker.h"

namespace mintgate::proxy {

// The last runtime using a mint service may go on any thread (a worker reaping its last old
// session): its deleter only queues it here, and the main loop joins its pool and deletes it.
struct Gateway::Released {
  std::mutex mutex;
  std::vector<MintService*> services;
  uv_async_t* wake = nullptr;  // the main loop's, while it runs

  void Add(MintService* service) {
    std::lock_guard<std::mutex> lock(mutex);
    services.push_back(service);
    if (wake != nullptr) uv_async_send(wake);
  }
  std::vector<MintService*> Take() {
    std::lock_guard<std::mutex> lock(mutex);
    return std::exchange(services, {});
  }
  // Only once the gateway is gone and a straggler released one after it.
  ~Released() {
    for (MintService* service : services) delete service;
  }
};

namespace {

// Each client connection holds two descriptors (client and origin): take what the hard limit
// allows, and say so when server.max_connections cannot be reached under it.
void RaiseOpenFileLimit(std::size_t max_connections, std::ostream& err) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t needed = static_cast<rlim_t>(max_connections) * 2 + 256;
  if (max_connections == 0 || limit.rlim_cur < needed) {
    err << "mintgate: warning: the open-file limit is " << limit.rlim_cur
        << (max_connections == 0
                ? " and server.max_connections is 0 (no limit)"
                : ", below the " + std::to_string(needed) + " that server.max_connections = " +
                      std::to_string(max_connections) + " needs")
        << "; beyond it new connections fail to be accepted (raise LimitNOFILE or lower "
           "server.max_connections)\n";
  }
}

}  // namespace

Gateway::Gateway(std::string config_path)
    : config_path_(std::move(config_path)), released_(std::make_shared<Released>()) {}

Gateway::~Gateway() { TearDown(); }

RuntimeBuildOptions Gateway::build_options() {
  RuntimeBuildOptions options;
  options.previous = runtime_;
  options.adopt_mint = [this](std::unique_ptr<MintService> mint) {
    std::shared_ptr<MintService> shared(
        mint.release(), [released = released_](MintService* m) { released->Add(m); });
    mints_.push_back(shared);
    return shared;
  };
  return options;
}

int Gateway::Run(RuntimePtr runtime, std::ostream& out, std::ostream& err) {
  out_ = &out;
  err_ = &err;
  runtime_ = std::move(runtime);
  // A peer that closes while we write must cost an error code, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  RaiseOpenFileLimit(runtime_->config.server.max_connections, err);
  int count = runtime_->config.server.workers;
  if (count <= 0) count = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  int rc = 0;
  uv_loop_init(&loop_);
  loop_.data = this;
  // Before the workers start: each wakes the main loop when its own loop ends.
  uv_async_init(&loop_, &worker_stopped_,
                [](uv_async_t* a) { static_cast<Gateway*>(a->loop->data)->OnWorkerStopped(); });
  for (int i = 0; i < count; ++i) {
    auto worker = std::make_unique<Worker>(i, runtime_);
    // Counted and sent under the lock: once the main loop sees every worker counted, none
    // will touch the handle again, and it can be closed.
    worker->set_on_stopped([this] {
      std::lock_guard<std::mutex> lock(stopped_mutex_);
      ++workers_stopped_;
      uv_async_send(&worker_stopped_);
    });
    if (std::string error = worker->Start(); !error.empty()) {
      err << "mintgate: cannot listen on " << error << "\n";
      rc = 3;
      break;
    }
    workers_.push_back(std::move(worker));
  }

  if (rc == 0) {
    admin_ = std::make_unique<AdminServer>(&loop_, runtime_, config_path_);
    if (std::string error = admin_->Start(); !error.empty()) {
      err << "mintgate: cannot listen for admin requests on " << error << "\n";
      rc = 3;
    }
  }
  if (rc != 0) {
    stopping_ = true;
    for (auto& w : workers_) w->Stop(std::chrono::milliseconds(0));
    OnWorkerStopped();  // closes what is open once they have all ended
  } else {
    std::vector<const WorkerMetrics*> metrics;
    for (const auto& w : workers_) metrics.push_back(&static_cast<const Worker&>(*w).metrics());
    admin_->SetWorkerMetrics(std::move(metrics));
    reload_stats_.last_success = std::time(nullptr);  // the first load counts
    admin_->SetReloader([this] { return Reload(); }, &reload_stats_);
    uv_async_init(&loop_, &released_async_, [](uv_async_t* a) {
      static_cast<Gateway*>(a->loop->data)->DeleteReleasedMints();
    });
    {
      std::lock_guard<std::mutex> lock(released_->mutex);
      released_->wake = &released_async_;
    }
    uv_signal_init(&loop_, &term_);
    uv_signal_init(&loop_, &interrupt_);
    uv_signal_init(&loop_, &hangup_);
    uv_signal_init(&loop_, &user1_);
    auto on_signal = [](uv_signal_t* handle, int signum) {
      auto* gateway = static_cast<Gateway*>(handle->loop->data);
      if (signum == SIGHUP) {
        *gateway->out_ << "mintgate: SIGHUP: reloading the configuration" << std::endl;
        gateway->Reload();
      } else if (signum == SIGUSR1) {
        // logrotate has renamed the file: later lines go to a new one at the configured path.
        if (std::string error = AccessLog::ReopenAll(); !error.empty()) {
          *gateway->err_ << "mintgate: SIGUSR1: " << error << std::endl;
        } else {
          *gateway->out_ << "mintgate: SIGUSR1: access log reopened" << std::endl;
        }
      } else {
        gateway->Stop(signum);
      }
    };
    uv_signal_start(&term_, on_signal, SIGTERM);
    uv_signal_start(&interrupt_, on_signal, SIGINT);
    uv_signal_start(&hangup_, on_signal, SIGHUP);
    uv_signal_start(&user1_, on_signal, SIGUSR1);
    NotifyReady("serving " + std::to_string(workers_.size()) + " workers");
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  TearDown();
  if (rc == 0) out << "mintgate: stopped" << std::endl;
  return rc;
}

void Gateway::Stop(int signum) {
  if (stopping_) return;
  stopping_ = true;
  *out_ << "mintgate: " << (signum == SIGTERM ? "SIGTERM" : "SIGINT")
        << ": no longer accepting; draining for up to " << kDrain.count() << " s" << std::endl;
  NotifyStopping();
  // The admin listener stays up while the workers drain, its /readyz answering 503 so that a
  // balancer's health check takes this gateway out of rotation (OnWorkerStopped closes it).
  admin_->SetDraining();
  for (auto& w : workers_) w->Stop(kDrain);
  uv_close(reinterpret_cast<uv_handle_t*>(&term_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&interrupt_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&hangup_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&user1_), nullptr);
  // Services released from now on are deleted by TearDown, after the workers are joined.
  {
    std::lock_guard<std::mutex> lock(released_->mutex);
    released_->wake = nullptr;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&released_async_), nullptr);
  OnWorkerStopped();  // none may be running already
}

void Gateway::OnWorkerStopped() {
  if (!stopping_ || uv_is_closing(reinterpret_cast<uv_handle_t*>(&worker_stopped_)) != 0) return;
  {
    std::lock_guard<std::mutex> lock(stopped_mutex_);
    if (workers_stopped_ < workers_.size()) return;
  }
  if (admin_) admin_->Close();
  uv_close(reinterpret_cast<uv_handle_t*>(&worker_stopped_), nullptr);
}

// After the loops have ended: mints still running post to the stopped loops, which drop
// them, so every pool must be gone before the workers are.
void Gateway::TearDown() {
  for (auto& w : workers_) w->Join();
  for (const std::weak_ptr<MintService>& weak : mints_) {
    if (std::shared_ptr<MintService> mint = weak.lock()) mint->Shutdown();
  }
  if (runtime_ && runtime_->mint) runtime_->mint->Shutdown();  // one not made through us
  mints_.clear();
  admin_.reset();
  runtime_.reset();
  workers_.clear();
  DeleteReleasedMints();
}

void Gateway::DeleteReleasedMints() {
  for (MintService* mint : released_->Take()) {
    mint->Shutdown();  // joins its pool; results still queued post to live workers
    delete mint;
  }
  std::erase_if(mints_, [](const std::weak_ptr<MintService>& w) { return w.expired(); });
}

ReloadOutcome Gateway::Reload() {
  NotifyReloading();
  ReloadOutcome outcome;
  if (config_path_.empty()) {
    outcome.http_status = 409;
    outcome.errors.push_back(
        "running the embedded default configuration (no -c FILE): there is no file to reload; "
        "restart with -c FILE");
  } else if (stopping_) {
    outcome.http_status = 409;
    outcome.errors.push_back("the gateway is stopping");
  } else {
    RuntimeBuild build = BuildRuntime(config_path_, build_options(), *out_);
    if (!build.runtime) {
      outcome.http_status = 422;
      outcome.errors = std::move(build.errors);
    } else {
      for (const std::string& w : build.warnings)
        *err_ << "mintgate: reload: warning: " << w << "\n";
      for (const std::string& line : build.schedule_overlay) {
        *out_ << "mintgate: reload: schedule overlay " << build.schedule_overlay_file << ": "
              << line << "\n";
      }
      for (const std::string& key : build.restart_needed) {
        *out_ << "mintgate: reload: " << key << " changed; restart to apply\n";
      }
      *out_ << "mintgate: reload: "
            << (build.mint_kept ? "CA profiles and [mint] unchanged: certificate cache kept"
                                : "CA profiles or [mint] changed: new certificate cache")
            << "\n";
      Apply(build.runtime);
      outcome.ok = true;
      outcome.http_status = 200;
      outcome.file = config_path_;
      outcome.rules = build.rule_count;
      outcome.ca_profiles = build.ca_profiles;
      outcome.mint_kept = build.mint_kept;
      outcome.restart_needed = std::move(build.restart_needed);
      outcome.message = "configuration reloaded from " + config_path_ + " (" +
                        std::to_string(build.rule_count) + " rules, " +
                        std::to_string(build.ca_profiles) + " CA profiles)";
      *out_ << "mintgate: " << outcome.message << std::endl;
    }
  }
  if (outcome.ok) {
    ++reload_stats_.ok;
    reload_stats_.last_success = std::time(nullptr);
    reload_stats_.last_ok = true;
  } else {
    ++reload_stats_.rejected;
    reload_stats_.last_ok = false;
    for (const std::string& e : outcome.errors) *err_ << "mintgate: reload rejected: " << e << "\n";
    *err_ << std::flush;
  }
  NotifyReloaded();
  return outcome;
}

// Connections already open keep the runtime they started with; new ones get this one.
void Gateway::Apply(RuntimePtr runtime) {
  runtime_ = std::move(runtime);
  for (auto& w : workers_) w->SetRuntime(runtime_);
  admin_->SetRuntime(runtime_);
}

}  // namespace mintgate::proxy
