// The decrypting phases of Session: TLS with the origin first (verified, resumed where that is
// safe), then the leaf (cache or mint pool), then the client's handshake with the ClientHello
// it already sent; and the readiness this tells about the client.
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "proxy/http/error_page.h"
#include "proxy/runtime/readiness.h"
#include "proxy/session/session.h"
#include "proxy/session/session_context.h"

namespace mintgate::proxy {
namespace {

// "*.example.com" for "www.example.com"; empty when no wildcard may stand for the host's
// first label: a single label, a name directly under a top-level domain, an IP literal.
std::string WildcardFor(const std::string& host) {
  const std::size_t dot = host.find('.');
  if (dot == std::string::npos || dot == 0 || host.find(':') != std::string::npos) return {};
  if (std::all_of(host.begin(), host.end(),
                  [](char c) { return c == '.' || (c >= '0' && c <= '9'); })) {
    return {};
  }
  std::string wildcard = "*" + host.substr(dot);
  if (std::count(wildcard.begin(), wildcard.end(), '.') < 2) return {};  // not *.com
  return wildcard;
}

// Whether the certificate's DNS names include the host itself, and the wildcard.
struct DnsNameMatch {
  bool exact = false;
  bool wildcard = false;
};
DnsNameMatch MatchDnsNames(X509* cert, const std::string& host, const std::string& wildcard) {
  DnsNameMatch match;
  GENERAL_NAMES* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS) continue;
    const ASN1_IA5STRING* dns = name->d.dNSName;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                      static_cast<std::size_t>(ASN1_STRING_length(dns)));
    for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    match.exact = match.exact || value == host;
    match.wildcard = match.wildcard || value == wildcard;
  }
  GENERAL_NAMES_free(names);
  return match;
}

}  // namespace

// Decrypt: the origin first (connect done, now TLS with verification), then the leaf, then
// the client's handshake with the ClientHello it already sent.
void Session::StartDecrypt(const std::string& sni, const std::string& profile) {
  decrypting_ = true;
  profile_ = profile;
  record_.ca = profile;
  tls_host_ = sni.empty() ? url_.host : sni;
  for (char& c : tls_host_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!origin_.open && TakePooledUpstream(UpstreamPool::TlsKey(url_.host, url_.port, tls_host_))) {
    // Only verified connections are pooled, under the name they were verified for.
    origin_.verified = true;
    UpstreamTlsFinished();
    return;
  }
  // The origin's handshake comes first. When the leaf's name cannot depend on the origin's
  // certificate, its mint starts now and runs beside that handshake; RequestLeaf then finds
  // the leaf cached or joins the mint. The client still sees it only if the origin passes
  // verification (otherwise it gets the untrusted leaf or a block page, as always).
  if (!runtime().config.mint.mirror_wildcards || WildcardFor(tls_host_).empty()) {
    leaf_prefetched_ = runtime().mint->Prefetch(profile_, tls_host_);
    if (leaf_prefetched_) leaf_asked_us_ = MonotonicUs();
  }
  if (origin_.open) {
    StartUpstreamTls();
  } else {
    ResolveUpstream(AfterConnect::kDecryptTls);
  }
}

void Session::StartUpstreamTls() {
  origin_.conn->key = UpstreamPool::TlsKey(url_.host, url_.port, tls_host_);
  origin_.verified = false;
  origin_.problem.clear();
  origin_.transport.tls.emplace(
      tls::TlsEngine::Client(context_.tls().client(), tls_host_, tls_host_, ResumableTlsSession()));
  origin_tls_start_us_ = MonotonicUs();
  Enter(Phase::kOriginHandshake, timeouts().tls_handshake_ms);
  UpstreamHandshakeStep();
}

void Session::OriginHandshakeTimeout() {
  origin_.problem = "the TLS handshake with the origin timed out";
  origin_.problem_kind = net::ErrorKind::kTimeout;
  NoteOriginFailure(OriginFailure::kTimeout);
  UpstreamTlsFinished();
}

void Session::OriginEndInHandshake() {
  OriginGone();
  origin_.problem = "the origin closed the connection during the TLS handshake";
  origin_.problem_kind = net::ErrorKind::kClosed;
  NoteOriginFailure(OriginFailure::kClosed);
  UpstreamTlsFinished();
}

