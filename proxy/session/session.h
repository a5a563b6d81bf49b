// One client connection and, while a request is relayed, its upstream connection: an
// explicit state machine of phases (docs/architecture.md draws it). Each phase has its own
// handlers for bytes, end of stream and timeout on either leg and says which legs read;
// Enter() is the one place the session moves from one phase to the next.
//
//   plain HTTP: ReadRequest -> Resolve -> Connect -> Relay -> ReadRequest (keep-alive) ...
//   CONNECT:    ReadRequest -> Resolve -> Connect -> (200) Peek -> [BindSni] ->
//               Tunnel | OriginHandshake -> Leaf -> ClientHandshake -> FirstRecord ->
//               ReadRequest -> Relay ...
//   the end:    Drain (the last answer leaves) -> Linger (FIN, input dropped) -> Closed
//
// The phases' code is split by subject: session.cc (the machine, flow control, failure and
// closing), session_http.cc (requests and responses), session_upstream.cc (resolving,
// connecting, the pool), session_connect.cc (CONNECT, the ClientHello, the decision by SNI,
// tunnels) and session_decrypt.cc (the origin's handshake, the leaf, the client's handshake).
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "proxy/dns/resolver.h"
#include "proxy/http/http_codec.h"
#include "proxy/log/access_log.h"
#include "proxy/net/clock.h"
#include "proxy/net/conn_error.h"
#include "proxy/net/tcp_stream.h"
#include "proxy/runtime/mint_service.h"
#include "proxy/runtime/portal.h"
#include "proxy/runtime/readiness.h"
#include "proxy/runtime/runtime.h"
#include "proxy/session/downstream.h"
#include "proxy/session/request_relay.h"
#include "proxy/session/response_relay.h"
#include "proxy/session/transport.h"
#include "proxy/session/upstream.h"
#include "proxy/session/worker_metrics.h"
#include "proxy/upstream/upstream_pool.h"
#include "rules/rule.h"
#include "tls/tls_engine.h"

