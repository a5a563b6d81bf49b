#include "proxy/session/session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <iostream>

#include "proxy/http/error_page.h"
#include "proxy/runtime/portal.h"
#include "proxy/session/session_context.h"
#include "tls/client_hello_peek.h"

namespace mintgate::proxy {
namespace {

std::string HexChunkHeader(std::size_t size) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%zx\r\n", size);
  return std::string(buf, static_cast<std::size_t>(n));
}

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

// "10 s", "0.5 s": a timeout as the configuration wrote it.
std::string Seconds(std::uint64_t ms) {
  char buf[32];
  if (ms % 1000 == 0) {
    std::snprintf(buf, sizeof buf, "%llu s", static_cast<unsigned long long>(ms / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  }
  return buf;
}

// One leg's socket events, to the session's handlers for that leg.
class Session::LegEvents final : public net::TcpStream::Delegate {
 public:
  LegEvents(Session& s, Leg leg) : s_(s), leg_(leg) {}
  // Every read of the loop goes into the loop's one buffer: whatever a read delivers is
  // consumed (parsed, copied, sealed) before its callback returns, so a connection holds no
  // read buffer at all between reads.
  uv_buf_t ReadBuffer() override { return s_.context_.ReadBuffer(); }
  void OnRead(ssize_t nread, const char* data) override {
    if (leg_ == Leg::kUpstream) {
      s_.OnUpstreamRead(nread, data);
    } else if (s_.lingering_) {
      if (nread < 0) s_.Close();  // what a lingering client still sends is dropped
    } else {
      s_.OnClientRead(nread, data);
    }
  }
  void OnWriteDone(int status) override { s_.OnWritten(leg_, status); }

 private:
  Session& s_;
  Leg leg_;
};

// Holds the output of one read callback back until its end (see Corked).
class Session::CorkScope {
 public:
  explicit CorkScope(Session& s) : s_(s) { ++s_.cork_.depth; }
  ~CorkScope() {
    if (--s_.cork_.depth == 0) s_.FlushCorked();
  }
  CorkScope(const CorkScope&) = delete;
  CorkScope& operator=(const CorkScope&) = delete;

 private:
  Session& s_;
};

class Session::RequestSide : public HttpParser::Handler {
 public:
  explicit RequestSide(Session& s) : s_(s) {}
  void OnHead(HttpHead& head) override { s_.OnRequestHead(head); }
  void OnBody(const char* data, std::size_t size) override { s_.ForwardRequestBody(data, size); }
  void OnMessageComplete() override {
    s_.request_complete_ = true;
    if (s_.request_.chunked && s_.state_ != State::kClosing) {
      s_.ForwardRequestBody(nullptr, 0);  // the terminating chunk
    }
  }

 private:
  Session& s_;
};

class Session::ResponseSide : public HttpParser::Handler {
 public:
  explicit ResponseSide(Session& s) : s_(s) {}
  void OnHead(HttpHead& head) override {
    const bool interim = head.status >= 100 && head.status < 200 && head.status != 101;
    if (interim) {
      // 100 Continue and friends go to the client as they are; the final response follows.
      s_.Write(Leg::kClient, SerializeResponseHead(head, false, {}));
      return;
    }
    if (head.status == 101) {
      s_.response_started_ = true;
      s_.record_.status = 101;
      if (!s_.request_.upgrade) {
        s_.upstream_reusable_ = false;
        s_.Close();  // switching protocols nobody asked for: nothing sane can follow
        return;
      }
      // The protocol switch goes to the client as is; OnUpstreamBytes then splices.
      s_.upgrading_ = true;
      s_.Write(Leg::kClient, SerializeResponseHead(head, true, {}));
      return;
    }
    s_.response_started_ = true;
    s_.record_.status = head.status;
    if (!head.keep_alive) s_.upstream_reusable_ = false;
    if (head.status == 401) {
      for (const HttpHeader& h : head.headers) {
        if (strcasecmp(h.name.c_str(), "WWW-Authenticate") == 0 && IsConnectionAuth(h.value)) {
          s_.upstream_pinned_ = true;
        }
      }
    }
    const bool no_body = s_.request_.method == "HEAD" || head.status == 204 || head.status == 304;
    s_.response_chunked_ = head.chunked && !no_body;
    s_.response_close_delimited_ = !no_body && !head.chunked && !head.content_length;
    std::vector<HttpHeader> extra;
    if (s_.response_close_delimited_ || !s_.keep_client_alive_) {
      // A body that ends with the connection can only be passed on the same way.
      s_.keep_client_alive_ = false;
      extra.push_back({"Connection", "close"});
    }
    s_.Write(Leg::kClient, SerializeResponseHead(head, false, extra));
  }
  void OnBody(const char* data, std::size_t size) override { s_.ForwardResponseBody(data, size); }
  void OnMessageComplete() override {
    if (!s_.response_started_ || s_.upgrading_) return;  // 1xx: the final one follows
    if (s_.response_chunked_) s_.Write(Leg::kClient, "0\r\n\r\n");
    // Finished by OnUpstreamRead once the parser has returned: never tear it down from
    // inside its own callback.
    s_.response_complete_ = true;
  }

 private:
  Session& s_;
};

Session::Session(SessionContext& context, std::unique_ptr<net::Stream> client)
    : context_(context),
      runtime_(context.runtime_ptr()),
      id_(context.NextSessionId()),
      clock_(context.clock()),
      client_events_(std::make_unique<LegEvents>(*this, Leg::kClient)),
      upstream_events_(std::make_unique<LegEvents>(*this, Leg::kUpstream)),
      client_(std::move(client)),
      timer_(clock_.NewTimer()),
      request_side_(std::make_unique<RequestSide>(*this)),
      response_side_(std::make_unique<ResponseSide>(*this)) {
  client_->set_delegate(client_events_.get());
  client_leg_.Attach(client_.get());
}

Session::~Session() {
  if (admitted_) runtime().connections->Release(*client_ip_);
}

void Session::Start() {
  client_->SetNoDelay();
  // A client that vanished without a FIN (a laptop closed, a NAT entry dropped) is found.
  client_->SetKeepAlive(timeouts().tcp_keepalive_ms);
  client_address_ = client_->PeerAddress();
  local_address_ = client_->LocalAddress(&local_port_);
  client_ip_ = rules::IpAddress::Parse(client_address_);
  if (client_ip_ && runtime().connections && !Admit()) return;
  if (!client_ip_ || !runtime().ClientAllowed(*client_ip_)) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
          "client " + client_address_ + " is not allowed to use this proxy", 403});
    return;
  }
  NewRequestParser();
  ReadRequest();
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
  const std::string why = verdict == ConnectionLimiter::Verdict::kTooMany
                              ? "the gateway is at server.max_connections (" +
                                    std::to_string(server.max_connections) + ")"
                              : "this client is at server.max_connections_per_client (" +
                                    std::to_string(server.max_connections_per_client) + ")";
  // One try: a refused client gets no buffer. (Written, the answer is in the socket before
  // the close; queued, the close cancels it.)
  client_->Write(ErrorResponse(503, why, true));
  BeginRecord("-", "-");
  record_.status = 503;
  record_.note = why;
  Close();
  return false;
}

