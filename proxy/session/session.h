// One client connection and, while a request is relayed, its upstream connection. An explicit
// state machine (ENGINEERING.md): plain HTTP is ReadRequest -> Resolve -> ConnectUpstream ->
// Relay -> (ReadRequest again on keep-alive) -> Closed. CONNECT and decryption come in later
// steps.
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
#include "proxy/runtime/readiness.h"
#include "proxy/runtime/runtime.h"
#include "proxy/session/transport.h"
#include "proxy/upstream/upstream_pool.h"
#include "rules/rule.h"
#include "tls/tls_engine.h"

namespace mintgate::proxy {

class SessionContext;

// "10 s", "0.5 s": a configured timeout for messages.
std::string Seconds(std::uint64_t ms);

class Session final : private Transport::Events {
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
  enum class State {
    kReadRequest,  // waiting for (more of) a request head
    kResolve,
    kConnectUpstream,
    kRelay,              // request and/or response in flight
    kPeek,               // CONNECT answered 200; reading the ClientHello without consuming it
    kTunnel,             // bytes spliced both ways
    kUpstreamHandshake,  // decrypt: TLS to the origin first, verifying it
    kLeaf,               // decrypt: waiting for the leaf (cache or mint pool)
    kClientHandshake,    // decrypt: TLS with the client, the peeked ClientHello fed first
    kClosing             // waiting for writes to flush, then close
  };
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
  static constexpr std::size_t kHighWatermark = 1 << 20;  // stop reading the other side above
  static constexpr std::size_t kLowWatermark = 256 << 10;
  static constexpr std::size_t kMaxPipelined = 256 << 10;
  class LegEvents;
  class RequestSide;
  class ResponseSide;

  // Phases.
  bool Admit();
  void ReadRequest();
  void OnRequestHead(HttpHead& head);
  void OnConnectHead(const HttpHead& head);
  // `url`: the request target parsed as an absolute http:// URL, when it is one.
  bool ServePortal(const HttpHead& head, const std::optional<HttpUrl>& url);
  void PeekClientHello();
  void Decide(const std::string& sni);
  void ResolveSni();
  void Apply(const rules::Decision& decision);
  void Tunnel();
  void StartDecrypt(const std::string& sni, const std::string& profile);
  void StartUpstreamTls();
  void UpstreamTlsFinished();
  void AnswerConnect();
  void ResolveUpstream(AfterConnect next);
  bool RetryStaleUpstream();
  void UpstreamHandshakeStep();
  void RequestLeaf();
  std::string MirroredName() const;
  std::string TlsSessionKey(const std::string& peer) const;
  SSL_SESSION* ResumableTlsSession() const;
  void OnLeaf(const MintService::Outcome& outcome);
  void ClientHandshakeStep();
  void NoteReadiness(HandshakeOutcome outcome, std::string_view alert);
  void SendRequestUpstream();
  void OnClientBytes(const char* data, std::size_t size);
  void OnUpstreamBytes(const char* data, std::size_t size);
  void RawWrite(Leg leg, std::string data);
  void OnResolved(const ResolveResult& result);
  void ConnectUpstream();
  void OnUpstreamConnected(int status);
  void FinishExchange();
  void BeginUpgradedRelay(const char* rest, std::size_t size);

  // Input.
  void OnClientRead(ssize_t nread, const char* data);
  void OnUpstreamRead(ssize_t nread, const char* data);
  void ProcessClientInput();
  void ForwardRequestBody(const char* data, std::size_t size);
  void ForwardResponseBody(const char* data, std::size_t size);

  // Output and flow control.
  void Write(Leg leg, std::string data);
  void WriteBody(Leg leg, const char* data, std::size_t size);
  void FlushLeg(Leg leg) { LegOf(leg).Flush(); }
  void OnTransportFailed(const net::ConnError& error) override { Fail(error); }
  void OnTransportQueued() override { UpdateReading(); }
  void FlushCorked();
  void OnWritten(Leg leg, int status);
  void UpdateReading();
  void CloseWhenFlushed();
  void Linger();
  void Close();
  void StartTimer(std::uint64_t ms, std::function<void()> fire);
  const TimeoutsConfig& timeouts() const { return runtime_->config.timeouts; }
  // Relay and tunnel: the connection ends after a whole idle period with no byte read on
  // either leg and no write completed. Activity only stamps a time (cheap on every read); the
  // timer checks the stamp when it fires and sleeps again for what is left.
  void StartIdleTimer();
  void Touch() { last_activity_ms_ = clock_.NowMs(); }
  std::uint64_t IdleLimitMs() const;
  void OnIdleTimer();
  void BeginRecord(const std::string& method, const std::string& url);
  void NewRequestParser();
  void LogExchange();

