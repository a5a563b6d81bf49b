// One worker thread: its own libuv loop, its own SO_REUSEPORT listeners on every configured
// address (the kernel spreads connections over workers), its own resolver, and the sessions
// it accepted. Nothing here is shared with other workers except the immutable Runtime, which a
// reload replaces (SetRuntime).
#pragma once

#include <uv.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/dns/resolver.h"
#include "proxy/net/clock.h"
#include "proxy/net/listener.h"
#include "proxy/runtime/runtime.h"
#include "proxy/session/session_context.h"
#include "proxy/upstream/upstream_pool.h"
#include "tls/tls_contexts.h"

namespace mintgate::proxy {

class Session;

class Worker final : public SessionContext {
 public:
  Worker(int index, RuntimePtr runtime);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread and binds the listeners. Returns "" on success, else why it failed
  // (e.g. "127.0.0.1:3128: address already in use").
  std::string Start();
  // Thread-safe: stop accepting, let sessions finish for up to `drain`, then close the rest
  // and end the loop. Join() waits for the thread.
  void Stop(std::chrono::milliseconds drain);
  void Join();
  // Called on the worker's thread once its loop has ended (set before Start).
  void set_on_stopped(std::function<void()> fn) { on_stopped_ = std::move(fn); }

  uv_loop_t* loop() { return &loop_; }
  net::Clock& clock() override { return clock_; }
  HostResolver& resolver() override { return *resolver_; }
  const Runtime& runtime() const { return *runtime_; }
  const RuntimePtr& runtime_ptr() const override { return runtime_; }
  bool stopping() const override { return stopping_; }
  int index() const { return index_; }

  // Thread-safe: runs `fn` on this worker's loop soon (e.g. a leaf minted on the pool).
  void Post(std::function<void()> fn) override;
  void Defer(std::function<void()> fn) override;
  // Thread-safe (a reload): connections accepted from now on use `runtime`; those already open
  // keep the one they started with. A changed inspection.extra_trust (the list, or a file's
  // size or mtime) rebuilds the TLS contexts; if they fail to load the previous ones stay.
  void SetRuntime(RuntimePtr runtime);
  // The live session with this id, or nullptr once it has closed: what a posted callback
  // uses instead of a pointer that may dangle.
  Session* FindSession(std::uint64_t id) override;
  std::uint64_t NextSessionId() override { return ++last_session_id_; }
  tls::TlsContexts& tls() override { return *tls_; }
  UpstreamPool& pool() override { return *pool_; }
  WorkerMetrics& metrics() override { return metrics_; }
  // Thread-safe: read by the admin listener's /metrics.
  const WorkerMetrics& metrics() const { return metrics_; }

  // Called by a session once all its handles are closed; the session is destroyed later on
  // this loop, never inside its own callback.
  void SessionClosed(Session* session) override;
  // Called after a session queued an access log line: the lines queued within the next
  // kLogFlushMs go out in one write (not one per request, which cost a busy worker a
  // syscall per exchange). Nothing is armed while no line is waiting.
  void LogQueued() override;
  uv_buf_t ReadBuffer() override {
    return uv_buf_init(read_buffer_->data(), static_cast<unsigned>(read_buffer_->size()));
  }
  static constexpr std::uint64_t kLogFlushMs = 20;

 private:
  void Run(std::promise<std::string>& started);
  std::string Listen();
  void OnConnection(uv_stream_t* server);
  friend class WorkerTest;  // drives OnConnection with a listener of its own
  void ApplyRuntime(RuntimePtr runtime);
  void BeginStop();
  void FinishStop();
  void ReapClosed();

  int index_;
  RuntimePtr runtime_;
  WorkerMetrics metrics_;
  uv_loop_t loop_{};
  net::LoopClock clock_{&loop_};
  uv_async_t stop_async_{};
  uv_async_t reap_async_{};
  uv_async_t post_async_{};
  std::mutex post_mutex_;
  std::vector<std::function<void()>> posted_;
  bool posts_closed_ = false;
  std::unordered_map<std::uint64_t, Session*> by_id_;
  std::uint64_t last_session_id_ = 0;
  std::unique_ptr<tls::TlsContexts> tls_;
  std::string trust_stamp_;  // the extra trust files tls_ was made from (ApplyRuntime)
  uv_timer_t drain_timer_{};
  uv_timer_t log_flush_{};
  uv_timer_t defer_timer_{};  // runs deferred_ on the next loop iteration
  std::vector<std::function<void()>> deferred_;
  // Every session's reads, one at a time (deliberately not zeroed: only what a read wrote is
  // ever looked at).
  std::unique_ptr<std::array<char, 64 * 1024>> read_buffer_ =
      std::make_unique<std::array<char, 64 * 1024>>();
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<UpstreamPool> pool_;  // lives until the loop has ended
  std::vector<std::unique_ptr<net::Listener>> listeners_;
  std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
  std::vector<Session*> closed_;
  std::atomic<long long> drain_ms_{10000};
  bool stopping_ = false;
  bool finished_ = false;
  std::function<void()> on_stopped_;
  std::thread thread_;
};

}  // namespace mintgate::proxy