void Session::ReadRequest() {
  // Between requests a connection keeps no more than a small buffer: what a large read left
  // behind is given back (10,000 idle keep-alive clients must not hold 10,000 of them).
  if (client_in_.empty() && client_in_.capacity() > 1024) std::string().swap(client_in_);
  state_ = State::kReadRequest;
  head_timer_armed_ = false;
  request_ = HttpHead{};
  if (!decrypting_) url_ = HttpUrl{};  // decrypted requests all go to the CONNECT's origin
  request_complete_ = false;
  response_started_ = false;
  response_complete_ = false;
  response_chunked_ = false;
  response_close_delimited_ = false;
  upstream_backlog_.clear();
  StartTimer(client_in_.empty() ? timeouts().client_idle_ms : timeouts().request_head_ms, [this] {
    Session* s = this;
    if (s->state_ != State::kReadRequest) return;
    if (s->client_in_.empty() && !s->request_parser_->in_message()) {
      s->Close();  // an idle keep-alive connection: nothing to answer
    } else {
      s->Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
               "the request head did not arrive within " + Seconds(s->timeouts().request_head_ms),
               408});
    }
  });
  UpdateReading();
  if (!client_in_.empty()) ProcessClientInput();
}

void Session::ProcessClientInput() {
  while (!client_in_.empty() && !request_paused_ && state_ != State::kClosing) {
    HttpParser::FeedResult r = request_parser_->Feed(client_in_.data(), client_in_.size());
    client_in_.erase(0, r.consumed);
    if (r.error) {
      if (closing_ || state_ == State::kClosing) return;
      Fail({net::ErrorSource::kDownstream, net::ErrorKind::kMalformed, r.error->reason,
            r.error->status});
      return;
    }
    if (r.paused) request_paused_ = true;
    if (r.consumed == 0 && !r.paused) break;
  }
  if (state_ == State::kPeek && !client_in_.empty()) {
    // A CONNECT answered at once (a pooled origin connection): what followed its head is
    // the ClientHello.
    PeekClientHello();
    return;
  }
  // The 10 s for a head run from its first byte, once: trickling bytes do not extend them.
  if (state_ == State::kReadRequest && !head_timer_armed_ &&
      (!client_in_.empty() || request_parser_->in_message())) {
    head_timer_armed_ = true;
    StartTimer(timeouts().request_head_ms, [this] {
      Session* s = this;
      if (s->state_ == State::kReadRequest) {
        s->Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
                 "the request head did not arrive within " + Seconds(s->timeouts().request_head_ms),
                 408});
      }
    });
  }
  UpdateReading();
}

