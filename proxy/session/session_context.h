// What a session needs from the loop it runs on, and nothing more: the Worker in the gateway,
// a fake in unit tests (in-memory streams, a fake clock and resolver, no sockets).
#pragma once

#include <cstdint>
#include <functional>

#include "proxy/dns/resolver.h"
#include "proxy/net/clock.h"
#include "proxy/runtime/runtime.h"
#include "proxy/session/worker_metrics.h"
#include "proxy/upstream/upstream_pool.h"
#include "tls/tls_contexts.h"

namespace mintgate::proxy {

class Session;

class SessionContext {
 public:
  // The configuration a new connection starts under (a reload swaps it for later ones).
  virtual const RuntimePtr& runtime_ptr() const = 0;
  virtual std::uint64_t NextSessionId() = 0;
  virtual net::Clock& clock() = 0;
  virtual HostResolver& resolver() = 0;
  virtual UpstreamPool& pool() = 0;
  virtual tls::TlsContexts& tls() = 0;
  // Thread-safe: runs `fn` on this loop soon (a leaf minted on the pool).
  virtual void Post(std::function<void()> fn) = 0;
  // Runs `fn` on this loop after the callback in progress returns (never inside it): how a
  // completion that is ready at once (a cached leaf) stays asynchronous.
  virtual void Defer(std::function<void()> fn) = 0;
  // The live session with this id, or nullptr once it has closed.
  virtual Session* FindSession(std::uint64_t id) = 0;
  // The session has closed: it is destroyed later on this loop, never inside its callback.
  virtual void SessionClosed(Session* session) = 0;
  // An access-log line was queued (flushed within Worker::kLogFlushMs).
  virtual void LogQueued() = 0;
  // Where a read goes: one buffer for the whole loop, valid until the read's callback returns
  // (whatever it holds is consumed by then).
  virtual uv_buf_t ReadBuffer() = 0;
  // This loop's counters for /metrics (written only on this loop's thread).
  virtual WorkerMetrics& metrics() = 0;
  // The loop is stopping: nothing is given back to the upstream pool.
  virtual bool stopping() const = 0;

 protected:
  ~SessionContext() = default;
};

}  // namespace mintgate::proxy
