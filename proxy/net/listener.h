// A listening TCP socket with SO_REUSEPORT (each worker has its own, so the kernel spreads
// connections over workers' accept queues; libuv 1.44 has no flag for it, hence the socket is
// made here and handed to uv_tcp_open). Each pending connection is handed to `on_connection`,
// which accepts it into a TcpStream.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "proxy/net/handle.h"

namespace mintgate::proxy::net {

class Listener {
 public:
  // Called for each connection waiting on `server` (pass it to TcpStream::Accept).
  using OnConnection = std::function<void(uv_stream_t* server)>;

  Listener(uv_loop_t* loop, OnConnection on_connection);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds `ip` (an IP literal) and `port` and listens. "" on success, else why not, as
  // "127.0.0.1:3128: Address already in use".
  std::string Listen(const std::string& ip, std::uint16_t port, int backlog = 1024);
  void Close() { tcp_.Close(); }
  uv_stream_t* stream() const { return tcp_.stream(); }

 private:
  Handle<uv_tcp_t> tcp_;
  OnConnection on_connection_;
};

}  // namespace mintgate::proxy::net