void Session::OnRequestHead(HttpHead& parsed) {
  timer_->Stop();
  request_ = std::move(parsed);  // the parser starts the next head afresh
  const HttpHead& head = request_;
  BeginRecord(head.method, head.target);
  keep_client_alive_ = head.keep_alive && !draining_;
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
    record_.upstream_verify = upstream_verified_ ? "ok" : upstream_problem_;
    if (upstream_open_ && upstream_reusable_) {
      record_.upstream = up_->peer;
      SendRequestUpstream();
    } else if (ReleaseUpstream(false),
               upstream_verified_ &&
                   TakePooledUpstream(UpstreamPool::TlsKey(url_.host, url_.port, tls_host_))) {
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
  rules::Target target;
  target.host = url_.host;
  target.port = url_.port;
  target.client = client_address_;
  const rules::Decision decision = runtime().rules->Decide(target, rules::Now());
  record_.rule = decision.rule;
  record_.action = decision.action == rules::Action::kBlock ? "block" : "http";
  if (decision.action == rules::Action::kBlock) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
          "blocked by rule \"" + decision.rule + "\"", 403});
    return;
  }
  const std::string key = UpstreamPool::HttpKey(url_.host, url_.port);
  if (upstream_open_ && upstream_idle_) {
    // A connection pinned to this client (connection-oriented authentication) serves its
    // requests to the same origin; for another origin it is closed, never shared.
    if (up_->key == key) {
      record_.upstream = up_->peer;
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
  if (!portal->Serves(host, port, local_address_)) return false;
  const PortalResponse response = portal->Handle(head.method, path, local_address_);
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
  state_ = State::kRelay;
  upstream_idle_ = false;
  if (const HttpHeader* auth = request_.Find("Authorization");
      auth != nullptr && IsConnectionAuth(auth->value)) {
    upstream_pinned_ = true;
  }
  response_parser_ = std::make_unique<HttpParser>(HttpParser::Kind::kResponse, *response_side_);
  response_parser_->SetNextResponseHasNoBody(request_.method == "HEAD");
  const std::string& name = decrypting_ ? tls_host_ : url_.host;
  std::string host = name.find(':') != std::string::npos ? "[" + name + "]" : name;
  const std::uint16_t default_port = decrypting_ ? 443 : 80;
  if (url_.port != default_port) host += ":" + std::to_string(url_.port);
  Write(Leg::kUpstream, SerializeRequestHead(request_, url_.path, host, request_.upgrade, {}));
  if (!upstream_backlog_.empty()) Write(Leg::kUpstream, std::move(upstream_backlog_));
  upstream_backlog_.clear();
  StartIdleTimer();
  UpdateReading();
}

void Session::OnResolved(const ResolveResult& result) {
  resolve_id_ = 0;
  if (state_ != State::kResolve) return;
  if (!result.ok) {
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
  state_ = State::kConnectUpstream;
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
  up_ = context_.pool().Create(upstream_events_.get());
  up_->peer = a.ToString();
  up_->address = a;
  upstream_open_ = true;
  origin_leg_.Attach(up_->stream.get());
  upstream_was_pooled_ = false;
  int rc = up_->stream->Connect(reinterpret_cast<sockaddr*>(&ss),
                                [this](int status) { OnUpstreamConnected(status); });
  if (rc != 0) {
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kRefused,
          "cannot connect to " + url_.host + ": " + uv_strerror(rc), 502});
    return;
  }
  StartTimer(timeouts().connect_ms, [this] {
    Session* s = this;
    if (s->state_ == State::kConnectUpstream) {
      s->Fail({net::ErrorSource::kUpstream, net::ErrorKind::kTimeout,
               "connecting to " + s->url_.host + " timed out after " +
                   Seconds(s->timeouts().connect_ms),
               504});
    }
  });
}