void Session::UpstreamHandshakeStep() {
  const tls::TlsEngine::Status status = origin_.transport.tls->Handshake();
  RawWrite(Leg::kUpstream, origin_.transport.tls->TakeCiphertext());
  if (status == tls::TlsEngine::Status::kWantMore) return;
  if (status == tls::TlsEngine::Status::kError) {
    origin_.problem = "TLS with the origin failed: " + origin_.transport.tls->error();
    origin_.problem_kind = net::ErrorKind::kRefused;
    NoteOriginFailure(OriginFailure::kHandshake);
  } else if (origin_.transport.tls->verify_result() != X509_V_OK) {
    origin_.problem =
        "the origin's certificate failed verification: " + origin_.transport.tls->verify_reason();
    origin_.problem_kind = net::ErrorKind::kVerify;
    NoteOriginFailure(OriginFailureOf(origin_.transport.tls->verify_result()));
  } else {
    origin_.verified = true;
    metrics().origin_handshake.ObserveUs(MonotonicUs() - origin_tls_start_us_);
    // Only a full handshake showed this name's own certificate (see ResumableTlsSession).
    if (SSL_session_reused(origin_.transport.tls->ssl()) == 0) {
      context_.pool().NoteVerified(tls_host_ + ":" + std::to_string(url_.port));
    }
  }
  UpstreamTlsFinished();
}

// The origin's side is settled (verified, or why not): before the client's handshake the
// leaf comes next; between two decrypted requests the waiting request goes out, or a page.
void Session::UpstreamTlsFinished() {
  timer_->Stop();
  record_.upstream_verify = origin_.verified ? "ok" : origin_.problem;
  if (client_.transport.encrypted()) {
    if (origin_.verified) {
      SendRequestUpstream();
    } else {
      Fail({net::ErrorSource::kOriginTls, origin_.problem_kind, origin_.problem, 502});
    }
    return;
  }
  RequestLeaf();
}

// The name the leaf is minted for: the origin's own wildcard when that, not the exact host, is
// what its verified certificate covers the host with (so the client sees the names the server
// has, and one cached leaf serves every host under it), else the host.
std::string Session::MirroredName() const {
  if (!origin_.transport.tls || origin_.transport.tls->ssl() == nullptr) return tls_host_;
  X509* origin = SSL_get0_peer_certificate(origin_.transport.tls->ssl());
  const std::string wildcard = WildcardFor(tls_host_);
  if (origin == nullptr || wildcard.empty()) return tls_host_;
  const DnsNameMatch match = MatchDnsNames(origin, tls_host_, wildcard);
  return match.wildcard && !match.exact ? wildcard : tls_host_;
}

// Where a verified origin's TLS session is remembered. When its certificate covers the host
// through a wildcard, under that wildcard and the origin's address: any host under the
// wildcard served from there may resume it (RFC 8446 4.6.1 allows resuming for another name
// the certificate is valid for), so a new host skips the certificate, its chain and the
// signature check. Otherwise under the host.
std::string Session::TlsSessionKey(const std::string& peer) const {
  const std::string port = ":" + std::to_string(url_.port);
  const std::string wildcard = WildcardFor(tls_host_);
  X509* origin =
      origin_.transport.tls ? SSL_get0_peer_certificate(origin_.transport.tls->ssl()) : nullptr;
  if (origin != nullptr && !wildcard.empty() &&
      MatchDnsNames(origin, tls_host_, wildcard).wildcard) {
    return wildcard + port + "@" + peer;
  }
  return tls_host_ + port;
}

// A session to offer the origin: the host's own, else one its wildcard shares at this address
// whose certificate is valid for the host (checked again here: the key alone proves nothing),
// and only for a host whose own certificate was verified in a full handshake recently: the
// origin may serve this name with another certificate (from an unknown CA, say), which a
// resumed handshake would never show.
SSL_SESSION* Session::ResumableTlsSession() const {
  const std::string port = ":" + std::to_string(url_.port);
  if (SSL_SESSION* own = context_.pool().TlsSession(tls_host_ + port)) return own;
  const std::string wildcard = WildcardFor(tls_host_);
  if (wildcard.empty() || origin_.conn == nullptr ||
      !context_.pool().VerifiedRecently(tls_host_ + port)) {
    return nullptr;
  }
  SSL_SESSION* shared = context_.pool().TlsSession(wildcard + port + "@" + origin_.conn->peer);
  X509* cert = shared != nullptr ? SSL_SESSION_get0_peer(shared) : nullptr;
  if (cert == nullptr ||
      X509_check_host(cert, tls_host_.data(), tls_host_.size(),
                      X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                      nullptr) != 1) {
    return nullptr;
  }
  return shared;
}

