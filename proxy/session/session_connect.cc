// The CONNECT phases of Session: refusals before the 200, the ClientHello peek, the decision
// by SNI, tunnelling, and the three steps of decryption (origin, leaf, client). Split from
// session.cc to keep each file readable; same class.
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <iostream>

#include "proxy/http/error_page.h"
#include "proxy/runtime/readiness.h"
#include "proxy/session/session.h"
#include "proxy/session/session_context.h"
#include "rules/canonical_host.h"
#include "rules/connect_decision.h"
#include "rules/host_pattern.h"
#include "rules/log_text.h"
#include "tls/client_hello_peek.h"

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

// CONNECT host:port. Everything that can be refused with a plain HTTP answer is refused
// before the 200: a forbidden port, a rule that blocks the CONNECT host, an unknown host, a
// forbidden destination, an origin that does not accept the connection.
void Session::OnConnectHead(const HttpHead& head) {
  is_connect_ = true;
  keep_client_alive_ = false;
  std::string why;
  std::optional<std::pair<std::string, std::uint16_t>> authority =
      ParseAuthority(head.target, &why);
  if (!authority) {
    Fail({net::ErrorSource::kDownstream, net::ErrorKind::kMalformed,
          why.empty() ? "CONNECT needs a host:port target" : why, 400});
    return;
  }
  url_.host = authority->first;
  url_.port = authority->second;
  const Runtime& rt = runtime();
  if (std::optional<std::string> refused = rt.destinations->CheckConnectPort(url_.port)) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused, *refused, 403});
    return;
  }
  rules::Target target;
  target.host = url_.host;
  target.port = url_.port;
  target.client = client_address_;
  connect_decision_ = rt.rules->Decide(target, rules::Now());
  const rules::Decision& decision = connect_decision_;
  record_.rule = decision.rule;
  record_.action = std::string(rules::ToString(decision.action));
  if (decision.action == rules::Action::kBlock) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
          "blocked by rule \"" + decision.rule + "\": " + decision.reason, 403});
    return;
  }
  if (decision.action == rules::Action::kDecrypt && rt.mint &&
      rt.config.inspection.on_ca_expired == OnCaExpired::kBlock &&
      rt.mint->CheckCa(decision.ca, std::time(nullptr)) == MintService::CaState::kExpired) {
    // Said while a plain HTTP answer is still possible (the SNI could decide otherwise, but
    // a name that differs from the CONNECT host is rare, and the CA has to be renewed anyway).
    Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable,
          "the CA profile \"" + decision.ca + "\" that signs for this site (rule \"" +
              decision.rule +
              "\") has expired; the gateway does not sign with it. Ask the administrator to renew "
              "it.",
          403});
    return;
  }
  // A verified connection to this origin is idle in the pool: the 200 needs no new one (the
  // ClientHello then tells whether it is used).
  if (rt.config.inspection.enabled &&
      context_.pool().HasIdle(UpstreamPool::TlsPrefix(url_.host, url_.port))) {
    AnswerConnect();
    return;
  }
  ResolveUpstream(AfterConnect::kConnectReply);
}

