// The CONNECT phases of Session: refusals before the 200, the ClientHello peek, the decision
// by SNI (and binding a tunnel the SNI chose to its addresses), and tunnels.
#include <algorithm>
#include <cctype>
#include <ctime>
#include <iostream>

#include "proxy/http/error_page.h"
#include "proxy/session/session.h"
#include "proxy/session/session_context.h"
#include "rules/canonical_host.h"
#include "rules/connect_decision.h"
#include "rules/host_pattern.h"
#include "rules/log_text.h"
#include "tls/client_hello_peek.h"

namespace mintgate::proxy {

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
  if (IsPortalHost(url_.host)) {
    // The portal over HTTPS (its login page): answered here, under a leaf from the login CA.
    portal_tls_ = true;
    record_.action = "portal";
    AnswerConnect();
    return;
  }
  if (std::optional<std::string> refused = rt.destinations->CheckConnectPort(url_.port)) {
    Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused, *refused, 403});
    return;
  }
  connect_decision_ = DecideOn(url_.host);
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

void Session::AnswerConnect() {
  connect_answered_ = true;
  record_.status = 200;
  Write(Leg::kClient, "HTTP/1.1 200 Connection established\r\n\r\n");
  Enter(Phase::kPeek, timeouts().tls_handshake_ms);
}

void Session::OnHelloBytes(const char* data, std::size_t size) {
  client_.in.append(data, size);
  PeekClientHello();
}

void Session::HelloTimeout() {
  Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
        "no ClientHello within " + Seconds(timeouts().tls_handshake_ms), 0});
}

void Session::PeekClientHello() {
  tls::ClientHelloPeek peek;
  const tls::ClientHelloPeek::Status status =
      peek.Examine(reinterpret_cast<const std::uint8_t*>(client_.in.data()), client_.in.size());
  switch (status) {
    case tls::ClientHelloPeek::Status::kNeedMore:
      if (client_.in.size() > tls::ClientHelloPeek::kMaxHelloBytes) {
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
  hello_seen_ = true;
  sni_ = sni;
  record_.sni = sni;
  if (portal_tls_) {
    StartPortalTls();
    return;
  }
  if (sni.empty() || sni == url_.host) {
    Apply(connect_decision_);
    return;
  }
  sni_decision_ = DecideOn(sni);
  // When the CONNECT host and the SNI differ, both are decided (rules/connect_decision.h); a
  // tunnel chosen by the SNI holds only if the destination is one of the SNI's addresses.
  if (!rules::SniBindingMatters(connect_decision_, sni_decision_)) {
    Apply(rules::CombineConnectDecisions(connect_decision_, sni_decision_, false));
    return;
  }
  if (origin_.open) {
    ResolveSni();
  } else {
    ResolveUpstream(AfterConnect::kBindSni);
  }
}

// Resolves the SNI to see whether the connected origin address is one of its own.
void Session::ResolveSni() {
  Enter(Phase::kBindSni);
  resolve_id_ = context_.resolver().Resolve(sni_, [this](const ResolveResult& result) {
    resolve_id_ = 0;
    if (phase_ != Phase::kBindSni) return;
    const rules::IpAddress destination = rules::Unmapped(origin_.conn->address.ip());
    bool bound = false;
    for (const IpEndpointAddress& a :
         result.ok ? result.addresses : std::vector<IpEndpointAddress>{}) {
      bound = bound || rules::Unmapped(a.ip()) == destination;
    }
    if (!bound) {
      record_.note = "SNI " + sni_ + " does not resolve to " + origin_.conn->peer +
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
    if (origin_.open) {
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
      if (origin_.open) {
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
    origin_.problem = "blocked by rule \"" + decision.rule + "\"";
    profile_ = block_ca;
    record_.ca = block_ca;
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
  Touch();
  Enter(Phase::kTunnel, timeouts().tunnel_idle_ms);
  std::string peeked;
  peeked.swap(client_.in);
  request_.Splice(peeked.data(), peeked.size());
  UpdateReading();
}

// A tunnel's bytes, and an upgraded connection's (through the TLS engines when decrypted).
void Session::TunnelToOrigin(const char* data, std::size_t size) { request_.Splice(data, size); }

void Session::TunnelToClient(const char* data, std::size_t size) { response_.Splice(data, size); }

// The client is done sending: the end is passed on and the other way keeps relaying.
void Session::ClientEndInTunnel() {
  FlushLeg(Leg::kUpstream);  // what the client sent before its end goes first
  if (!origin_.open || !origin_.conn->stream->Shutdown()) CloseWhenFlushed();
}

// The origin is done: what it sent is flushed, then both close.
void Session::OriginEndInTunnel() { CloseWhenFlushed(); }

void Session::TunnelTimeout() {
  if (StillActive(timeouts().tunnel_idle_ms)) return;
  Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
        "tunnel idle for " + Seconds(timeouts().tunnel_idle_ms) + " (timeouts.tunnel_idle)", 0});
}

}  // namespace mintgate::proxy