void Session::RequestLeaf() {
  Enter(Phase::kLeaf, timeouts().leaf_wait_ms);
  if (!leaf_prefetched_) leaf_asked_us_ = MonotonicUs();
  SessionContext* context = &context_;
  const std::uint64_t id = id_;
  // An origin that failed verification, in "untrusted" mode, gets a leaf no client trusts,
  // so the browser shows its own warning; everything else a leaf from the rule's profile.
  const bool untrusted =
      !blocking_ && !origin_.verified &&
      runtime().config.inspection.upstream_cert_errors == UpstreamCertErrors::kUntrusted &&
      origin_.transport.tls && origin_.transport.tls->handshake_done();
  if (untrusted) record_.ca = "untrusted";
  untrusted_leaf_ = untrusted;
  runtime().mint->GetLeaf(
      profile_,
      untrusted || !origin_.verified || !runtime().config.mint.mirror_wildcards ? tls_host_
                                                                                : MirroredName(),
      untrusted ? tls::TrustMode::kUntrusted : tls::TrustMode::kTrusted,
      [context](std::function<void()> fn) { context->Post(std::move(fn)); },
      // A cached leaf answers inside GetLeaf: deferred, so that OnLeaf never runs inside
      // this call (one order of events whether the leaf was cached or minted).
      [context, id](const MintService::Outcome& outcome) {
        context->Defer([context, id, outcome] {
          if (Session* s = context->FindSession(id)) s->OnLeaf(outcome);
        });
      });
}

void Session::LeafTimeout() {
  Fail({net::ErrorSource::kInternal, net::ErrorKind::kTimeout,
        "no leaf certificate within " + Seconds(timeouts().leaf_wait_ms) + " (timeouts.leaf_wait)",
        0});
}

void Session::OnLeaf(const MintService::Outcome& outcome) {
  if (phase_ != Phase::kLeaf) return;
  // A mint this connection started ahead of time is still its miss.
  record_.cert_cache = leaf_prefetched_ && !untrusted_leaf_ ? "miss" : outcome.cache;
  if (record_.cert_cache == "miss" && outcome.leaf.ok()) {
    metrics().leaf_mint.ObserveUs(MonotonicUs() - leaf_asked_us_);
  }
  if (!outcome.leaf.ok()) {
    Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable,
          "no leaf for " + tls_host_ + ": " + outcome.leaf.error(), 0});
    return;
  }
  client_.transport.tls.emplace(tls::TlsEngine::Server(context_.tls().server(), **outcome.leaf));
  // Untrusted leaves are meant to be rejected and say nothing about the client.
  verdict_pending_ = runtime().readiness && !untrusted_leaf_ && client_ip_;
  client_.transport.tls->FeedCiphertext(client_.in.data(), client_.in.size());
  client_.in.clear();
  Enter(Phase::kClientHandshake, timeouts().tls_handshake_ms);
  ClientHandshakeStep();
}

void Session::ClientHandshakeTimeout() {
  Fail({net::ErrorSource::kClientTls, net::ErrorKind::kTimeout, "client TLS handshake timed out",
        0});
}

void Session::ClientHandshakeStep() {
  const tls::TlsEngine::Status status = client_.transport.tls->Handshake();
  RawWrite(Leg::kClient, client_.transport.tls->TakeCiphertext());
  if (status == tls::TlsEngine::Status::kWantMore) return;
  if (status == tls::TlsEngine::Status::kError) {
    metrics().client_handshakes_failed.Add();
    NoteClientAlert(client_.transport.tls->error());
    // Typically the client does not trust the CA that signed the leaf (alert unknown_ca).
    // Other alerts (no common cipher, a protocol version) say nothing about the leaf.
    record_.note = "client TLS: " + client_.transport.tls->error();
    record_.error =
        net::ConnError{net::ErrorSource::kClientTls, net::ErrorKind::kRefused, "", 0}.Tag();
    const std::string_view alert = PeerCertificateAlert(client_.transport.tls->error());
    if (!alert.empty()) SettleReadiness(HandshakeOutcome::kRejected, Evidence::kAlert, alert);
    CloseWhenFlushed();
    return;
  }
  handshake_steady_ms_ = clock_.NowMs();
  metrics().client_handshakes_ok.Add();
  // The handshake alone proves nothing: many clients check the certificate after it and
  // then close. The first record the client sends decides.
  Enter(Phase::kFirstRecord, timeouts().client_idle_ms);
  std::string early = client_.transport.tls->ReadPlaintext();
  RawWrite(Leg::kClient, client_.transport.tls->TakeCiphertext());
  if (!early.empty()) OnFirstRecord(early.data(), early.size());
  if (phase_ != Phase::kFirstRecord || !client_.transport.tls->closed()) return;
  // Finished, then at once close_notify or an alert, in the same read.
  const std::string error = client_.transport.tls->error();
  NoteClientAlert(error);
  if (const std::string alert = PeerAlert(error); !alert.empty()) {
    SettleReadiness(HandshakeOutcome::kRejected, Evidence::kAlert, alert);
  }
  client_.ended = true;
  client_.stream->StopReading();
  ClientEndAfterHandshake();
}