void Session::PeekClientHello() {
  tls::ClientHelloPeek peek;
  const tls::ClientHelloPeek::Status status =
      peek.Examine(reinterpret_cast<const std::uint8_t*>(client_in_.data()), client_in_.size());
  switch (status) {
    case tls::ClientHelloPeek::Status::kNeedMore:
      if (client_in_.size() > tls::ClientHelloPeek::kMaxHelloBytes) {
        Fail(
            {net::ErrorSource::kDownstream, net::ErrorKind::kTooLarge, "ClientHello too large", 0});
      }
      return;
    case tls::ClientHelloPeek::Status::kNotTls:
      // Only the CONNECT host is known: a tunnel rule splices whatever protocol this is, a
      // decrypt rule cannot decrypt what is not TLS.
      Decide("");
      return;
    case tls::ClientHelloPeek::Status::kMalformed:
      std::cerr << "mintgate: " << client_address_ << " CONNECT " << url_.host << ":" << url_.port
                << ": closed: malformed ClientHello (" << peek.error() << ")\n";
      Fail({net::ErrorSource::kDownstream, net::ErrorKind::kMalformed,
            "malformed ClientHello: " + peek.error(), 0});
      return;
    case tls::ClientHelloPeek::Status::kDone:
      break;
  }
  const std::string& raw = peek.info().sni;
  if (raw.empty()) {
    Decide("");
    return;
  }
  // RFC 6066: a host name, never an address, and never a wildcard ("*.com" would get a leaf
  // for every .com site). Nothing else is decided on, minted for, or logged as it came.
  std::string sni = rules::NormalizeHost(raw);
  std::string why;
  if (sni.find_first_of("[]") != std::string::npos || !rules::IsValidHostName(sni, &why)) {
    record_.sni = rules::EscapeForLog(raw);
    record_.note = "invalid SNI: " + (why.empty() ? std::string("not a host name") : why);
    record_.error =
        net::ConnError{net::ErrorSource::kDownstream, net::ErrorKind::kMalformed, "", 0}.Tag();
    // A fatal unrecognized_name alert: what a server says to a name it will not serve.
    static constexpr char kAlert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70};
    Write(Leg::kClient, std::string(kAlert, sizeof kAlert));
    CloseWhenFlushed();
    return;
  }
  Decide(sni);
}

void Session::Decide(const std::string& sni) {
  timer_->Stop();
  sni_ = sni;
  record_.sni = sni;
  if (sni.empty() || sni == url_.host) {
    Apply(connect_decision_);
    return;
  }
  rules::Target target;
  target.host = sni;
  target.port = url_.port;
  target.client = client_address_;
  sni_decision_ = runtime().rules->Decide(target, rules::Now());
  // When the CONNECT host and the SNI differ, both are decided (rules/connect_decision.h); a
  // tunnel chosen by the SNI holds only if the destination is one of the SNI's addresses.
  if (!rules::SniBindingMatters(connect_decision_, sni_decision_)) {
    Apply(rules::CombineConnectDecisions(connect_decision_, sni_decision_, false));
    return;
  }
  if (upstream_open_) {
    ResolveSni();
  } else {
    ResolveUpstream(AfterConnect::kBindSni);
  }
}

// Resolves the SNI to see whether the connected origin address is one of its own.
void Session::ResolveSni() {
  state_ = State::kResolve;
  UpdateReading();
  resolve_id_ = context_.resolver().Resolve(sni_, [this](const ResolveResult& result) {
    resolve_id_ = 0;
    if (state_ != State::kResolve || closing_) return;
    const rules::IpAddress destination = rules::Unmapped(up_->address.ip());
    bool bound = false;
    for (const IpEndpointAddress& a :
         result.ok ? result.addresses : std::vector<IpEndpointAddress>{}) {
      bound = bound || rules::Unmapped(a.ip()) == destination;
    }
    if (!bound) {
      record_.note = "SNI " + sni_ + " does not resolve to " + up_->peer +
                     ": its tunnel rule does not apply; decided by the CONNECT host";
    }
    Apply(rules::CombineConnectDecisions(connect_decision_, sni_decision_, bound));
  });
}

