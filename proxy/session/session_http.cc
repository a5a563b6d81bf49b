// The session's HTTP: admission, reading requests (pipelined, with their timeouts), plain
// proxy requests and the portal, relaying a request and its response (bodies, chunking, 1xx,
// Upgrade), and the end of an exchange (keep-alive or close).
#include <strings.h>

#include <algorithm>
#include <cctype>

#include "proxy/http/error_page.h"
#include "proxy/runtime/portal.h"
#include "proxy/session/session.h"
#include "proxy/session/session_context.h"
#include "proxy/session/session_leg_events.h"

namespace mintgate::proxy {
namespace {

// NTLM and Negotiate (Kerberos/SPNEGO) authenticate a connection, not a request: an
// Authorization or WWW-Authenticate value in one of those schemes (a challenge may list
// several, comma-separated).
bool IsConnectionAuth(std::string_view value) {
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = value.find(',', start);
    std::string_view item =
        value.substr(start, comma == std::string_view::npos ? comma : comma - start);
    item.remove_prefix(std::min(item.find_first_not_of(' '), item.size()));
    const std::string_view scheme = item.substr(0, item.find(' '));
    if ((scheme.size() == 4 && strncasecmp(scheme.data(), "NTLM", 4) == 0) ||
        (scheme.size() == 9 && strncasecmp(scheme.data(), "Negotiate", 9) == 0)) {
      return true;
    }
    if (comma == std::string_view::npos) return false;
    start = comma + 1;
  }
}

}  // namespace

// The final response's head: what it tells the session, and whether the client's connection
// stays open after it.
bool Session::OnResponseHead(const HttpHead& head, bool close_delimited) {
  record_.status = head.status;
  if (!first_byte_timed_) {
    first_byte_timed_ = true;
    metrics().time_to_first_byte.ObserveUs(MonotonicUs() - record_start_us_);
  }
  if (!head.keep_alive) origin_.reusable = false;
  if (head.status == 401) {
    for (const HttpHeader& h : head.headers) {
      if (strcasecmp(h.name.c_str(), "WWW-Authenticate") == 0 && IsConnectionAuth(h.value)) {
        origin_.pinned = true;
      }
    }
  }
  // A body that ends with the connection can only be passed on the same way.
  if (close_delimited) keep_client_alive_ = false;
  return keep_client_alive_;
}

void Session::OnSwitch(bool asked) {
  record_.status = 101;
  if (!asked) {
    origin_.reusable = false;
    Close();  // switching protocols nobody asked for: nothing sane can follow
  }
}

// Counts this connection against server.max_connections and max_connections_per_client;
// beyond them it gets a 503 at once and is closed without reading anything.
bool Session::Admit() {
  const ServerConfig& server = runtime().config.server;
  const ConnectionLimiter::Verdict verdict = runtime().connections->Admit(
      *client_ip_, server.max_connections, server.max_connections_per_client);
  if (verdict == ConnectionLimiter::Verdict::kAdmitted) {
    admitted_ = true;
    return true;
  }
  metrics()
      .refused[static_cast<std::size_t>(verdict == ConnectionLimiter::Verdict::kTooMany
                                            ? Refusal::kMaxConnections
                                            : Refusal::kMaxConnectionsPerClient)]
      .Add();
  const std::string why = verdict == ConnectionLimiter::Verdict::kTooMany
                              ? "the gateway is at server.max_connections (" +
                                    std::to_string(server.max_connections) + ")"
                              : "this client is at server.max_connections_per_client (" +
                                    std::to_string(server.max_connections_per_client) + ")";
  // One try: a refused client gets no buffer. (Written, the answer is in the socket before
  // the close; queued, the close cancels it.)
  client_.stream->Write(ErrorResponse(503, why, true));
  BeginRecord("-", "-");
  record_.status = 503;
  record_.note = why;
  Close();
  return false;
}

void Session::ReadRequest() {
  // Between requests a connection keeps no more than a small buffer: what a large read left
  // behind is given back (10,000 idle keep-alive clients must not hold 10,000 of them).
  if (client_.in.empty() && client_.in.capacity() > 1024) std::string().swap(client_.in);
  head_timer_armed_ = false;
  request_.Next();
  response_.Reset();
  if (!decrypting_) url_ = HttpUrl{};  // decrypted requests all go to the CONNECT's origin
  Enter(Phase::kReadRequest,
        client_.in.empty() ? timeouts().client_idle_ms : timeouts().request_head_ms);
  if (!client_.in.empty()) ProcessClientInput();
}