void Session::OnUpstreamConnected(int status) {
  if (status == UV_ECANCELED || state_ != State::kConnectUpstream) return;
  timer_->Stop();
  if (status != 0) {
    Fail({net::ErrorSource::kUpstream, net::ErrorKind::kRefused,
          "cannot connect to " + url_.host + ": " + uv_strerror(status), 502});
    return;
  }
  up_->stream->SetNoDelay();
  up_->stream->SetKeepAlive(timeouts().tcp_keepalive_ms);
  upstream_reusable_ = true;
  record_.upstream = up_->peer;
  up_->key = UpstreamPool::HttpKey(url_.host, url_.port);
  switch (after_connect_) {
    case AfterConnect::kConnectReply:
      AnswerConnect();
      if (!client_in_.empty()) PeekClientHello();
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

void Session::AnswerConnect() {
  state_ = State::kPeek;
  connect_answered_ = true;
  record_.status = 200;
  Write(Leg::kClient, "HTTP/1.1 200 Connection established\r\n\r\n");
  StartTimer(timeouts().tls_handshake_ms, [this] {
    Session* s = this;
    if (s->state_ == State::kPeek) {
      s->Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
               "no ClientHello within " + Seconds(s->timeouts().tls_handshake_ms), 0});
    }
  });
  UpdateReading();
}

void Session::ForwardRequestBody(const char* data, std::size_t size) {
  if (!request_.chunked && state_ == State::kRelay) {
    WriteBody(Leg::kUpstream, data, size);
    return;
  }
  std::string out;
  if (request_.chunked) {
    if (size == 0) {
      out = "0\r\n\r\n";
    } else {
      out = HexChunkHeader(size);
      out.append(data, size);
      out += "\r\n";
    }
  } else {
    out.assign(data, size);
  }
  if (state_ == State::kRelay) {
    Write(Leg::kUpstream, std::move(out));
  } else {
    upstream_backlog_ += out;
  }
}

void Session::ForwardResponseBody(const char* data, std::size_t size) {
  if (size == 0) return;
  if (response_chunked_) {
    std::string out = HexChunkHeader(size);
    out.append(data, size);
    out += "\r\n";
    Write(Leg::kClient, std::move(out));
  } else {
    WriteBody(Leg::kClient, data, size);
  }
}

void Session::FinishExchange() {
  timer_->Stop();
  LogExchange();
  if (!request_complete_) {
    // The origin answered before the request body ended (e.g. an error): the rest of the
    // body cannot be told apart from a next request, so this connection ends here.
    keep_client_alive_ = false;
  }
  const bool clean = upstream_reusable_ && request_complete_ && response_complete_ &&
                     !response_close_delimited_ && PendingWrites(Leg::kUpstream) == 0 &&
                     (!decrypting_ || upstream_verified_);
  if ((decrypting_ || upstream_pinned_) && clean) {
    // Kept for this client's next request; a decrypted one is pooled when the client leaves,
    // a pinned one closed.
    upstream_idle_ = true;
  } else {
    ReleaseUpstream(clean);  // plain HTTP: back to the pool for any client
  }
  upstream_retried_ = false;
  response_parser_.reset();
  if (!keep_client_alive_ || client_eof_ || draining_) {
    CloseWhenFlushed();
    return;
  }
  request_paused_ = false;
  request_parser_->Resume();
  ReadRequest();
}

