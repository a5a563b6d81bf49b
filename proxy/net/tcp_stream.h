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
#include "proxy/net/local_counter.h"

namespace mintgate::proxy::net {

// A byte stream as the data plane uses it: a TCP connection in the gateway (TcpStream), an
// in-memory pipe in unit tests. Its events go to a Delegate.
class Stream {
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

  virtual ~Stream() = default;
  // Connects to `address`; `done` gets 0 or a uv error (never after Close()).
  virtual int Connect(const sockaddr* address, std::function<void(int)> done) = 0;
  virtual void SetNoDelay() = 0;
  virtual void SetKeepAlive(std::uint64_t idle_ms) = 0;  // 0: off
  // The delegate that reads and is told of writes (a pooled connection changes hands).
  virtual void set_delegate(Delegate* delegate) = 0;
  virtual void StartReading() = 0;
  virtual void StopReading() = 0;
  virtual bool reading() const = 0;
  // Writes `data` in order after what is queued. False when the connection is gone (EPIPE,
  // ECONNRESET and the like): the caller closes.
  virtual bool Write(std::string data) = 0;
  // Sends FIN once the queued writes are out. False if that cannot be done.
  virtual bool Shutdown() = 0;
  virtual void Close() = 0;  // idempotent; nothing reaches the delegate afterwards
  virtual bool closed() const = 0;
  virtual std::size_t queued_bytes() const = 0;  // written, not yet in the socket
  virtual std::size_t pending_writes() const = 0;
  virtual std::uint64_t bytes_read() const = 0;
  virtual std::uint64_t bytes_written() const = 0;  // accepted by Write
  // Where this stream's bytes are also added (the worker's metrics); null: nowhere. Only from
  // the thread that owns `tally`.
  void set_tally(ByteTally* tally) { tally_ = tally; }
  // "203.0.113.9" / "2001:db8::1", or "" (closed, or the socket said no).
  virtual std::string PeerAddress() const = 0;
  // The local address and port the connection arrived at.
  virtual std::string LocalAddress(std::uint16_t* port) const = 0;

 protected:
  ByteTally* tally_ = nullptr;
};

class TcpStream final : public Stream {
 public:
  TcpStream(uv_loop_t* loop, Delegate* delegate);
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  // Takes the pending connection of `server` (a uv error code, 0 on success). On failure the
  // stream is closed.
  int Accept(uv_stream_t* server);
  int Connect(const sockaddr* address, std::function<void(int)> done) override;
  void SetNoDelay() override;
  void SetKeepAlive(std::uint64_t idle_ms) override;
  void set_delegate(Delegate* delegate) override { delegate_ = delegate; }
  void StartReading() override;
  void StopReading() override;
  bool reading() const override { return reading_; }
  bool Write(std::string data) override;
  bool Shutdown() override;
  void Close() override;
  bool closed() const override { return !tcp_; }
  std::size_t queued_bytes() const override { return queued_bytes_; }
  std::size_t pending_writes() const override { return pending_writes_; }
  std::uint64_t bytes_read() const override { return bytes_read_; }
  std::uint64_t bytes_written() const override { return bytes_written_; }
  std::string PeerAddress() const override;
  std::string LocalAddress(std::uint16_t* port) const override;

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