namespace mintgate::proxy {

class SessionContext;

// "10 s", "0.5 s": a configured timeout for messages.
std::string Seconds(std::uint64_t ms);

class Session final : private Transport::Events,
                      private RequestRelay::Events,
                      private ResponseRelay::Events {
 public:
  // A connection accepted on `client` (its events now go to this session).
  Session(SessionContext& context, std::unique_ptr<net::Stream> client);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Start();
  // Graceful stop: close now if idle, else after the exchange in progress.
  void Drain();
  // Ends the connection because of `error`: recorded in the access log, answered with an
  // HTTP page when error.status is set and the client can still read one, else closed now.
  void Fail(const net::ConnError& error);
  std::uint64_t id() const { return id_; }
  // The configuration this connection started under: a reload swaps the worker's snapshot,
  // never the one a connection in progress uses.
  const Runtime& runtime() const { return *runtime_; }

 private:
  enum class Phase : std::uint8_t {
    kProxyHeader,      // server.proxy_protocol: the balancer's header naming the client
    kReadRequest,      // waiting for (more of) a request head
    kAuthenticate,     // [auth]: who sent the request (a credential checked on a thread)
    kPortalBody,       // the portal's login form: its body, before the password is checked
    kResolve,          // the origin's name
    kConnect,          // the origin's TCP connection
    kPeek,             // CONNECT answered 200; reading the ClientHello without consuming it
    kBindSni,          // resolving the SNI: is the connected address one of its own?
    kTunnel,           // bytes spliced both ways
    kOriginHandshake,  // decrypt: TLS to the origin first, verifying it
    kLeaf,             // decrypt: waiting for the leaf (cache or mint pool)
    kClientHandshake,  // decrypt: TLS with the client, the peeked ClientHello fed first
    kFirstRecord,      // decrypt: handshake done; the client's first data shows it accepted
                       // the leaf, a close or an alert that it did not (readiness)
    kRelay,            // request and/or response in flight
    kDrain,            // the last answer is leaving; then Linger
    kLinger,           // FIN sent; what the client still sends is dropped
    kClosed,
  };
  // When a phase lets the client's leg read: never; while less than kMaxPipelined waits to be
  // parsed; only while a request's body flows (and within kMaxPipelined); always, dropping
  // what arrives.
  enum class Reads : std::uint8_t { kNo, kYes, kRequestBody, kDrop };
  // A phase's handlers: bytes (plaintext on a decrypted leg) and end of stream from either
  // leg, and its timeout (armed by Enter or ArmTimeout).
  struct PhaseSpec {
    const char* name;
    Reads client_reads;
    bool origin_reads;  // while an origin connection is attached
    void (Session::*client_bytes)(const char* data, std::size_t size);
    void (Session::*client_end)();
    void (Session::*origin_bytes)(const char* data, std::size_t size);
    void (Session::*origin_end)();
    void (Session::*timeout)();
  };
  static const PhaseSpec kPhases[];
  const PhaseSpec& spec() const { return kPhases[static_cast<std::size_t>(phase_)]; }
  // Moves to `next`: its timeout armed for `timeout_ms` (0: none), reading adjusted.
  void Enter(Phase next, std::uint64_t timeout_ms = 0);
  // Re-arms the current phase's timeout.
  void ArmTimeout(std::uint64_t ms);

  enum class Leg { kClient, kUpstream };
  // What a finished upstream connect leads to.
  enum class AfterConnect {
    kRequest,       // plain HTTP: send the request
    kConnectReply,  // CONNECT: answer 200 and peek at the ClientHello
    kTunnel,        // a tunnel decided after the 200 (no connection was needed before)
    kDecryptTls,    // TLS with the origin (first time, or a fresh connection between requests)
    kBindSni,       // a tunnel the SNI chose: is the destination one of the SNI's addresses?
  };
  // Flow control (the timeouts are the configuration's [timeouts]).
  static constexpr std::size_t kMaxPipelined = 256 << 10;
  class LegEvents;
  class CorkScope;

  // session.cc: reads, the phases' generic handlers, flow control, failure and closing.
  void OnLegRead(Leg leg, ssize_t nread, const char* data);
  void BufferClientBytes(const char* data, std::size_t size);
  void DropBytes(const char*, std::size_t) {}
  void IgnoreOriginBytes(const char* data, std::size_t size);
  void ClientEndEarly();
  void ClientEndInExchange();
  void CloseNow() { Close(); }
  void OriginGone();
  void NoTimeout() {}
  void OnTransportFailed(const net::ConnError& error) override { Fail(error); }
  void OnTransportQueued() override { UpdateReading(); }
  void Write(Leg leg, std::string data) { LegOf(leg).Write(std::move(data)); }
  void WriteBody(Leg leg, const char* data, std::size_t size) { LegOf(leg).WriteBody(data, size); }
  void RawWrite(Leg leg, std::string data) { LegOf(leg).RawWrite(std::move(data)); }
  void FlushLeg(Leg leg) { LegOf(leg).Flush(); }
  void FlushCorked();
  void OnWritten(Leg leg, int status);
  void UpdateReading();
  void CloseWhenFlushed();
  void Linger();
  void Close();
  // Answered or failed: only the close is left.
  bool Ending() const { return phase_ >= Phase::kDrain || closing_; }
  const TimeoutsConfig& timeouts() const { return runtime_->config.timeouts; }
  // Relay and tunnel: the connection ends after a whole idle period with no byte read on
  // either leg and no write completed. Activity only stamps a time (cheap on every read); the
  // timeout checks the stamp when it fires and sleeps again for what is left.
  void Touch() { last_activity_ms_ = clock_.NowMs(); }
  bool StillActive(std::uint64_t limit_ms);
  void BeginRecord(const std::string& method, const std::string& url);
  void LogExchange();
  WorkerMetrics& metrics() const;
  // Counts an alert the client sent (a TLS engine's error text), if it names one.
  void NoteClientAlert(std::string_view engine_error) const;
  void NoteOriginFailure(OriginFailure failure) const;
  // The rules' decision for this client going to `host` at the request's port.
  rules::Decision DecideOn(const std::string& host) const;

  // session_http.cc: requests and responses.
  // The client is known (the socket's peer, or the PROXY header's source): limits,
  // allow_clients, then its first request.
  void Welcome();
  void OnProxyHeaderBytes(const char* data, std::size_t size);
  void ProxyHeaderTimeout();
  void RefuseProxyHeader(const std::string& why);
  bool Admit();
  void ReadRequest();
  void ClientEndBetweenRequests();
  void RequestHeadTimeout();
  void ProcessClientInput();
  void OnRequestHead(HttpHead& head) override;
  // After the identity is settled: the request goes where it asks (CONNECT, plain, portal).
  void RouteRequest();
  bool OnResponseHead(const HttpHead& head, bool close_delimited) override;
  void OnSwitch(bool asked) override;
  // `url`: the request target parsed as an absolute http:// URL, when it is one.
  bool ServePortal(const HttpHead& head, const std::optional<HttpUrl>& url);
  void SendRequestUpstream();
  void OnResponseBytes(const char* data, std::size_t size);
  void OriginEndInRelay();
  void RelayTimeout();
  void FinishExchange();
  void BeginUpgradedRelay(const char* rest, std::size_t size);

  // session_auth.cc: who is behind the request ([auth]).
  void Authenticate();
  void OnAuthenticated(const auth::AuthResult& result, std::uint64_t seq);
  void AuthTimeout();
  void Unidentified();
  // 407 with the offered schemes; the connection stays open when the request is whole.
  void Challenge(const std::string& why);
  // Answers the current request with `response` (already logged as record_.status) and reads
  // the next one when the request is whole and the client stays, else closes after it.
  void AnswerAndContinue(std::string response);
  void RecordIdentity();
  // decrypt-to-login: the request is answered with a redirect to the portal's login page.
  void RedirectToLogin();
  // session_login.cc: the portal over HTTPS (CONNECT to portal.host) and its login.
  bool IsPortalHost(const std::string& host) const;
  void StartPortalTls();
  void ServePortalTls();
  void OnPortalBodyBytes(const char* data, std::size_t size);
  void PortalBodyTimeout();
  void HandleLoginForm();
  void OnLoginChecked(const auth::AuthResult& result, std::uint64_t seq, const std::string& user,
                      const std::string& return_url);
  // Answers a portal request over TLS and closes after it.
  void AnswerPortal(const PortalResponse& response);
  // `set_session`: a Set-Cookie value for the session of a sign-in that just succeeded.
  void ShowLoginPage(int status, const std::string& message, bool signed_out,
                     const std::string& set_session = "");

  // session_upstream.cc: the origin's name, its connection, the pool.
  void ResolveUpstream(AfterConnect next);
  void OnResolved(const ResolveResult& result);
  void ConnectUpstream();
  void ConnectTimeout();
  void OnUpstreamConnected(int status);
  bool RetryStaleUpstream();
  void OriginEndWhileIdle();
  // Closes the upstream connection, or gives it to the worker's pool when `reuse` and it is
  // healthy and idle.
  void ReleaseUpstream(bool reuse);
  // Attaches an idle pooled connection for `key`; false if there is none.
  bool TakePooledUpstream(const std::string& key);

  // session_connect.cc: CONNECT, the ClientHello, the decision by SNI, tunnels.
  void OnConnectHead(const HttpHead& head);
  void AnswerConnect();
  void OnHelloBytes(const char* data, std::size_t size);
  void HelloTimeout();
  void PeekClientHello();
  void Decide(const std::string& sni);
  void ResolveSni();
  void Apply(const rules::Decision& decision);
  void Tunnel();
  void TunnelToOrigin(const char* data, std::size_t size);
  void TunnelToClient(const char* data, std::size_t size);
  void ClientEndInTunnel();
  void OriginEndInTunnel();
  void TunnelTimeout();

  // session_decrypt.cc: the origin's handshake, the leaf, the client's handshake.
  void StartDecrypt(const std::string& sni, const std::string& profile);
  void StartUpstreamTls();
  void OnOriginHandshakeBytes(const char*, std::size_t) { UpstreamHandshakeStep(); }
  void OriginEndInHandshake();
  void OriginHandshakeTimeout();
  void UpstreamHandshakeStep();
  void UpstreamTlsFinished();
  void RequestLeaf();
  void LeafTimeout();
  void OnLeaf(const MintService::Outcome& outcome);
  void OnClientHandshakeBytes(const char*, std::size_t) { ClientHandshakeStep(); }
  void ClientHandshakeTimeout();
  void ClientHandshakeStep();
  void ClientEndInHandshake();
  void OnFirstRecord(const char* data, std::size_t size);
  void ClientEndAfterHandshake();
  void FirstRecordTimeout();
  // The client's verdict on its leaf (readiness), once per decrypted connection: recorded in
  // the tracker and in the CONNECT's access record.
  void SettleReadiness(HandshakeOutcome outcome, Evidence evidence, std::string_view alert);
  std::string MirroredName() const;
  std::string TlsSessionKey(const std::string& peer) const;
  SSL_SESSION* ResumableTlsSession() const;

  SessionContext& context_;
  RuntimePtr runtime_;
  std::uint64_t id_;
  Phase phase_ = Phase::kReadRequest;
  net::Clock& clock_;
  std::unique_ptr<LegEvents> client_events_;
  std::unique_ptr<LegEvents> upstream_events_;
  std::unique_ptr<net::Timer> timer_;
  bool closing_ = false;
  bool draining_ = false;
  bool admitted_ = false;  // counted by runtime().connections until destroyed
  std::uint64_t last_activity_ms_ = 0;

  std::string client_address_;
  std::optional<rules::IpAddress> client_ip_;  // client_address_ parsed once, at Start
  std::string local_address_;                  // the proxy address the client connected to
  std::string proxy_unique_id_;  // the PROXY v2 header's unique id, for the log ("" none)
  // The balancer's address the client connected to (a PROXY header's destination): never a
  // destination, or requests would loop through the balancer back to the gateways.
  std::optional<rules::IpAddress> balancer_ip_;
  std::uint16_t local_port_ = 0;
  bool head_timer_armed_ = false;  // request_head runs from a head's first byte
  // The two legs (each with its transport: output through TLS once a leg is decrypted,
  // corked while one read is handled, see Transport).
  Transport::Cork cork_;
  Downstream client_;
  Upstream origin_{cork_, *this};
  Transport& LegOf(Leg leg) { return leg == Leg::kClient ? client_.transport : origin_.transport; }
  const Transport& LegOf(Leg leg) const {
    return leg == Leg::kClient ? client_.transport : origin_.transport;
  }
  std::size_t PendingWrites(Leg leg) const { return LegOf(leg).pending_writes(); }
  std::size_t QueuedBytes(Leg leg) const { return LegOf(leg).queued_bytes(); }
  bool Reading(Leg leg) const;
  // The two directions of an exchange (HTTP messages, or a tunnel's bytes).
  RequestRelay request_{*this, origin_.transport};
  ResponseRelay response_{*this, client_.transport};

  // Who is behind this connection ([auth]): settled by its first request (a CONNECT's user
  // owns every request inside the tunnel), again when a later request carries another
  // credential.
  auth::Identity identity_;
  bool identified_ = false;
  std::string identified_by_;    // the Proxy-Authorization value that identified it ("" none)
  std::uint64_t auth_seq_ = 0;   // the check in flight; a late answer to an older one is dropped
  bool login_required_ = false;  // decrypt-to-login: the decrypted requests go to the login
  bool portal_tls_ = false;      // a CONNECT to portal.host: the portal answers inside the TLS

  // The exchange in progress.
  HttpUrl url_;
  std::uint64_t resolve_id_ = 0;
  std::vector<IpEndpointAddress> addresses_;
  bool keep_client_alive_ = true;
  bool is_connect_ = false;
  // Decryption.
  bool decrypting_ = false;
  std::string tls_host_;  // the name the leaf is minted for and the origin is verified against
  std::string profile_;   // the CA profile that signs
  AfterConnect after_connect_ = AfterConnect::kRequest;
  rules::Decision connect_decision_;  // CONNECT: the decision on the CONNECT host
  rules::Decision sni_decision_;      // and on the SNI, when it names another host
  std::string sni_;                   // validated, lower-case; "" when none
  bool connect_answered_ = false;     // "200 Connection established" sent: no more HTTP errors
  bool hello_seen_ = false;           // the client's ClientHello was read whole
  bool blocking_ = false;             // a block decided by SNI: a page over TLS, then close
  bool untrusted_leaf_ = false;       // the origin failed verification; the client gets a warning
  bool leaf_prefetched_ = false;      // this connection started its leaf's mint early (Prefetch)
  bool verdict_pending_ = false;      // the client has the leaf; its verdict is not known yet
  std::uint64_t handshake_steady_ms_ = 0;  // clock_ when the client's handshake finished
  AccessRecord record_;
  std::uint64_t record_start_ms_ = 0;
  // For the latency histograms (WorkerMetrics), on the steady clock in microseconds: the
  // request's head, the leaf asked for (or its mint started early), the origin's handshake.
  std::uint64_t record_start_us_ = 0;
  std::uint64_t leaf_asked_us_ = 0;
  std::uint64_t origin_tls_start_us_ = 0;
  bool first_byte_timed_ = false;
  bool record_open_ = false;  // an exchange is being recorded and not yet logged
};

}  // namespace mintgate::proxy