void Session::ReleaseUpstream(bool reuse) {
  if (!upstream_open_) return;
  FlushLeg(Leg::kUpstream);
  if (!upstream_open_) return;  // the flush failed, and closing released it
  upstream_open_ = false;
  upstream_idle_ = false;
  UpstreamConn* conn = up_;
  conn->stream->StopReading();
  if (origin_leg_.tls && upstream_verified_ && origin_leg_.tls->handshake_done()) {
    context_.pool().SaveSession(TlsSessionKey(conn->peer), origin_leg_.tls->ssl());
  }
  // A connection that carried NTLM or Negotiate authentication is authenticated as this
  // client's user: it dies with this client's connection, never reaching another (Squid pins
  // the same way).
  reuse = reuse && !upstream_pinned_ && PendingWrites(Leg::kUpstream) == 0 && !context_.stopping();
  up_ = nullptr;
  origin_leg_.Attach(nullptr);
  upstream_pinned_ = false;
  if (reuse) {
    conn->tls = std::move(origin_leg_.tls);
    origin_leg_.tls.reset();
    ++conn->exchanges;
    context_.pool().Put(conn);
    return;
  }
  origin_leg_.tls.reset();
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
  up_ = conn;
  upstream_open_ = true;
  origin_leg_.Attach(up_->stream.get());
  upstream_was_pooled_ = true;
  upstream_reusable_ = true;
  origin_leg_.tls = std::move(conn->tls);
  conn->tls.reset();
  record_.upstream = conn->peer;
  return true;
}

// A pooled connection the origin had already given up on fails before any answer: a request
// without a body is sent again, once, on a fresh connection.
bool Session::RetryStaleUpstream() {
  if (!upstream_was_pooled_ || upstream_retried_ || response_started_ || !request_complete_ ||
      request_.chunked || request_.content_length.value_or(0) != 0) {
    return false;
  }
  upstream_retried_ = true;
  ReleaseUpstream(false);
  ResolveUpstream(decrypting_ ? AfterConnect::kDecryptTls : AfterConnect::kRequest);
  return true;
}

void Session::ResolveUpstream(AfterConnect next) {
  after_connect_ = next;
  state_ = State::kResolve;
  UpdateReading();  // a request body waits until the upstream is connected
  resolve_id_ = context_.resolver().Resolve(
      url_.host, [this](const ResolveResult& result) { OnResolved(result); });
}

void Session::OnClientRead(ssize_t nread, const char* data) {
  CorkScope cork(*this);
  Touch();
  if (nread < 0 && state_ == State::kTunnel) {
    // The client is done sending: pass the end on and keep relaying the other way.
    client_eof_ = true;
    client_->StopReading();
    FlushLeg(Leg::kUpstream);  // what the client sent before its end goes first
    if (!upstream_open_ || !up_->stream->Shutdown()) CloseWhenFlushed();
    return;
  }
  if (nread < 0) {
    client_eof_ = true;
    client_->StopReading();
    if (state_ == State::kReadRequest && client_in_.empty() &&
        (!request_parser_ || !request_parser_->in_message())) {
      Close();  // between requests: the client is done
    } else if (is_connect_ && (!client_leg_.tls || !client_leg_.tls->handshake_done()) &&
               state_ != State::kRelay && state_ != State::kReadRequest) {
      // Its ClientHello was read once the origin's handshake, the leaf or its own began.
      const bool hello_seen = state_ == State::kUpstreamHandshake || state_ == State::kLeaf ||
                              state_ == State::kClientHandshake;
      Fail({hello_seen ? net::ErrorSource::kClientTls : net::ErrorSource::kDownstream,
            net::ErrorKind::kClosed,
            hello_seen ? "the client closed the connection during the TLS handshake"
                       : "the client closed the connection before its ClientHello",
            0});
    } else if (state_ == State::kReadRequest || state_ == State::kResolve ||
               state_ == State::kConnectUpstream || !request_complete_) {
      Fail({net::ErrorSource::kDownstream, net::ErrorKind::kClosed,
            "the client closed the connection before the exchange ended", 0});
    }
    return;
  }
  const auto size = static_cast<std::size_t>(nread);
  if (client_leg_.tls) {
    client_leg_.tls->FeedCiphertext(data, size);
    if (state_ == State::kClientHandshake) {
      ClientHandshakeStep();
      return;
    }
    std::string plain = client_leg_.tls->ReadPlaintext();
    RawWrite(Leg::kClient, client_leg_.tls->TakeCiphertext());
    if (!plain.empty()) OnClientBytes(plain.data(), plain.size());
    if (client_leg_.tls && client_leg_.tls->closed() && !closing_) {
      if (!client_leg_.tls->error().empty()) {
        Fail({net::ErrorSource::kClientTls, net::ErrorKind::kMalformed,
              "client TLS: " + client_leg_.tls->error(), 0});
      } else if (state_ == State::kReadRequest || !request_complete_) {
        CloseWhenFlushed();
      } else {
        client_eof_ = true;
      }
    }
    return;
  }
  OnClientBytes(data, size);
}

