// One TCP connection on a libuv loop: reading into the buffer its delegate gives, writing
// (straight into the socket when nothing is queued, else through an owned write request),
// half-closing, and counting bytes each way. The handle is a Handle<uv_tcp_t>: a stream can be
// destroyed at any time, even with writes in flight (they complete, cancelled, into nothing).
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "proxy/net/handle.h"

namespace mintgate::proxy::net {

class TcpStream {
 public:
  class Delegate {
   public:
    // The buffer the next read goes into; it must stay valid until OnRead.
    virtual uv_buf_t ReadBuffer() = 0;
    // `nread` bytes arrived in `data`; or the end: nread < 0 (UV_EOF, or an error).
    virtual void OnRead(ssize_t nread, const char* data) = 0;
    // A write that had to be queued completed (status < 0: failed; never UV_ECANCELED, which
    // only a closed stream sees, and then nobody is told).
    virtual void OnWriteDone(int status) = 0;

   protected:
    ~Delegate() = default;
  };

  TcpStream(uv_loop_t* loop, Delegate* delegate);
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  // Takes the pending connection of `server` (a uv error code, 0 on success). On failure the
  // stream is closed.
  int Accept(uv_stream_t* server);
  // Connects to `address`; `done` gets 0 or a uv error (never after Close()).
  int Connect(const sockaddr* address, std::function<void(int)> done);
  void SetNoDelay();
  void SetKeepAlive(std::uint64_t idle_ms);  // 0: off
  // The delegate that reads and is told of writes (a pooled connection changes hands).
  void set_delegate(Delegate* delegate) { delegate_ = delegate; }

  void StartReading();
  void StopReading();
  bool reading() const { return reading_; }

  // Writes `data` in order after what is queued. False when the connection is gone (EPIPE,
  // ECONNRESET and the like): the caller closes.
  bool Write(std::string data);
  // Sends FIN once the queued writes are out. False if that cannot be done.
  bool Shutdown();
  void Close();  // idempotent; nothing reaches the delegate afterwards
  bool closed() const { return !tcp_; }

  std::size_t queued_bytes() const { return queued_bytes_; }  // written, not yet in the socket
  std::size_t pending_writes() const { return pending_writes_; }
  std::uint64_t bytes_read() const { return bytes_read_; }
  std::uint64_t bytes_written() const { return bytes_written_; }  // accepted by Write

  // "203.0.113.9" / "2001:db8::1", or "" (closed, or the socket said no).
  std::string PeerAddress() const;
  // The local address and port the connection arrived at.
  std::string LocalAddress(std::uint16_t* port) const;

 private:
  struct WriteRequest;
  Handle<uv_tcp_t> tcp_;
  Delegate* delegate_;
  bool reading_ = false;
  std::size_t queued_bytes_ = 0;
  std::size_t pending_writes_ = 0;
  std::uint64_t bytes_read_ = 0;
  std::uint64_t bytes_written_ = 0;
};

// "192.0.2.1" or "2001:db8::1" for a sockaddr_in/_in6 (and its port), "" for anything else.
std::string SocketAddressText(const sockaddr_storage& address, std::uint16_t* port = nullptr);

}  // namespace mintgate::proxy::net
