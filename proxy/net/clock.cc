#include "proxy/net/clock.h"

namespace mintgate::proxy::net {

std::unique_ptr<Timer> LoopClock::NewTimer() { return std::make_unique<LoopTimer>(loop_); }

LoopTimer::LoopTimer(uv_loop_t* loop) : timer_(Handle<uv_timer_t>::Make(loop, &uv_timer_init)) {
  timer_->data = this;
}

void LoopTimer::Start(std::uint64_t ms, std::function<void()> fire) {
  fire_ = std::move(fire);
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<LoopTimer*>(t->data);
        if (self == nullptr) return;
        // The callback may re-arm this timer (replacing fire_) or destroy its owner: run a
        // moved-out copy.
        std::function<void()> due = std::move(self->fire_);
        self->fire_ = nullptr;
        due();
      },
      ms, 0);
}

void LoopTimer::Stop() {
  uv_timer_stop(timer_.get());
  fire_ = nullptr;
}

bool LoopTimer::active() const { return uv_is_active(timer_.handle()) != 0; }

}  // namespace mintgate::proxy::net