void Session::OnClientBytes(const char* data, std::size_t size) {
  if (state_ == State::kTunnel) {
    Write(Leg::kUpstream, std::string(data, size));
    return;
  }
  client_in_.append(data, size);
  if (state_ == State::kPeek) {
    PeekClientHello();
    return;
  }
  ProcessClientInput();
}

// After "101 Switching Protocols" (WebSocket and friends) both sides speak the new protocol:
// bytes are spliced like a tunnel, through the TLS engines when decrypting.
void Session::BeginUpgradedRelay(const char* rest, std::size_t size) {
  timer_->Stop();
  upgrading_ = false;
  upstream_reusable_ = false;
  keep_client_alive_ = false;
  LogExchange();
  state_ = State::kTunnel;
  StartIdleTimer();
  response_parser_.reset();
  if (size > 0) Write(Leg::kClient, std::string(rest, size));
  std::string early;
  early.swap(client_in_);
  if (!early.empty()) Write(Leg::kUpstream, std::move(early));
  UpdateReading();
}

void Session::OnUpstreamRead(ssize_t nread, const char* data) {
  CorkScope cork(*this);
  Touch();
  if (state_ == State::kTunnel && (!origin_leg_.tls || nread < 0)) {
    if (nread < 0) {
      CloseWhenFlushed();  // the origin is done: flush what it sent, then close both
    } else if (nread > 0) {
      Write(Leg::kClient, std::string(data, static_cast<std::size_t>(nread)));
    }
    return;
  }
  if (nread > 0 && origin_leg_.tls) {
    origin_leg_.tls->FeedCiphertext(data, static_cast<std::size_t>(nread));
    if (state_ == State::kUpstreamHandshake) {
      UpstreamHandshakeStep();
      return;
    }
    std::string plain = origin_leg_.tls->ReadPlaintext();
    RawWrite(Leg::kUpstream, origin_leg_.tls->TakeCiphertext());
    if (!plain.empty()) OnUpstreamBytes(plain.data(), plain.size());
    if (!origin_leg_.tls || !origin_leg_.tls->closed()) return;
    nread = UV_EOF;  // the origin's close_notify ends its side like a TCP close
  }
  if (nread < 0 && (decrypting_ || upstream_idle_) && state_ != State::kRelay) {
    // The origin closed an idle kept-alive connection, or during our handshakes.
    upstream_reusable_ = false;
    up_->stream->StopReading();
    if (state_ == State::kUpstreamHandshake) {
      upstream_problem_ = "the origin closed the connection during the TLS handshake";
      UpstreamTlsFinished();
    } else if (state_ == State::kTunnel) {
      CloseWhenFlushed();  // the end of an upgraded decrypted connection
    } else if (state_ == State::kReadRequest) {
      ReleaseUpstream(false);  // the client's next request gets a fresh connection
    }
    return;
  }
  if (!response_parser_ || state_ != State::kRelay) return;
  if (nread < 0) {
    upstream_reusable_ = false;
    up_->stream->StopReading();
    std::optional<HttpError> error = response_parser_->FeedEof();
    if (!response_complete_ && RetryStaleUpstream()) return;
    if (response_complete_) {
      FinishExchange();
    } else if (!response_started_) {
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
    return;
  }
  if (!origin_leg_.tls) OnUpstreamBytes(data, static_cast<std::size_t>(nread));
}

void Session::OnUpstreamBytes(const char* data, std::size_t size) {
  if (state_ == State::kTunnel) {  // an upgraded decrypted connection: plaintext spliced
    Write(Leg::kClient, std::string(data, size));
    return;
  }
  if (!response_parser_ || state_ != State::kRelay) return;
  std::size_t offset = 0;
  while (offset < size && state_ == State::kRelay) {
    HttpParser::FeedResult r = response_parser_->Feed(data + offset, size - offset);
    offset += r.consumed;
    if (r.error) {
      Fail({net::ErrorSource::kUpstream, net::ErrorKind::kMalformed,
            "invalid response from " + url_.host + ": " + r.error->reason,
            response_started_ ? 0 : 502});
      return;
    }
    if (r.paused && upgrading_) {
      BeginUpgradedRelay(data + offset, size - offset);
      return;
    }
    if (r.paused) {
      if (response_complete_) {
        if (offset < size) upstream_reusable_ = false;  // bytes after the response: not clean
        FinishExchange();
        return;
      }
      response_parser_->Resume();  // after an interim 1xx response
      continue;
    }
    if (r.consumed == 0) break;
  }
}

void Session::Write(Leg leg, std::string data) { LegOf(leg).Write(std::move(data)); }

void Session::WriteBody(Leg leg, const char* data, std::size_t size) {
  LegOf(leg).WriteBody(data, size);
}

void Session::RawWrite(Leg leg, std::string data) { LegOf(leg).RawWrite(std::move(data)); }

void Session::FlushCorked() {
  FlushLeg(Leg::kClient);
  FlushLeg(Leg::kUpstream);
}

bool Session::Reading(Leg leg) const {
  if (leg == Leg::kClient) return client_->reading();
  return upstream_open_ && up_->stream->reading();
}

void Session::OnWritten(Leg leg, int status) {
  Touch();
  if (status < 0) {
    Fail({leg == Leg::kClient ? net::ErrorSource::kDownstream : net::ErrorSource::kUpstream,
          net::ErrorKind::kIo, std::string("writing failed: ") + uv_strerror(status), 0});
    return;
  }
  if (state_ == State::kClosing && !closing_ && PendingWrites(Leg::kClient) == 0) {
    Linger();
    return;
  }
  if (!closing_) UpdateReading();
}

// Reads stop on one side while the other side's write queue is above the high watermark and
// resume below the low one, so memory per connection stays bounded whatever the body size.
void Session::UpdateReading() {
  if (closing_ || lingering_) return;
  auto want = [](bool reading, bool allowed, std::size_t queued) {
    if (!allowed) return false;
    return reading ? queued <= kHighWatermark : queued <= kLowWatermark;
  };
  const bool client_allowed = !client_eof_ && state_ != State::kClosing &&
                              client_in_.size() < kMaxPipelined &&
                              (state_ == State::kReadRequest || state_ == State::kPeek ||
                               state_ == State::kTunnel || state_ == State::kClientHandshake ||
                               (state_ == State::kRelay && (!is_connect_ || decrypting_) &&
                                (!request_paused_ || request_complete_)));
  const bool want_client = want(client_->reading(), client_allowed, QueuedBytes(Leg::kUpstream));
  if (want_client != client_->reading()) {
    if (want_client) {
      client_->StartReading();
    } else {
      client_->StopReading();
    }
  }
  const bool upstream_allowed =
      upstream_open_ &&
      (state_ == State::kRelay || state_ == State::kTunnel || state_ == State::kUpstreamHandshake ||
       ((decrypting_ || upstream_idle_) && state_ == State::kReadRequest));
  const bool want_upstream =
      want(Reading(Leg::kUpstream), upstream_allowed, QueuedBytes(Leg::kClient));
  if (want_upstream != Reading(Leg::kUpstream)) {
    if (want_upstream) {
      up_->stream->StartReading();
    } else {
      up_->stream->StopReading();
    }
  }
}

// Every failure of a connection ends here. It is recorded once (the first failure is the
// cause; what fails while tearing down says nothing new), in a record of its own when no
// exchange is being recorded, so that every abort reaches the access log. The client then
// gets an HTTP page while it can still read one, else the connection closes.
void Session::Fail(const net::ConnError& error) {
  if (closing_) return;
  if (state_ == State::kClosing) {  // already answered and logged: only the close is left
    Close();
    return;
  }
  if (!record_open_) BeginRecord("-", "-");
  if (record_.error.empty()) {
    record_.error = error.Tag();
    if (!error.reason.empty()) {
      record_.note = record_.note.empty() ? error.reason : error.reason + "; " + record_.note;
    }
  }
  if (error.status == 0 || response_started_ || (connect_answered_ && !client_leg_.tls)) {
    // No answer wanted; or part of a response is already out, or the client now speaks TLS
    // to us and an HTTP page would be garbage to it: closing is the only honest signal left.
    Close();
    return;
  }
  Write(Leg::kClient, ErrorResponse(error.status, error.reason, true));
  record_.status = error.status;
  LogExchange();
  CloseWhenFlushed();
}

void Session::CloseWhenFlushed() {
  if (closing_) return;
  FlushCorked();
  if (closing_) return;  // the flush failed and closed
  state_ = State::kClosing;
  timer_->Stop();
  if (resolve_id_ != 0) {
    context_.resolver().Cancel(resolve_id_);
    resolve_id_ = 0;
  }
  client_->StopReading();
  ReleaseUpstream(upstream_idle_);
  if (PendingWrites(Leg::kClient) == 0) {
    Linger();
    return;
  }
  // A client that does not read its answer does not hold the socket and the answer forever.
  timer_->Start(timeouts().linger_ms, [this] { Close(); });
}

// Closing a socket with unread input makes the kernel send a reset, which can destroy the
// answer still in flight (e.g. a 431 for a head we stopped reading). So: send FIN, discard
// what the client still sends for up to two seconds, then close.
void Session::Linger() {
  if (closing_ || lingering_) return;
  lingering_ = true;
  if (!client_->Shutdown()) {
    Close();
    return;
  }
  client_->StartReading();  // LegEvents drops what arrives, and closes at the client's end
  timer_->Start(timeouts().linger_ms, [this] { Close(); });
}

void Session::Close() {
  if (closing_) return;
  closing_ = true;
  cork_.closing = true;
  FlushCorked();  // an answer written just before closing still goes out
  LogExchange();
  ReleaseUpstream(upstream_idle_);  // a clean idle origin connection outlives its client
  state_ = State::kClosing;
  if (resolve_id_ != 0) {
    context_.resolver().Cancel(resolve_id_);
    resolve_id_ = 0;
  }
  ReleaseUpstream(false);
  client_->Close();
  timer_->Stop();
  // The handles free themselves once libuv is done with them; the worker destroys this
  // session later on its loop, never inside the callback that is running now.
  context_.SessionClosed(this);
}

void Session::BeginRecord(const std::string& method, const std::string& url) {
  record_ = AccessRecord{};
  record_.time = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count()) /
                 1000.0;
  record_start_ms_ = clock_.NowMs();
  record_.client = client_address_;
  record_.method = method;
  record_.url = url;
  record_open_ = true;
}

