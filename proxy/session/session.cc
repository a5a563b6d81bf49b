// The session's machine: its phases and their handlers, reads from both legs, flow control,
// failure and closing. The phases' own code is in session_http.cc, session_upstream.cc,
// session_connect.cc and session_decrypt.cc.
#include "proxy/session/session.h"

#include <chrono>
#include <cstdio>

#include "proxy/http/error_page.h"
#include "proxy/net/proxy_header.h"
#include "proxy/session/session_context.h"
#include "proxy/session/session_leg_events.h"

namespace mintgate::proxy {

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

// Every phase, in the order of Phase. A new phase is a row here and an Enter() where it
// begins; its handlers say what bytes, an end of stream and its timeout mean to it.
// clang-format off
const Session::PhaseSpec Session::kPhases[] = {
  //  name               client reads        origin  client bytes                        client end                          origin bytes                         origin end                        timeout
  {"proxy_header",       Reads::kYes,         false, &Session::OnProxyHeaderBytes,      &Session::CloseNow,                 &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::ProxyHeaderTimeout},
  {"read_request",       Reads::kYes,         true,  &Session::BufferClientBytes,       &Session::ClientEndBetweenRequests, &Session::IgnoreOriginBytes,         &Session::OriginEndWhileIdle,     &Session::RequestHeadTimeout},
  {"authenticate",       Reads::kNo,          true,  &Session::BufferClientBytes,       &Session::ClientEndEarly,           &Session::IgnoreOriginBytes,         &Session::OriginEndWhileIdle,     &Session::AuthTimeout},
  {"portal_body",        Reads::kRequestBody, false, &Session::OnPortalBodyBytes,       &Session::ClientEndInExchange,      &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::PortalBodyTimeout},
  {"resolve",            Reads::kNo,          false, &Session::BufferClientBytes,       &Session::ClientEndEarly,           &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::NoTimeout},
  {"connect",            Reads::kNo,          false, &Session::BufferClientBytes,       &Session::ClientEndEarly,           &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::ConnectTimeout},
  {"peek",               Reads::kYes,         false, &Session::OnHelloBytes,            &Session::ClientEndEarly,           &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::HelloTimeout},
  {"bind_sni",           Reads::kNo,          false, &Session::BufferClientBytes,       &Session::ClientEndEarly,           &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::NoTimeout},
  {"tunnel",             Reads::kYes,         true,  &Session::TunnelToOrigin,          &Session::ClientEndInTunnel,        &Session::TunnelToClient,            &Session::OriginEndInTunnel,      &Session::TunnelTimeout},
  {"origin_handshake",   Reads::kNo,          true,  &Session::BufferClientBytes,       &Session::ClientEndInExchange,      &Session::OnOriginHandshakeBytes,    &Session::OriginEndInHandshake,   &Session::OriginHandshakeTimeout},
  {"leaf",               Reads::kNo,          false, &Session::BufferClientBytes,       &Session::ClientEndEarly,           &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::LeafTimeout},
  {"client_handshake",   Reads::kYes,         false, &Session::OnClientHandshakeBytes,  &Session::ClientEndInHandshake,     &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::ClientHandshakeTimeout},
  {"first_record",       Reads::kYes,         true,  &Session::OnFirstRecord,           &Session::ClientEndAfterHandshake,  &Session::IgnoreOriginBytes,         &Session::OriginEndWhileIdle,     &Session::FirstRecordTimeout},
  {"relay",              Reads::kRequestBody, true,  &Session::BufferClientBytes,       &Session::ClientEndInExchange,      &Session::OnResponseBytes,           &Session::OriginEndInRelay,       &Session::RelayTimeout},
  {"drain",              Reads::kNo,          false, &Session::DropBytes,               &Session::CloseNow,                 &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::CloseNow},
  {"linger",             Reads::kDrop,        false, &Session::DropBytes,               &Session::CloseNow,                 &Session::IgnoreOriginBytes,         &Session::OriginGone,             &Session::CloseNow},
  {"closed",             Reads::kNo,          false, &Session::DropBytes,               &Session::NoTimeout,                &Session::IgnoreOriginBytes,         &Session::NoTimeout,              &Session::NoTimeout},
};
// clang-format on

// Holds the output of one read callback back until its end (see Transport::Cork).
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

Session::Session(SessionContext& context, std::unique_ptr<net::Stream> client)
    : context_(context),
      runtime_(context.runtime_ptr()),
      id_(context.NextSessionId()),
      clock_(context.clock()),
      client_events_(std::make_unique<LegEvents>(*this, Leg::kClient)),
      upstream_events_(std::make_unique<LegEvents>(*this, Leg::kUpstream)),
      timer_(clock_.NewTimer()),
      client_(std::move(client), cork_, *this) {
  client_.stream->set_delegate(client_events_.get());
}

Session::~Session() {
  if (admitted_) runtime().connections->Release(*client_ip_);
}

WorkerMetrics& Session::metrics() const { return context_.metrics(); }

void Session::NoteClientAlert(std::string_view engine_error) const {
  if (const std::string alert = PeerAlert(engine_error); !alert.empty()) {
    metrics().client_alerts.Add(alert);
  }
}

void Session::NoteOriginFailure(OriginFailure failure) const {
  metrics().origin_failures[static_cast<std::size_t>(failure)].Add();
}

void Session::Start() {
  client_.stream->set_tally(&metrics().client_bytes);
  client_.stream->SetNoDelay();
  // A client that vanished without a FIN (a laptop closed, a NAT entry dropped) is found.
  client_.stream->SetKeepAlive(timeouts().tcp_keepalive_ms);
  client_address_ = client_.stream->PeerAddress();
  local_address_ = client_.stream->LocalAddress(&local_port_);
  client_ip_ = rules::IpAddress::Parse(client_address_);
  if (runtime().config.server.proxy_protocol != ServerConfig::ProxyProtocol::kOff) {
    // A balancer in front: only one it trusts may say who the client is, and it must.
    if (!client_ip_ || !runtime().ProxyHeaderAllowedFrom(*client_ip_)) {
      RefuseProxyHeader(client_address_ + " is not in server.proxy_protocol_from");
      return;
    }
    Enter(Phase::kProxyHeader, timeouts().request_head_ms);
    return;
  }
  Welcome();
}

void Session::Welcome() {
  if (client_ip_ && runtime().connections && !Admit()) return;
  if (!client_ip_ || !runtime().ClientAllowed(*client_ip_)) {
    metrics().refused[static_cast<std::size_t>(Refusal::kAllowClients)].Add();
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
          "client " + client_address_ + " is not allowed to use this proxy", 403});
    return;
  }
  request_.NewParser();
  ReadRequest();
}

