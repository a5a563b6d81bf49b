// Time for the data plane, behind a seam: the loop's clock and timers in the gateway, a fake
// one in unit tests that moves only when the test says so (every timeout is tested without
// sleeping; tests/unit/proxy/session/fakes.h).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "proxy/net/handle.h"

namespace mintgate::proxy::net {

// A one-shot timer. Start() re-arms it (the previous deadline is forgotten); the callback
// never runs after Stop() or destruction.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void Start(std::uint64_t ms, std::function<void()> fire) = 0;
  virtual void Stop() = 0;
  virtual bool active() const = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds on a monotonic clock (the loop's cached time for the real one).
  virtual std::uint64_t NowMs() const = 0;
  virtual std::unique_ptr<Timer> NewTimer() = 0;
};

// libuv's: uv_now and uv_timer_t.
class LoopClock final : public Clock {
 public:
  explicit LoopClock(uv_loop_t* loop) : loop_(loop) {}
  std::uint64_t NowMs() const override { return uv_now(loop_); }
  std::unique_ptr<Timer> NewTimer() override;

 private:
  uv_loop_t* loop_;
};

class LoopTimer final : public Timer {
 public:
  explicit LoopTimer(uv_loop_t* loop);
  void Start(std::uint64_t ms, std::function<void()> fire) override;
  void Stop() override;
  bool active() const override;

 private:
  Handle<uv_timer_t> timer_;
  std::function<void()> fire_;
};

}  // namespace mintgate::proxy::net
