#include "proxy/net/tcp_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <memory>

namespace mintgate::proxy::net {

struct TcpStream::WriteRequest {
  uv_write_t req{};
  std::string data;
};

std::string SocketAddressText(const sockaddr_storage& address, std::uint16_t* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    if (port != nullptr) *port = ntohs(v4->sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    if (port != nullptr) *port = ntohs(v6->sin6_port);
  }
  return text;
}

TcpStream::TcpStream(uv_loop_t* loop, Delegate* delegate)
    : tcp_(Handle<uv_tcp_t>::Make(loop, &uv_tcp_init)), delegate_(delegate) {
  if (tcp_) tcp_->data = this;
}

int TcpStream::Accept(uv_stream_t* server) {
  if (!tcp_) return UV_EBADF;
  const int rc = uv_accept(server, tcp_.stream());
  if (rc != 0) Close();
  return rc;
}

int TcpStream::Connect(const sockaddr* address, std::function<void(int)> done) {
  if (!tcp_) return UV_EBADF;
  struct ConnectRequest {
    uv_connect_t req{};
    std::function<void(int)> done;
  };
  auto request = std::make_unique<ConnectRequest>();
  request->done = std::move(done);
  request->req.data = request.get();
  const int rc =
      uv_tcp_connect(&request->req, tcp_.get(), address, [](uv_connect_t* r, int status) {
        std::unique_ptr<ConnectRequest> finished(static_cast<ConnectRequest*>(r->data));
        if (r->handle->data == nullptr) return;  // closed meanwhile (status is UV_ECANCELED)
        finished->done(status);
      });
  if (rc == 0) request.release();  // freed in its callback
  return rc;
}

void TcpStream::SetNoDelay() {
  if (tcp_) uv_tcp_nodelay(tcp_.get(), 1);
}

void TcpStream::SetKeepAlive(std::uint64_t idle_ms) {
  if (!tcp_ || idle_ms == 0) return;
  uv_tcp_keepalive(tcp_.get(), 1,
                   static_cast<unsigned>(std::max<std::uint64_t>(idle_ms / 1000, 1)));
}

void TcpStream::StartReading() {
  if (!tcp_ || reading_) return;
  reading_ = true;
  uv_read_start(
      tcp_.stream(),
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        *buf = static_cast<TcpStream*>(h->data)->delegate_->ReadBuffer();
      },
      [](uv_stream_t* st, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<TcpStream*>(st->data);
        if (nread == 0) return;  // EAGAIN: nothing to say
        if (nread > 0) {
          self->bytes_read_ += static_cast<std::uint64_t>(nread);
          if (self->tally_ != nullptr) self->tally_->read.Add(static_cast<std::uint64_t>(nread));
        }
        self->delegate_->OnRead(nread, buf->base);
      });
}

void TcpStream::StopReading() {
  if (!tcp_ || !reading_) return;
  reading_ = false;
  uv_read_stop(tcp_.stream());
}

bool TcpStream::Write(std::string data) {
  if (data.empty()) return true;
  if (!tcp_) return false;
  // Straight into the socket when nothing is queued on it (libuv refuses while a write or a
  // connect is pending, which keeps the order): no request to allocate, and no epoll_ctl,
  // which libuv issues after every completed uv_write when it drains the stream.
  bytes_written_ += data.size();
  if (tally_ != nullptr) tally_->written.Add(data.size());
  uv_buf_t now = uv_buf_init(data.data(), static_cast<unsigned>(data.size()));
  const int sent = uv_try_write(tcp_.stream(), &now, 1);
  if (sent > 0) {
    if (static_cast<std::size_t>(sent) == data.size()) return true;
    data.erase(0, static_cast<std::size_t>(sent));  // the socket buffer is full: queue the rest
  } else if (sent != UV_EAGAIN && sent != UV_ENOSYS) {
    return false;  // the peer is gone, as a failed uv_write would say
  }
  auto request = std::make_unique<WriteRequest>();
  request->data = std::move(data);
  request->req.data = request.get();
  uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
  const int rc = uv_write(&request->req, tcp_.stream(), &buf, 1, [](uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> done(static_cast<WriteRequest*>(req->data));
    auto* self = static_cast<TcpStream*>(req->handle->data);
    if (self == nullptr) return;  // closed: cancelled, nobody to tell
    self->queued_bytes_ -= done->data.size();
    self->pending_writes_ -= 1;
    self->delegate_->OnWriteDone(status);
  });
  if (rc != 0) return false;
  queued_bytes_ += request->data.size();
  pending_writes_ += 1;
  request.release();  // freed in its callback
  return true;
}

bool TcpStream::Shutdown() {
  if (!tcp_) return false;
  auto* req = new uv_shutdown_t;
  if (uv_shutdown(req, tcp_.stream(), [](uv_shutdown_t* r, int) { delete r; }) != 0) {
    delete req;
    return false;
  }
  return true;
}

void TcpStream::Close() {
  reading_ = false;
  tcp_.Close();
}

std::string TcpStream::PeerAddress() const {
  if (!tcp_) return "";
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(tcp_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return SocketAddressText(ss);
}

std::string TcpStream::LocalAddress(std::uint16_t* port) const {
  if (!tcp_) return "";
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getsockname(tcp_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return SocketAddressText(ss, port);
}

}  // namespace mintgate::proxy::net