  // Closes the upstream connection, or gives it to the worker's pool when `reuse` and it is
  // healthy and idle.
  void ReleaseUpstream(bool reuse);
  // Attaches an idle pooled connection for `key`; false if there is none.
  bool TakePooledUpstream(const std::string& key);

  SessionContext& context_;
  RuntimePtr runtime_;
  std::uint64_t id_;
  State state_ = State::kReadRequest;
  net::Clock& clock_;
  std::unique_ptr<LegEvents> client_events_;
  std::unique_ptr<LegEvents> upstream_events_;
  std::unique_ptr<net::Stream> client_;
  UpstreamConn* up_ = nullptr;  // owned while upstream_open_ (closed or pooled after)
  std::unique_ptr<net::Timer> timer_;
  bool upstream_open_ = false;
  bool closing_ = false;
  bool draining_ = false;
  bool lingering_ = false;
  bool admitted_ = false;  // counted by runtime().connections until destroyed
  std::uint64_t last_activity_ms_ = 0;

  std::unique_ptr<RequestSide> request_side_;
  std::unique_ptr<ResponseSide> response_side_;
  std::unique_ptr<HttpParser> request_parser_;
  std::unique_ptr<HttpParser> response_parser_;

  std::string client_address_;
  std::optional<rules::IpAddress> client_ip_;  // client_address_ parsed once, at Start
  std::string local_address_;                  // the proxy address the client connected to
  std::uint16_t local_port_ = 0;
  std::string client_in_;  // client bytes not yet consumed by the request parser
  bool request_paused_ = false;
  bool head_timer_armed_ = false;  // the parser stopped after a complete request
  bool client_eof_ = false;
  // The two legs' transports (output through TLS once a leg is decrypted, corked while one
  // read is handled: see Transport).
  class CorkScope;
  Transport::Cork cork_;
  Transport client_leg_{net::ErrorSource::kDownstream, cork_, *this};
  Transport origin_leg_{net::ErrorSource::kUpstream, cork_, *this};
  Transport& LegOf(Leg leg) { return leg == Leg::kClient ? client_leg_ : origin_leg_; }
  const Transport& LegOf(Leg leg) const { return leg == Leg::kClient ? client_leg_ : origin_leg_; }
  std::size_t PendingWrites(Leg leg) const { return LegOf(leg).pending_writes(); }
  std::size_t QueuedBytes(Leg leg) const { return LegOf(leg).queued_bytes(); }
  bool Reading(Leg leg) const;

  // The exchange in progress.
  HttpHead request_;
  HttpUrl url_;
  std::uint64_t resolve_id_ = 0;
  std::vector<IpEndpointAddress> addresses_;
  std::string upstream_backlog_;  // request bytes produced before the upstream connected
  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool response_chunked_ = false;
  bool response_close_delimited_ = false;
  bool upgrading_ = false;  // a 101 answered an Upgrade request: splice once its head is out
  bool keep_client_alive_ = true;
  bool is_connect_ = false;
  // Decryption.
  bool decrypting_ = false;
  std::string tls_host_;  // the name the leaf is minted for and the origin is verified against
  std::string profile_;   // the CA profile that signs
  bool upstream_verified_ = false;
  std::string upstream_problem_;  // why the origin cannot be trusted, for the block page
  bool upstream_reusable_ = true;
  bool upstream_was_pooled_ = false;  // the current upstream came from the pool: a stale one
                                      // is retried once for a request without a body
  bool upstream_retried_ = false;
  bool upstream_idle_ = false;    // attached between requests (decrypt, or pinned), clean
  bool upstream_pinned_ = false;  // carried NTLM/Negotiate: this client's only, closed with it
  AfterConnect after_connect_ = AfterConnect::kRequest;
  rules::Decision connect_decision_;  // CONNECT: the decision on the CONNECT host
  rules::Decision sni_decision_;      // and on the SNI, when it names another host
  std::string sni_;                   // validated, lower-case; "" when none
  bool connect_answered_ = false;     // "200 Connection established" sent: no more HTTP errors
  bool blocking_ = false;             // a block decided by SNI: a page over TLS, then close
  bool untrusted_leaf_ = false;       // the origin failed verification; the client gets a warning
  bool leaf_prefetched_ = false;      // this connection started its leaf's mint early (Prefetch)
  AccessRecord record_;
  std::uint64_t record_start_ms_ = 0;
  bool record_open_ = false;                  // an exchange is being recorded and not yet logged
  std::uint64_t client_bytes_in_logged_ = 0;  // client_'s byte counts at the last record
  std::uint64_t client_bytes_out_logged_ = 0;
};

}  // namespace mintgate::proxy