// server.proxy_protocol: the header comes before anything of the client's own; what follows
// it in the same read is the client's first bytes.
void Session::OnProxyHeaderBytes(const char* data, std::size_t size) {
  client_.in.append(data, size);
  const net::ProxyHeaderParse parse = net::ParseProxyHeader(
      client_.in, runtime().config.server.proxy_protocol == ServerConfig::ProxyProtocol::kV1
                      ? net::ProxyHeaderAccept::kV1
                  : runtime().config.server.proxy_protocol == ServerConfig::ProxyProtocol::kV2
                      ? net::ProxyHeaderAccept::kV2
                      : net::ProxyHeaderAccept::kAny);
  if (parse.status == net::ProxyHeaderParse::Status::kNeedMore) return;
  if (parse.status == net::ProxyHeaderParse::Status::kInvalid) {
    RefuseProxyHeader("PROXY protocol header from " + client_address_ + ": " + parse.error);
    return;
  }
  client_.in.erase(0, parse.consumed);
  // A LOCAL header (the balancer's own health check) names nobody: the balancer is the client;
  // otherwise the header names the client, and the address the client connected to is the
  // balancer's: what the portal's PAC names and where a request for the proxy itself arrives.
  if (!parse.header.local) {
    client_address_ = parse.header.source_address;
    client_ip_ = rules::IpAddress::Parse(client_address_);
    local_address_ = parse.header.destination_address;
    local_port_ = parse.header.destination_port;
    balancer_ip_ = rules::IpAddress::Parse(local_address_);
  }
  proxy_unique_id_ = parse.header.unique_id;
  Welcome();
}