// Between requests (or after a partial head) the client closed.
void Session::ClientEndBetweenRequests() {
  if (client_.in.empty() && !request_.in_message()) {
    Close();  // the client is done
  } else {
    ClientEndInExchange();
  }
}

// client_idle between requests, request_head from a head's first byte.
void Session::RequestHeadTimeout() {
  if (client_.in.empty() && !request_.in_message()) {
    Close();  // an idle keep-alive connection: nothing to answer
    return;
  }
  Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
        "the request head did not arrive within " + Seconds(timeouts().request_head_ms), 408});
}

void Session::ProcessClientInput() {
  while (!client_.in.empty() && !request_.paused() && !Ending()) {
    HttpParser::FeedResult r = request_.Feed(client_.in);
    if (r.error) {
      if (Ending()) return;
      Fail({net::ErrorSource::kDownstream, net::ErrorKind::kMalformed, r.error->reason,
            r.error->status});
      return;
    }
    if (r.consumed == 0 && !r.paused) break;
  }
  if (phase_ == Phase::kPortalBody && request_.complete()) {
    HandleLoginForm();
    return;
  }
  if (phase_ == Phase::kPeek && !client_.in.empty()) {
    // A CONNECT answered at once (a pooled origin connection): what followed its head is
    // the ClientHello.
    PeekClientHello();
    return;
  }
  // The 10 s for a head run from its first byte, once: trickling bytes do not extend them.
  if (phase_ == Phase::kReadRequest && !head_timer_armed_ &&
      (!client_.in.empty() || request_.in_message())) {
    head_timer_armed_ = true;
    ArmTimeout(timeouts().request_head_ms);
  }
  UpdateReading();
}

void Session::OnRequestHead(HttpHead& head) {
  timer_->Stop();
  BeginRecord(head.method, head.target);
  keep_client_alive_ = head.keep_alive && !draining_;
  if (runtime().auth && !decrypting_) {
    // The portal (the CAs to install, the PAC file) answers whoever asks.
    if (head.method != "CONNECT") {
      std::optional<HttpUrl> url = ParseAbsoluteHttpUrl(head.target, nullptr);
      if (ServePortal(head, url)) return;
    } else if (auto authority = ParseAuthority(head.target);
               authority && IsPortalHost(authority->first)) {
      RouteRequest();  // its login page is how an unidentified user becomes known
      return;
    }
    Authenticate();
    return;
  }
  RecordIdentity();
  RouteRequest();
}