// Acts on the decision for this CONNECT (after the 200).
void Session::Apply(const rules::Decision& decision) {
  const std::string& sni = sni_;

  record_.rule = decision.rule;
  record_.action = std::string(rules::ToString(decision.action));
  if (decision.action == rules::Action::kTunnel) {
    if (upstream_open_) {
      Tunnel();
    } else {
      ResolveUpstream(AfterConnect::kTunnel);
    }
    return;
  }
  const auto& mint = runtime().mint;
  if (decision.action == rules::Action::kDecrypt && mint &&
      mint->CheckCa(decision.ca, std::time(nullptr)) == MintService::CaState::kExpired) {
    record_.note = "CA profile \"" + decision.ca + "\" has expired";
    if (runtime().config.inspection.on_ca_expired == OnCaExpired::kTunnel) {
      record_.action = "tunnel";
      record_.note += ": tunnelled (inspection.on_ca_expired)";
      if (upstream_open_) {
        Tunnel();
      } else {
        ResolveUpstream(AfterConnect::kTunnel);
      }
    } else {
      record_.action = "block";
      // After the 200 nothing can be said that the client would trust.
      Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable, "", 0});
    }
    return;
  }
  if (decision.action == rules::Action::kDecrypt && !decision.ca.empty() && mint &&
      mint->Find(decision.ca) != nullptr) {
    if (decision.ca != decision.configured_ca)
      mint->NoteCutover(decision.configured_ca, decision.ca);
    std::string profile = decision.ca;
    const Runtime& rt = runtime();
    if (rt.canary && !rt.canary->empty()) {
      // Before a cutover, canary clients get leaves from the new profile so that readiness
      // is measured on real traffic; one seen rejecting it falls back (if so configured).
      if (client_ip_) {
        std::string chosen = rt.canary->Choose(*client_ip_, decision.ca, rt.readiness.get());
        if (chosen != profile && mint->Find(chosen) != nullptr &&
            mint->CheckCa(chosen, std::time(nullptr)) != MintService::CaState::kExpired) {
          record_.note = "canary: " + chosen + " instead of " + profile;
          profile = std::move(chosen);
        }
      }
    }
    StartDecrypt(sni, profile);
    return;
  }
  const std::string& block_ca = runtime().config.inspection.default_ca;
  const tls::CertAuthority* block_signer = mint ? mint->Find(block_ca) : nullptr;
  if (decision.action == rules::Action::kBlock && block_signer != nullptr &&
      block_signer->not_after() > std::time(nullptr)) {
    // Decided by the SNI after the 200: the refusal has to be a page over TLS.
    blocking_ = true;
    upstream_problem_ = "blocked by rule \"" + decision.rule + "\"";
    profile_ = block_ca;
    tls_host_ = sni.empty() ? url_.host : sni;
    decrypting_ = true;
    ReleaseUpstream(false);
    RequestLeaf();
    return;
  }
  // Decrypt with a profile that is not loaded, or a block page with no CA to sign it: closed
  // rather than passed on uninspected.
  Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable,
        "rule \"" + decision.rule + "\" says " + std::string(rules::ToString(decision.action)) +
            " but no CA can sign for " + (sni.empty() ? url_.host : sni),
        0});
}

void Session::Tunnel() {
  state_ = State::kTunnel;
  StartIdleTimer();
  std::string peeked;
  peeked.swap(client_in_);
  Write(Leg::kUpstream, std::move(peeked));
  UpdateReading();
}

// Decrypt: the origin first (connect done, now TLS with verification), then the leaf, then
// the client's handshake with the ClientHello it already sent.
void Session::StartDecrypt(const std::string& sni, const std::string& profile) {
  decrypting_ = true;
  profile_ = profile;
  record_.ca = profile;
  tls_host_ = sni.empty() ? url_.host : sni;
  for (char& c : tls_host_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!upstream_open_ &&
      TakePooledUpstream(UpstreamPool::TlsKey(url_.host, url_.port, tls_host_))) {
    // Only verified connections are pooled, under the name they were verified for.
    upstream_verified_ = true;
    UpstreamTlsFinished();
    return;
  }
  // The origin's handshake comes first. When the leaf's name cannot depend on the origin's
  // certificate, its mint starts now and runs beside that handshake; RequestLeaf then finds
  // the leaf cached or joins the mint. The client still sees it only if the origin passes
  // verification (otherwise it gets the untrusted leaf or a block page, as always).
  if (!runtime().config.mint.mirror_wildcards || WildcardFor(tls_host_).empty()) {
    leaf_prefetched_ = runtime().mint->Prefetch(profile_, tls_host_);
  }
  if (upstream_open_) {
    StartUpstreamTls();
  } else {
    ResolveUpstream(AfterConnect::kDecryptTls);
  }
}

