// Ownership of libuv handles. libuv frees nothing: a handle's memory must stay valid until
// its close callback has run, which is a loop iteration after uv_close, and requests still
// queued on it (writes, a connect, a shutdown) complete with UV_ECANCELED in between. A
// Handle<T> owns a heap-allocated handle and gives it up on Close() (or destruction): the
// memory is freed in the close callback, whatever happened to the owner meanwhile, and
// `data` is cleared first, so a cancelled request finds no owner to call back.
#pragma once

#include <uv.h>

#include <utility>

namespace mintgate::proxy::net {

template <typename T>
class Handle {
 public:
  Handle() = default;
  // A new handle on `loop`, initialised by `init` (uv_tcp_init, uv_timer_init, ...); empty if
  // that failed.
  static Handle Make(uv_loop_t* loop, int (*init)(uv_loop_t*, T*)) {
    T* raw = new T{};
    if (init(loop, raw) != 0) {
      delete raw;
      return Handle();
    }
    return Handle(raw);
  }
  ~Handle() { Close(); }
  Handle(Handle&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      Close();
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  T* get() const { return raw_; }
  T* operator->() const { return raw_; }
  explicit operator bool() const { return raw_ != nullptr; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(raw_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(raw_); }

  // Closes the handle (no-op when empty): none of its callbacks reaches the owner after this.
  void Close() {
    if (raw_ == nullptr) return;
    auto* h = reinterpret_cast<uv_handle_t*>(std::exchange(raw_, nullptr));
    h->data = nullptr;
    uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
  }

 private:
  explicit Handle(T* raw) : raw_(raw) {}
  T* raw_ = nullptr;
};

}  // namespace mintgate::proxy::net