void Session::LogExchange() {
  FlushLeg(Leg::kClient);  // the exchange's bytes to the client are counted when written
  if (!record_open_) return;
  record_open_ = false;
  record_.duration_ms = clock_.NowMs() - record_start_ms_;
  // Everything since the previous record: the head of a request arrives before it is known
  // to be one.
  record_.bytes_from_client = client_->bytes_read() - client_bytes_in_logged_;
  record_.bytes_to_client = client_->bytes_written() - client_bytes_out_logged_;
  client_bytes_in_logged_ = client_->bytes_read();
  client_bytes_out_logged_ = client_->bytes_written();
  if (const auto& log = runtime().access_log) {
    log->Write(record_);
    context_.LogQueued();
  }
}

void Session::NewRequestParser() {
  request_parser_ = std::make_unique<HttpParser>(HttpParser::Kind::kRequest, *request_side_);
}

void Session::StartTimer(std::uint64_t ms, std::function<void()> fire) {
  if (closing_) return;
  timer_->Start(ms, std::move(fire));
}

void Session::StartIdleTimer() {
  Touch();
  StartTimer(IdleLimitMs(), [this] { OnIdleTimer(); });
}

std::uint64_t Session::IdleLimitMs() const {
  if (state_ == State::kTunnel) return timeouts().tunnel_idle_ms;
  return response_started_ ? timeouts().origin_idle_ms : timeouts().origin_first_byte_ms;
}