void Session::StartUpstreamTls() {
  up_->key = UpstreamPool::TlsKey(url_.host, url_.port, tls_host_);
  upstream_verified_ = false;
  upstream_problem_.clear();
  origin_leg_.tls.emplace(
      tls::TlsEngine::Client(context_.tls().client(), tls_host_, tls_host_, ResumableTlsSession()));
  state_ = State::kUpstreamHandshake;
  StartTimer(timeouts().tls_handshake_ms, [this] {
    Session* s = this;
    if (s->state_ != State::kUpstreamHandshake) return;
    s->upstream_problem_ = "the TLS handshake with the origin timed out";
    s->UpstreamTlsFinished();
  });
  UpstreamHandshakeStep();
  UpdateReading();
}

void Session::UpstreamHandshakeStep() {
  const tls::TlsEngine::Status status = origin_leg_.tls->Handshake();
  RawWrite(Leg::kUpstream, origin_leg_.tls->TakeCiphertext());
  if (status == tls::TlsEngine::Status::kWantMore) return;
  if (status == tls::TlsEngine::Status::kError) {
    upstream_problem_ = "TLS with the origin failed: " + origin_leg_.tls->error();
  } else if (origin_leg_.tls->verify_result() != X509_V_OK) {
    upstream_problem_ =
        "the origin's certificate failed verification: " + origin_leg_.tls->verify_reason();
  } else {
    upstream_verified_ = true;
    // Only a full handshake showed this name's own certificate (see ResumableTlsSession).
    if (SSL_session_reused(origin_leg_.tls->ssl()) == 0) {
      context_.pool().NoteVerified(tls_host_ + ":" + std::to_string(url_.port));
    }
  }
  UpstreamTlsFinished();
}

// The origin's side is settled (verified, or why not): before the client's handshake the
// leaf comes next; between two decrypted requests the waiting request goes out, or a page.
void Session::UpstreamTlsFinished() {
  timer_->Stop();
  record_.upstream_verify = upstream_verified_ ? "ok" : upstream_problem_;
  if (client_leg_.tls && client_leg_.tls->handshake_done()) {
    if (upstream_verified_) {
      SendRequestUpstream();
    } else {
      Fail({net::ErrorSource::kOriginTls, net::ErrorKind::kVerify, upstream_problem_, 502});
    }
    return;
  }
  RequestLeaf();
}