void Session::RouteRequest() {
  HttpHead& head = request_.head();
  if (portal_tls_ && decrypting_) {
    ServePortalTls();
    return;
  }
  if (login_required_ && decrypting_) {
    RedirectToLogin();
    return;
  }
  if (head.method == "CONNECT") {
    if (decrypting_) {
      // A tunnel inside the decrypted connection would carry bytes no rule has seen.
      Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
            "CONNECT inside a decrypted connection is not allowed", 400});
      return;
    }
    OnConnectHead(head);
    return;
  }
  if (decrypting_) {
    // Inside the decrypted connection: origin-form targets for the CONNECT's origin.
    if (head.target.empty() || head.target.front() != '/') {
      Fail({net::ErrorSource::kDownstream, net::ErrorKind::kMalformed,
            "expected an origin-form request target inside the TLS connection", 400});
      return;
    }
    url_.path = head.target;
    record_.url = "https://" + tls_host_ +
                  (url_.port == 443 ? std::string() : ":" + std::to_string(url_.port)) +
                  head.target;
    record_.action = "decrypt";
    record_.ca = untrusted_leaf_ ? "untrusted" : profile_;
    record_.upstream_verify = origin_.verified ? "ok" : origin_.problem;
    if (origin_.open && origin_.reusable) {
      record_.upstream = origin_.conn->peer;
      SendRequestUpstream();
    } else if (ReleaseUpstream(false), origin_.verified && TakePooledUpstream(UpstreamPool::TlsKey(
                                                               url_.host, url_.port, tls_host_))) {
      SendRequestUpstream();
    } else {
      // The origin closed the connection this client used: a fresh one, verified again.
      ResolveUpstream(AfterConnect::kDecryptTls);
    }
    return;
  }
  std::string url_error;
  std::optional<HttpUrl> url = ParseAbsoluteHttpUrl(head.target, &url_error);
  if (ServePortal(head, url)) return;
  if (!url) {
    const bool absolute =
        head.target.size() > 7 && strncasecmp(head.target.c_str(), "http://", 7) == 0;
    Fail({net::ErrorSource::kDownstream, net::ErrorKind::kMalformed,
          absolute && !url_error.empty()
              ? url_error
              : "this is a proxy: requests must use an absolute http:// URL",
          400});
    return;
  }
  url_ = *url;
  if (std::optional<std::string> why = runtime().destinations->CheckHttpPort(url_.port)) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused, *why, 403});
    return;
  }
  const rules::Decision decision = DecideOn(url_.host);
  record_.rule = decision.rule;
  record_.action = decision.action == rules::Action::kBlock ? "block" : "http";
  if (decision.action == rules::Action::kBlock) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
          "blocked by rule \"" + decision.rule + "\"", 403});
    return;
  }
  const std::string key = UpstreamPool::HttpKey(url_.host, url_.port);
  if (origin_.open && origin_.idle) {
    // A connection pinned to this client (connection-oriented authentication) serves its
    // requests to the same origin; for another origin it is closed, never shared.
    if (origin_.conn->key == key) {
      record_.upstream = origin_.conn->peer;
      SendRequestUpstream();
      return;
    }
    ReleaseUpstream(false);
  }
  if (TakePooledUpstream(key)) {
    SendRequestUpstream();
    return;
  }
  ResolveUpstream(AfterConnect::kRequest);
}

// The client portal (CA downloads, /proxy.pac) answers its reserved host name and requests
// sent straight to the proxy's own address; it never proxies, and closes after answering.
bool Session::ServePortal(const HttpHead& head, const std::optional<HttpUrl>& url) {
  const std::shared_ptr<const Portal>& portal = runtime().portal;
  if (!portal) return false;
  std::string host;
  std::uint16_t port = 80;
  std::string path;
  if (url) {
    host = url->host;
    port = url->port;
    path = url->path;
  } else if (!head.target.empty() && head.target.front() == '/') {
    path = head.target;
    for (const HttpHeader& h : head.headers) {
      if (h.name.size() != 4 || strncasecmp(h.name.c_str(), "host", 4) != 0) continue;
      const std::string value = h.value.find(':') != std::string::npos &&
                                        (h.value.front() != '[' || h.value.back() != ']')
                                    ? h.value
                                    : h.value + ":80";
      if (auto authority = ParseAuthority(value)) {
        host = authority->first;
        port = authority->second;
      }
    }
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (host.empty()) {
      host = local_address_;  // HTTP/1.0 without Host, sent to the proxy itself
      port = local_port_;
    }
  } else {
    return false;
  }
  const std::uint16_t balancer_port = balancer_ip_ ? local_port_ : 0;
  if (!portal->Serves(host, port, local_address_, balancer_port)) return false;
  const PortalResponse response = portal->Handle(head.method, path, local_address_, balancer_port);
  record_.action = "portal";
  record_.status = response.status;
  keep_client_alive_ = false;
  Write(Leg::kClient, SerializePortalResponse(response, head.method == "HEAD", true));
  LogExchange();
  CloseWhenFlushed();
  return true;
}

// Sends the current request's head (and any body already read) to the origin.
void Session::SendRequestUpstream() {
  Touch();
  Enter(Phase::kRelay, timeouts().origin_first_byte_ms);
  origin_.idle = false;
  const HttpHead& request = request_.head();
  if (const HttpHeader* auth = request.Find("Authorization");
      auth != nullptr && IsConnectionAuth(auth->value)) {
    origin_.pinned = true;
  }
  response_.Begin(request.method == "HEAD", request.upgrade);
  const std::string& name = decrypting_ ? tls_host_ : url_.host;
  std::string host = name.find(':') != std::string::npos ? "[" + name + "]" : name;
  const std::uint16_t default_port = decrypting_ ? 443 : 80;
  if (url_.port != default_port) host += ":" + std::to_string(url_.port);
  request_.SendHead(url_.path, host);
  UpdateReading();
}