void Session::OnIdleTimer() {
  Session* s = this;
  if (s->state_ != State::kRelay && s->state_ != State::kTunnel) return;
  const std::uint64_t idle = clock_.NowMs() - s->last_activity_ms_;
  const std::uint64_t limit = s->IdleLimitMs();
  if (idle < limit) {
    StartTimer(limit - idle, [this] { OnIdleTimer(); });
    return;
  }
  if (s->state_ == State::kTunnel) {
    s->Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
             "tunnel idle for " + Seconds(limit) + " (timeouts.tunnel_idle)", 0});
  } else if (!s->response_started_) {
    s->Fail({net::ErrorSource::kUpstream, net::ErrorKind::kTimeout,
             s->url_.host + " did not answer within " + Seconds(limit) +
                 " (timeouts.origin_first_byte)",
             504});
  } else {
    s->Fail(
        {net::ErrorSource::kUpstream, net::ErrorKind::kTimeout,
         "the origin sent nothing for " + Seconds(limit) + " mid-response (timeouts.origin_idle)",
         0});
  }
}

void Session::Drain() {
  draining_ = true;
  keep_client_alive_ = false;
  if (state_ == State::kReadRequest && client_in_.empty() &&
      (!request_parser_ || !request_parser_->in_message())) {
    Close();
  }
}

}  // namespace mintgate::proxy