// The name the leaf is minted for: the origin's own wildcard when that, not the exact host, is
// what its verified certificate covers the host with (so the client sees the names the server
// has, and one cached leaf serves every host under it), else the host.
std::string Session::MirroredName() const {
  if (!origin_leg_.tls || origin_leg_.tls->ssl() == nullptr) return tls_host_;
  X509* origin = SSL_get0_peer_certificate(origin_leg_.tls->ssl());
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
  X509* origin = origin_leg_.tls ? SSL_get0_peer_certificate(origin_leg_.tls->ssl()) : nullptr;
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
  if (wildcard.empty() || up_ == nullptr || !context_.pool().VerifiedRecently(tls_host_ + port)) {
    return nullptr;
  }
  SSL_SESSION* shared = context_.pool().TlsSession(wildcard + port + "@" + up_->peer);
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
  state_ = State::kLeaf;
  // Armed before asking: a cached leaf answers at once and the handshake sets its own timer.
  StartTimer(timeouts().leaf_wait_ms, [this] {
    Session* s = this;
    if (s->state_ == State::kLeaf) {
      s->Fail({net::ErrorSource::kInternal, net::ErrorKind::kTimeout,
               "no leaf certificate within " + Seconds(s->timeouts().leaf_wait_ms) +
                   " (timeouts.leaf_wait)",
               0});
    }
  });
  UpdateReading();
  SessionContext* context = &context_;
  const std::uint64_t id = id_;
  // An origin that failed verification, in "untrusted" mode, gets a leaf no client trusts,
  // so the browser shows its own warning; everything else a leaf from the rule's profile.
  const bool untrusted =
      !blocking_ && !upstream_verified_ &&
      runtime().config.inspection.upstream_cert_errors == UpstreamCertErrors::kUntrusted &&
      origin_leg_.tls && origin_leg_.tls->handshake_done();
  if (untrusted) record_.ca = "untrusted";
  untrusted_leaf_ = untrusted;
  runtime().mint->GetLeaf(
      profile_,
      untrusted || !upstream_verified_ || !runtime().config.mint.mirror_wildcards ? tls_host_
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

void Session::OnLeaf(const MintService::Outcome& outcome) {
  if (state_ != State::kLeaf || closing_) return;
  // A mint this connection started ahead of time is still its miss.
  record_.cert_cache = leaf_prefetched_ && !untrusted_leaf_ ? "miss" : outcome.cache;
  if (!outcome.leaf.ok()) {
    Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable,
          "no leaf for " + tls_host_ + ": " + outcome.leaf.error(), 0});
    return;
  }
  client_leg_.tls.emplace(tls::TlsEngine::Server(context_.tls().server(), **outcome.leaf));
  client_leg_.tls->FeedCiphertext(client_in_.data(), client_in_.size());
  client_in_.clear();
  state_ = State::kClientHandshake;
  StartTimer(timeouts().tls_handshake_ms, [this] {
    Session* s = this;
    if (s->state_ == State::kClientHandshake) {
      s->Fail({net::ErrorSource::kClientTls, net::ErrorKind::kTimeout,
               "client TLS handshake timed out", 0});
    }
  });
  ClientHandshakeStep();
  UpdateReading();
}

void Session::ClientHandshakeStep() {
  const tls::TlsEngine::Status status = client_leg_.tls->Handshake();
  RawWrite(Leg::kClient, client_leg_.tls->TakeCiphertext());
  if (status == tls::TlsEngine::Status::kWantMore) return;
  if (status == tls::TlsEngine::Status::kError) {
    // Typically the client does not trust the CA that signed the leaf (alert unknown_ca).
    record_.note = "client TLS: " + client_leg_.tls->error();
    record_.error =
        net::ConnError{net::ErrorSource::kClientTls, net::ErrorKind::kRefused, "", 0}.Tag();
    const std::string_view alert = PeerCertificateAlert(client_leg_.tls->error());
    if (!alert.empty()) NoteReadiness(HandshakeOutcome::kRejected, alert);
    CloseWhenFlushed();
    return;
  }
  timer_->Stop();
  NoteReadiness(HandshakeOutcome::kTrusted, "");
  std::string early = client_leg_.tls->ReadPlaintext();
  if (blocking_) {
    record_.status = 403;
    Write(Leg::kClient, ErrorResponse(403, upstream_problem_, true));
    LogExchange();
    CloseWhenFlushed();
    return;
  }
  if (!upstream_verified_ && !untrusted_leaf_) {
    // Never show the client a trusted certificate for content the origin could not prove
    // it owns: answer with a page that names the reason instead of relaying anything.
    record_.status = 502;
    Write(Leg::kClient, ErrorResponse(502, upstream_problem_, true));
    LogExchange();
    CloseWhenFlushed();
    return;
  }
  NewRequestParser();
  request_paused_ = false;
  keep_client_alive_ = !draining_;
  LogExchange();  // the CONNECT itself
  ReadRequest();
  if (!early.empty()) OnClientBytes(early.data(), early.size());
}

// Client readiness: which clients accept leaves from which profile. Untrusted leaves are
// meant to be rejected and say nothing about the client.
void Session::NoteReadiness(HandshakeOutcome outcome, std::string_view alert) {
  const auto& tracker = runtime().readiness;
  if (!tracker || untrusted_leaf_ || !client_ip_) return;
  tracker->Record(*client_ip_, profile_, outcome, alert, std::time(nullptr));
}

}  // namespace mintgate::proxy
