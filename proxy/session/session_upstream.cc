// The session's origin side: resolving its name (every address judged), connecting (the
// last check before a socket), what the connection leads to, and giving it back to the pool
// or taking one from it.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "proxy/session/session.h"
#include "proxy/session/session_context.h"
#include "proxy/session/session_leg_events.h"

namespace mintgate::proxy {

void Session::ResolveUpstream(AfterConnect next) {
  after_connect_ = next;
  Enter(Phase::kResolve);  // a request body waits until the upstream is connected
  resolve_id_ = context_.resolver().Resolve(
      url_.host, [this](const ResolveResult& result) { OnResolved(result); });
}

void Session::OnResolved(const ResolveResult& result) {
  resolve_id_ = 0;
  if (phase_ != Phase::kResolve) return;
  if (!result.ok) {
    metrics().dns_failures.Add(result.reason.empty() ? "other" : result.reason);
    Fail({net::ErrorSource::kDns, net::ErrorKind::kUnavailable, result.error, 502});
    return;
  }
  // Every address is judged, not only the first: a name that also resolves to the gateway
  // itself or to a forbidden range is refused as a whole (DNS answers are attacker-chosen).
  addresses_.clear();
  for (const IpEndpointAddress& a : result.addresses) {
    if (std::optional<std::string> why = runtime().destinations->Check(a.ip(), url_.port)) {
      Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused, *why, 403});
      return;
    }
    if (balancer_ip_ && url_.port == local_port_ && a.ip() == *balancer_ip_) {
      Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
            "refusing to connect the gateway to its load balancer: " + local_address_ + ":" +
                std::to_string(local_port_) + " is where this client connected",
            403});
      return;
    }
    addresses_.push_back(a);
  }
  if (addresses_.empty()) {
    Fail({net::ErrorSource::kDns, net::ErrorKind::kUnavailable, "DNS: no address for " + url_.host,
          502});
    return;
  }
  ConnectUpstream();
}

void Session::ConnectUpstream() {
  const IpEndpointAddress& a = addresses_.front();
  // The last word before a socket is made, whatever path led here.
  if (std::optional<std::string> why = runtime().destinations->Check(a.ip(), url_.port)) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused, *why, 403});
    return;
  }
  sockaddr_storage ss{};
  if (a.family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(url_.port);
    std::memcpy(&v4->sin_addr, a.bytes.data(), 4);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(url_.port);
    std::memcpy(&v6->sin6_addr, a.bytes.data(), 16);
  }
  ReleaseUpstream(false);
  origin_.conn = context_.pool().Create(upstream_events_.get());
  origin_.conn->peer = a.ToString();
  origin_.conn->address = a;
  origin_.open = true;
  origin_.transport.Attach(origin_.conn->stream.get());
  origin_.was_pooled = false;
  Enter(Phase::kConnect, timeouts().connect_ms);
  int rc = origin_.conn->stream->Connect(reinterpret_cast<sockaddr*>(&ss),
                                         [this](int status) { OnUpstreamConnected(status); });
  if (rc != 0) {
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kRefused,
          "cannot connect to " + url_.host + ": " + uv_strerror(rc), 502});
    return;
  }
}

void Session::ConnectTimeout() {
  Fail({net::ErrorSource::kUpstream, net::ErrorKind::kTimeout,
        "connecting to " + url_.host + " timed out after " + Seconds(timeouts().connect_ms), 504});
}

void Session::OnUpstreamConnected(int status) {
  if (status == UV_ECANCELED || phase_ != Phase::kConnect) return;
  timer_->Stop();
  if (status != 0) {
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kRefused,
          "cannot connect to " + url_.host + ": " + uv_strerror(status), 502});
    return;
  }
  origin_.conn->stream->SetNoDelay();
  origin_.conn->stream->SetKeepAlive(timeouts().tcp_keepalive_ms);
  origin_.reusable = true;
  record_.upstream = origin_.conn->peer;
  origin_.conn->key = UpstreamPool::HttpKey(url_.host, url_.port);
  switch (after_connect_) {
    case AfterConnect::kConnectReply:
      AnswerConnect();
      if (!client_.in.empty()) PeekClientHello();
      return;
    case AfterConnect::kTunnel:
      Tunnel();
      return;
    case AfterConnect::kDecryptTls:
      StartUpstreamTls();
      return;
    case AfterConnect::kRequest:
      SendRequestUpstream();
      return;
    case AfterConnect::kBindSni:
      ResolveSni();
      return;
  }
}

// The origin closed the connection kept for this client between requests: its next request
// gets a fresh one.
void Session::OriginEndWhileIdle() {
  origin_.reusable = false;
  ReleaseUpstream(false);
}

void Session::ReleaseUpstream(bool reuse) {
  if (!origin_.open) return;
  FlushLeg(Leg::kUpstream);
  if (!origin_.open) return;  // the flush failed, and closing released it
  origin_.open = false;
  origin_.idle = false;
  UpstreamConn* conn = origin_.conn;
  conn->stream->StopReading();
  if (origin_.transport.tls && origin_.verified && origin_.transport.tls->handshake_done()) {
    context_.pool().SaveSession(TlsSessionKey(conn->peer), origin_.transport.tls->ssl());
  }
  // A connection that carried NTLM or Negotiate authentication is authenticated as this
  // client's user: it dies with this client's connection, never reaching another (Squid pins
  // the same way).
  reuse = reuse && !origin_.pinned && PendingWrites(Leg::kUpstream) == 0 && !context_.stopping();
  origin_.conn = nullptr;
  origin_.transport.Attach(nullptr);
  origin_.pinned = false;
  if (reuse) {
    conn->tls = std::move(origin_.transport.tls);
    origin_.transport.tls.reset();
    ++conn->exchanges;
    context_.pool().Put(conn);
    return;
  }
  origin_.transport.tls.reset();
  UpstreamPool::Close(conn);
}

bool Session::TakePooledUpstream(const std::string& key) {
  UpstreamConn* conn = context_.pool().Take(key, upstream_events_.get());
  if (conn == nullptr) return false;
  // Pooled under an earlier configuration, perhaps: judged again under this connection's.
  if (runtime().destinations->Check(conn->address.ip(), url_.port)) {
    UpstreamPool::Close(conn);
    return false;
  }
  origin_.conn = conn;
  origin_.open = true;
  origin_.transport.Attach(origin_.conn->stream.get());
  origin_.was_pooled = true;
  origin_.reusable = true;
  origin_.transport.tls = std::move(conn->tls);
  conn->tls.reset();
  record_.upstream = conn->peer;
  return true;
}

// A pooled connection the origin had already given up on fails before any answer: a request
// without a body is sent again, once, on a fresh connection.
bool Session::RetryStaleUpstream() {
  const HttpHead& request = request_.head();
  if (!origin_.was_pooled || origin_.retried || response_.started() || !request_.complete() ||
      request.chunked || request.content_length.value_or(0) != 0) {
    return false;
  }
  origin_.retried = true;
  ReleaseUpstream(false);
  request_.Hold();
  response_.Reset();
  ResolveUpstream(decrypting_ ? AfterConnect::kDecryptTls : AfterConnect::kRequest);
  return true;
}

}  // namespace mintgate::proxy