void Session::ProxyHeaderTimeout() {
  RefuseProxyHeader("no PROXY protocol header from " + client_address_ + " within " +
                    Seconds(timeouts().request_head_ms));
}

// Closed without a word: the peer is a balancer (or pretends to be), not an HTTP client.
void Session::RefuseProxyHeader(const std::string& why) {
  metrics().refused[static_cast<std::size_t>(Refusal::kProxyHeader)].Add();
  Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused, why, 0});
}

void Session::Enter(Phase next, std::uint64_t timeout_ms) {
  static_assert(std::size(kPhases) == static_cast<std::size_t>(Phase::kClosed) + 1,
                "one row per phase");
  phase_ = next;
  if (timeout_ms != 0) {
    ArmTimeout(timeout_ms);
  } else {
    timer_->Stop();
  }
  UpdateReading();
}

void Session::ArmTimeout(std::uint64_t ms) {
  if (closing_) return;
  // Whatever phase is current when it fires handles it: a phase that ended took its timer
  // with it (Enter re-arms or stops it).
  timer_->Start(ms, [this] { (this->*spec().timeout)(); });
}

// A read from either leg: through the leg's transport (decrypted on a TLS leg), then to the
// current phase's handler for that leg's bytes or end.
void Session::OnLegRead(Leg leg, ssize_t nread, const char* data) {
  if (closing_) return;
  CorkScope cork(*this);
  Touch();
  const PhaseSpec& phase = spec();
  const bool client = leg == Leg::kClient;
  if (nread < 0) {
    if (client) {
      client_.ended = true;
      client_.reset = nread == UV_ECONNRESET;
      client_.stream->StopReading();
    }
    (this->*(client ? phase.client_end : phase.origin_end))();
    return;
  }
  Transport::Input in = LegOf(leg).Receive(data, static_cast<std::size_t>(nread));
  const std::string_view bytes = in.bytes();
  if (in.handshaking || !bytes.empty()) {
    (this->*(client ? phase.client_bytes : phase.origin_bytes))(bytes.data(), bytes.size());
  }
  if (!in.ended || closing_) return;
  if (client) {
    if (!in.error.empty()) {
      // A fatal alert after the handshake and before any data: the client checked the
      // certificate late, and refused it.
      NoteClientAlert(in.error);
      if (const std::string alert = PeerAlert(in.error); !alert.empty() && verdict_pending_) {
        SettleReadiness(HandshakeOutcome::kRejected, Evidence::kAlert, alert);
      }
      Fail(
          {net::ErrorSource::kClientTls, net::ErrorKind::kMalformed, "client TLS: " + in.error, 0});
      return;
    }
    client_.ended = true;
    client_.stream->StopReading();
    (this->*spec().client_end)();
  } else if (origin_.open) {
    // The origin's close_notify (or a broken record) ends its side like a TCP close.
    (this->*spec().origin_end)();
  }
}

// Client bytes a phase does not act on yet: kept until the request parser runs again.
void Session::BufferClientBytes(const char* data, std::size_t size) {
  client_.in.append(data, size);
  ProcessClientInput();
}

// Origin bytes outside a response (an idle connection that spoke): it is not clean anymore.
void Session::IgnoreOriginBytes(const char*, std::size_t) { origin_.reusable = false; }

// The client closed before an exchange could start: before its ClientHello, during the
// handshakes, or before the origin was reached.
void Session::ClientEndEarly() {
  if (is_connect_ && !client_.transport.encrypted()) {
    Fail({hello_seen_ ? net::ErrorSource::kClientTls : net::ErrorSource::kDownstream,
          net::ErrorKind::kClosed,
          hello_seen_ ? "the client closed the connection during the TLS handshake"
                      : "the client closed the connection before its ClientHello",
          0});
    return;
  }
  Fail({net::ErrorSource::kDownstream, net::ErrorKind::kClosed,
        "the client closed the connection before the exchange ended", 0});
}

