#include "proxy/net/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mintgate::proxy::net {
namespace {

std::string Where(const std::string& ip, std::uint16_t port) {
  return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

}  // namespace

Listener::Listener(uv_loop_t* loop, OnConnection on_connection)
    : tcp_(Handle<uv_tcp_t>::Make(loop, &uv_tcp_init)), on_connection_(std::move(on_connection)) {
  if (tcp_) tcp_->data = this;
}

std::string Listener::Listen(const std::string& ip, std::uint16_t port, int backlog) {
  const std::string where = Where(ip, port);
  if (!tcp_) return where + ": cannot create a TCP handle";
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    return where + ": listen addresses must be IP addresses";
  }
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return where + ": socket: " + std::strerror(errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return where + ": " + error;
  }
  int rc = uv_tcp_open(tcp_.get(), fd);
  if (rc != 0) {
    ::close(fd);
    return where + ": " + uv_strerror(rc);
  }
  rc = uv_listen(tcp_.stream(), backlog, [](uv_stream_t* server, int status) {
    auto* self = static_cast<Listener*>(server->data);
    if (status < 0 || self == nullptr) return;  // EMFILE and friends: libuv retries later
    self->on_connection_(server);
  });
  if (rc != 0) return where + ": " + uv_strerror(rc);
  return "";
}

}  // namespace mintgate::proxy::net
