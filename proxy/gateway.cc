#include "proxy/gateway.h"

#include <uv.h>

#include <csignal>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/admin_server.h"
#include "proxy/worker.h"

namespace mintgate::proxy {
namespace {

struct SignalState {
  std::vector<std::unique_ptr<Worker>>* workers;
  AdminServer* admin = nullptr;
  std::ostream* out;
  uv_signal_t term{};
  uv_signal_t interrupt{};
  bool stopping = false;
};

void OnStopSignal(uv_signal_t* handle, int signum) {
  auto* state = static_cast<SignalState*>(handle->data);
  if (state->stopping) return;
  state->stopping = true;
  *state->out << "mintgate: " << (signum == SIGTERM ? "SIGTERM" : "SIGINT")
              << ": no longer accepting; draining for up to " << Gateway::kDrain.count() << " s"
              << std::endl;
  for (auto& w : *state->workers) w->Stop(Gateway::kDrain);
  state->admin->Close();
  uv_close(reinterpret_cast<uv_handle_t*>(&state->term), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&state->interrupt), nullptr);
}

}  // namespace

int Gateway::Run(std::ostream& out, std::ostream& err) {
  // A peer that closes while we write must cost an error code, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  int count = runtime_->config.server.workers;
  if (count <= 0) count = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < count; ++i) {
    auto worker = std::make_unique<Worker>(i, runtime_);
    if (std::string error = worker->Start(); !error.empty()) {
      err << "mintgate: cannot listen on " << error << "\n";
      for (auto& w : workers) w->Stop(std::chrono::milliseconds(0));
      for (auto& w : workers) w->Join();
      return 3;
    }
    workers.push_back(std::move(worker));
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  AdminServer admin(&loop, runtime_, config_path_);
  if (std::string error = admin.Start(); !error.empty()) {
    err << "mintgate: cannot listen for admin requests on " << error << "\n";
    for (auto& w : workers) w->Stop(std::chrono::milliseconds(0));
    for (auto& w : workers) w->Join();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 3;
  }
  SignalState state;
  state.admin = &admin;
  state.workers = &workers;
  state.out = &out;
  state.term.data = &state;
  state.interrupt.data = &state;
  uv_signal_init(&loop, &state.term);
  uv_signal_init(&loop, &state.interrupt);
  uv_signal_start(&state.term, OnStopSignal, SIGTERM);
  uv_signal_start(&state.interrupt, OnStopSignal, SIGINT);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  for (auto& w : workers) w->Join();
  // Mints still running post to the stopped loops, which drop them; the pool must be gone
  // before the workers are.
  if (runtime_->mint) runtime_->mint->Shutdown();
  out << "mintgate: stopped" << std::endl;
  return 0;
}

}  // namespace mintgate::proxy