// The client closed while its exchange was under way: a half-close after a whole request
// still gets the response; before that, the exchange is lost.
void Session::ClientEndInExchange() {
  if (is_connect_ && !client_.transport.encrypted()) {
    ClientEndEarly();
  } else if (!request_.complete()) {
    Fail({net::ErrorSource::kDownstream, net::ErrorKind::kClosed,
          "the client closed the connection before the exchange ended", 0});
  }
}

// The origin closed while it had nothing to say: the connection is not reused.
void Session::OriginGone() {
  origin_.reusable = false;
  if (origin_.open) origin_.conn->stream->StopReading();
}

void Session::FlushCorked() {
  FlushLeg(Leg::kClient);
  FlushLeg(Leg::kUpstream);
}

bool Session::Reading(Leg leg) const {
  if (leg == Leg::kClient) return client_.stream->reading();
  return origin_.open && origin_.conn->stream->reading();
}

void Session::OnWritten(Leg leg, int status) {
  Touch();
  if (status < 0) {
    Fail({leg == Leg::kClient ? net::ErrorSource::kDownstream : net::ErrorSource::kUpstream,
          net::ErrorKind::kIo, std::string("writing failed: ") + uv_strerror(status), 0});
    return;
  }
  if (phase_ == Phase::kDrain && !closing_ && PendingWrites(Leg::kClient) == 0) {
    Linger();  // the last answer is out
    return;
  }
  if (!closing_) UpdateReading();
}

// A leg reads when its phase lets it, and stops while the other leg's write queue is above
// the high watermark (resuming below the low one), so memory per connection stays bounded
// whatever the body size.
void Session::UpdateReading() {
  if (closing_) return;
  const PhaseSpec& phase = spec();
  const bool client_allowed =
      !client_.ended &&
      (phase.client_reads == Reads::kDrop ||
       (client_.in.size() < kMaxPipelined &&
        (phase.client_reads == Reads::kYes || (phase.client_reads == Reads::kRequestBody &&
                                               (!request_.paused() || request_.complete())))));
  const bool want_client = client_allowed && request_.SourceReads(client_.stream->reading());
  if (want_client != client_.stream->reading()) {
    if (want_client) {
      client_.stream->StartReading();
    } else {
      client_.stream->StopReading();
    }
  }
  const bool upstream_allowed = origin_.open && phase.origin_reads;
  const bool want_upstream = upstream_allowed && response_.SourceReads(Reading(Leg::kUpstream));
  if (want_upstream != Reading(Leg::kUpstream)) {
    if (want_upstream) {
      origin_.conn->stream->StartReading();
    } else {
      origin_.conn->stream->StopReading();
    }
  }
}