// The origin's bytes (plaintext on a decrypted leg) while a response is relayed.
void Session::OnResponseBytes(const char* data, std::size_t size) {
  if (!response_.active()) return;
  std::size_t offset = 0;
  while (offset < size && phase_ == Phase::kRelay) {
    HttpParser::FeedResult r = response_.Feed(data + offset, size - offset);
    offset += r.consumed;
    if (r.error) {
      Fail({net::ErrorSource::kUpstream, net::ErrorKind::kMalformed,
            "invalid response from " + url_.host + ": " + r.error->reason,
            response_.started() ? 0 : 502});
      return;
    }
    if (r.paused && response_.upgrading()) {
      BeginUpgradedRelay(data + offset, size - offset);
      return;
    }
    if (r.paused) {
      if (response_.complete()) {
        if (offset < size) origin_.reusable = false;  // bytes after the response: not clean
        FinishExchange();
        return;
      }
      response_.Resume();  // after an interim 1xx response
      continue;
    }
    if (r.consumed == 0) break;
  }
}

// The origin closed while a response was relayed: the end of a close-delimited body, a
// stale pooled connection (retried once), or a response that will never come whole.
void Session::OriginEndInRelay() {
  if (!response_.active()) return;
  origin_.reusable = false;
  origin_.conn->stream->StopReading();
  std::optional<HttpError> error = response_.FeedEof();
  if (!response_.complete() && RetryStaleUpstream()) return;
  if (response_.complete()) {
    FinishExchange();
  } else if (!response_.started()) {
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kClosed,
          url_.host + " closed the connection without answering" +
              (error ? ": " + error->reason : std::string()),
          502});
  } else {
    // A response cut short cannot be repaired; the client sees the close.
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kClosed,
          url_.host + " closed the connection mid-response" +
              (error ? ": " + error->reason : std::string()),
          0});
  }
}

void Session::RelayTimeout() {
  const std::uint64_t limit =
      response_.started() ? timeouts().origin_idle_ms : timeouts().origin_first_byte_ms;
  if (StillActive(limit)) return;
  if (!response_.started()) {
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kTimeout,
          url_.host + " did not answer within " + Seconds(limit) + " (timeouts.origin_first_byte)",
          504});
  } else {
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kTimeout,
          "the origin sent nothing for " + Seconds(limit) + " mid-response (timeouts.origin_idle)",
          0});
  }
}

void Session::FinishExchange() {
  timer_->Stop();
  LogExchange();
  if (!request_.complete()) {
    // The origin answered before the request body ended (e.g. an error): the rest of the
    // body cannot be told apart from a next request, so this connection ends here.
    keep_client_alive_ = false;
  }
  const bool clean = origin_.reusable && request_.complete() && response_.complete() &&
                     !response_.close_delimited() && PendingWrites(Leg::kUpstream) == 0 &&
                     (!decrypting_ || origin_.verified);
  if ((decrypting_ || origin_.pinned) && clean) {
    // Kept for this client's next request; a decrypted one is pooled when the client leaves,
    // a pinned one closed.
    origin_.idle = true;
  } else {
    ReleaseUpstream(clean);  // plain HTTP: back to the pool for any client
  }
  origin_.retried = false;
  response_.End();
  if (!keep_client_alive_ || client_.ended || draining_) {
    CloseWhenFlushed();
    return;
  }
  request_.Resume();
  ReadRequest();
}

// After "101 Switching Protocols" (WebSocket and friends) both sides speak the new protocol:
// bytes are spliced like a tunnel, through the TLS engines when decrypting.
void Session::BeginUpgradedRelay(const char* rest, std::size_t size) {
  timer_->Stop();
  origin_.reusable = false;
  keep_client_alive_ = false;
  LogExchange();
  Touch();
  Enter(Phase::kTunnel, timeouts().tunnel_idle_ms);
  response_.End();
  request_.Hold();
  if (size > 0) response_.Splice(rest, size);
  std::string early;
  early.swap(client_.in);
  if (!early.empty()) request_.Splice(early.data(), early.size());
  UpdateReading();
}

}  // namespace mintgate::proxy