// The client closed before finishing its handshake, after our certificate and without an
// alert: it refused the leaf without saying why (Java, Node).
void Session::ClientEndInHandshake() {
  SettleReadiness(
      HandshakeOutcome::kRejected,
      client_.reset ? Evidence::kResetDuringHandshake : Evidence::kClosedDuringHandshake, "");
  Fail({net::ErrorSource::kClientTls, net::ErrorKind::kClosed,
        client_.reset ? "the client reset the connection during the TLS handshake"
                      : "the client closed the connection during the TLS handshake",
        0});
}

// The first application data: the client accepted the leaf. Then the CONNECT is logged and
// requests are read (or, for a block by SNI or an origin that failed verification, the page
// answers the first request).
void Session::OnFirstRecord(const char* data, std::size_t size) {
  SettleReadiness(HandshakeOutcome::kTrusted, Evidence::kApplicationData, "");
  if (blocking_) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused, origin_.problem, 403});
    return;
  }
  if (!origin_.verified && !untrusted_leaf_ && !portal_tls_) {
    // Never show the client a trusted certificate for content the origin could not prove
    // it owns: answer with a page that names the reason instead of relaying anything.
    Fail({net::ErrorSource::kOriginTls, origin_.problem_kind, origin_.problem, 502});
    return;
  }
  request_.NewParser();
  keep_client_alive_ = !draining_;
  LogExchange();  // the CONNECT itself
  ReadRequest();
  BufferClientBytes(data, size);
}

// Handshake finished, then a close (FIN or close_notify) or a reset with nothing sent: the
// client checked the certificate after the handshake and refused it (wget and other GnuTLS
// programs). Logged with the CONNECT.
void Session::ClientEndAfterHandshake() {
  SettleReadiness(HandshakeOutcome::kRejected,
                  client_.reset ? Evidence::kResetAfterHandshake : Evidence::kClosedAfterHandshake,
                  "");
  Fail({net::ErrorSource::kClientTls, net::ErrorKind::kClosed,
        std::string("the client ") + (client_.reset ? "reset" : "closed") +
            " the connection after the TLS handshake without sending a request",
        0});
}

// No data within client_idle after the handshake: no verdict (the client neither used nor
// refused the leaf); the connection ends like an idle keep-alive one, logged.
void Session::FirstRecordTimeout() {
  Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
        "no request within " + Seconds(timeouts().client_idle_ms) +
            " of the TLS handshake (timeouts.client_idle)",
        0});
}

void Session::SettleReadiness(HandshakeOutcome outcome, Evidence evidence, std::string_view alert) {
  if (!verdict_pending_) return;
  verdict_pending_ = false;
  Verdict verdict;
  verdict.outcome = outcome;
  verdict.evidence = evidence;
  verdict.alert = alert;
  verdict.sni = sni_;
  if (identified_) verdict.user = identity_.user;
  verdict.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  verdict.steady_ms = clock_.NowMs();
  verdict.handshake_steady_ms = handshake_steady_ms_;
  const bool counted = runtime().readiness->Record(*client_ip_, profile_, verdict);
  std::string text(EvidenceName(evidence));
  if (!alert.empty()) text += ":" + std::string(alert);
  if (counted) {
    record_.readiness = outcome == HandshakeOutcome::kTrusted ? "trusts" : "rejects";
  } else {
    record_.readiness = "unused";  // a spare connection: the client used another one
  }
  metrics().verdicts[!counted ? 2 : outcome == HandshakeOutcome::kTrusted ? 0 : 1].Add();
  record_.evidence = std::move(text);
}

}  // namespace mintgate::proxy