// Every failure of a connection ends here. It is recorded once (the first failure is the
// cause; what fails while tearing down says nothing new), in a record of its own when no
// exchange is being recorded, so that every abort reaches the access log. The client then
// gets an HTTP page while it can still read one, else the connection closes.
void Session::Fail(const net::ConnError& error) {
  if (closing_) return;
  if (phase_ == Phase::kDrain || phase_ == Phase::kLinger) {
    Close();  // already answered and logged: only the close is left
    return;
  }
  if (!record_open_) BeginRecord("-", "-");
  if (verdict_pending_ && phase_ == Phase::kFirstRecord && error.kind == net::ErrorKind::kIo &&
      (error.source == net::ErrorSource::kDownstream ||
       error.source == net::ErrorSource::kClientTls)) {
    // Writing after the handshake failed: the client reset the connection without a word.
    SettleReadiness(HandshakeOutcome::kRejected, Evidence::kResetAfterHandshake, "");
  }
  if (record_.error.empty()) {
    record_.error = error.Tag();
    if (!error.reason.empty()) {
      record_.note = record_.note.empty() ? error.reason : error.reason + "; " + record_.note;
    }
  }
  if (error.status == 0 || response_.started() ||
      (connect_answered_ && !client_.transport.encrypted())) {
    // No answer wanted; or part of a response is already out, or the client now speaks TLS
    // to us without a finished handshake, and an HTTP page would be garbage to it: closing
    // is the only honest signal left.
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
  client_.transport.SendCloseNotify();
  FlushCorked();
  if (closing_) return;  // the flush failed and closed
  if (resolve_id_ != 0) {
    context_.resolver().Cancel(resolve_id_);
    resolve_id_ = 0;
  }
  client_.stream->StopReading();
  ReleaseUpstream(origin_.idle);
  // A client that does not read its answer does not hold the socket and the answer forever.
  Enter(Phase::kDrain, timeouts().linger_ms);
  if (PendingWrites(Leg::kClient) == 0) Linger();
}

// Closing a socket with unread input makes the kernel send a reset, which can destroy the
// answer still in flight (e.g. a 431 for a head we stopped reading). So: send FIN, discard
// what the client still sends for up to timeouts.linger, then close.
void Session::Linger() {
  if (closing_ || phase_ == Phase::kLinger) return;
  if (client_.ended || !client_.stream->Shutdown()) {
    Close();  // the client already ended its side: nothing of it is left unread
    return;
  }
  // (client_.in is left alone: this may run inside the request parser's callback, which is
  // still reading it.)
  Enter(Phase::kLinger, timeouts().linger_ms);
}

void Session::Close() {
  if (closing_) return;
  closing_ = true;
  cork_.closing = true;
  client_.transport.SendCloseNotify();  // once: a second call sends nothing
  FlushCorked();                        // an answer written just before closing still goes out
  LogExchange();
  ReleaseUpstream(origin_.idle);  // a clean idle origin connection outlives its client
  phase_ = Phase::kClosed;
  if (resolve_id_ != 0) {
    context_.resolver().Cancel(resolve_id_);
    resolve_id_ = 0;
  }
  ReleaseUpstream(false);
  client_.stream->Close();
  timer_->Stop();
  // The handles free themselves once libuv is done with them; the worker destroys this
  // session later on its loop, never inside the callback that is running now.
  context_.SessionClosed(this);
}

// Relay and tunnel timeouts: false (and the timeout re-armed for what is left) while the
// connection saw activity within `limit_ms`.
bool Session::StillActive(std::uint64_t limit_ms) {
  const std::uint64_t idle = clock_.NowMs() - last_activity_ms_;
  if (idle >= limit_ms) return false;
  ArmTimeout(limit_ms - idle);
  return true;
}

rules::Decision Session::DecideOn(const std::string& host) const {
  rules::Target target;
  target.host = host;
  target.port = url_.port;
  target.client = client_address_;
  if (identified_) {
    target.user = identity_.user;
    target.groups = identity_.groups;
  } else if (runtime().auth &&
             runtime().config.auth.unidentified == Unidentified::kDecryptToLogin) {
    target.identity_known = false;
  }
  return runtime().rules->Decide(target, rules::Now());
}

void Session::BeginRecord(const std::string& method, const std::string& url) {
  record_ = AccessRecord{};
  record_.time = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count()) /
                 1000.0;
  record_start_ms_ = clock_.NowMs();
  record_start_us_ = MonotonicUs();
  first_byte_timed_ = false;
  record_.client = client_address_;
  record_.proxy_id = proxy_unique_id_;
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
  record_.bytes_from_client = client_.stream->bytes_read() - client_.bytes_in_logged;
  record_.bytes_to_client = client_.stream->bytes_written() - client_.bytes_out_logged;
  client_.bytes_in_logged = client_.stream->bytes_read();
  client_.bytes_out_logged = client_.stream->bytes_written();
  WorkerMetrics& m = metrics();
  const std::size_t status_class = record_.status >= 100 && record_.status < 600
                                       ? static_cast<std::size_t>(record_.status / 100)
                                       : 0;
  const ActionIndex action = ActionIndexOf(record_.action);
  m.requests[static_cast<std::size_t>(action)][status_class].Add();
  if (record_.method != "CONNECT" && action != ActionIndex::kTunnel) {
    m.request_duration.ObserveUs(MonotonicUs() - record_start_us_);
  }
  if (const auto& log = runtime().access_log) {
    log->Write(record_);
    context_.LogQueued();
  }
}

void Session::Drain() {
  draining_ = true;
  keep_client_alive_ = false;
  if (phase_ == Phase::kReadRequest && client_.in.empty() && !request_.in_message()) {
    Close();
  }
}

}  // namespace mintgate::proxy
