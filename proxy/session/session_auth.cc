// The session's [auth] phase: who sent a request. A Proxy-Authorization credential is checked
// on the authenticator's threads (never on the loop); without one the client address may be a
// static user or a portal login; otherwise auth.unidentified decides: a 407 challenge, a 403,
// no user, or decrypt-to-login (the request goes to the portal's login page).
#include "proxy/http/error_page.h"
#include "proxy/http/form.h"
#include "proxy/session/session.h"
#include "proxy/session/session_context.h"

namespace mintgate::proxy {

void Session::Authenticate() {
  const HttpHeader* credential = request_.head().Find("Proxy-Authorization");
  if (identified_ && (credential == nullptr || credential->value == identified_by_)) {
    // The connection's user (Negotiate authenticates a connection; Basic clients repeat the
    // same header).
    RecordIdentity();
    RouteRequest();
    return;
  }
  Enter(Phase::kAuthenticate, timeouts().auth_ms);
  const std::uint64_t seq = ++auth_seq_;
  SessionContext* context = &context_;
  const std::uint64_t id = id_;
  std::optional<std::string> value;
  if (credential != nullptr) value = credential->value;
  static const rules::IpAddress kNone = *rules::IpAddress::Parse("0.0.0.0");
  runtime().auth->Identify(
      client_address_, client_ip_ ? *client_ip_ : kNone, std::move(value),
      [context](std::function<void()> fn) { context->Post(std::move(fn)); },
      // An answer known at once comes inside Identify: deferred, one order of events.
      [context, id, seq](const auth::AuthResult& result) {
        context->Defer([context, id, seq, result] {
          if (Session* s = context->FindSession(id)) s->OnAuthenticated(result, seq);
        });
      });
}

void Session::OnAuthenticated(const auth::AuthResult& result, std::uint64_t seq) {
  if (phase_ != Phase::kAuthenticate || seq != auth_seq_) return;
  timer_->Stop();
  switch (result.status) {
    case auth::AuthResult::Status::kOk: {
      identity_ = result.identity;
      identified_ = true;
      const HttpHeader* credential = request_.head().Find("Proxy-Authorization");
      identified_by_ = credential != nullptr ? credential->value : std::string();
      login_required_ = false;
      RecordIdentity();
      RouteRequest();
      return;
    }
    case auth::AuthResult::Status::kNoCredential:
      Unidentified();
      return;
    case auth::AuthResult::Status::kFailed:
      record_.auth = "failed";
      if (runtime().config.auth.schemes.empty()) {
        // A credential nobody asked for (no scheme is offered): as if there were none.
        Unidentified();
        return;
      }
      Challenge(result.error);
      return;
    case auth::AuthResult::Status::kUnavailable:
    case auth::AuthResult::Status::kBusy:
      record_.auth = "unavailable";
      Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable,
            "the user could not be identified now: " + result.error, 503});
      return;
  }
}

void Session::AuthTimeout() {
  record_.auth = "unavailable";
  Fail({net::ErrorSource::kInternal, net::ErrorKind::kTimeout,
        "the user could not be identified within " + Seconds(timeouts().auth_ms) +
            " (timeouts.auth)",
        503});
}

void Session::Unidentified() {
  switch (runtime().config.auth.unidentified) {
    case Unidentified::kAllow:
      RecordIdentity();
      RouteRequest();
      return;
    case Unidentified::kDeny:
      record_.auth = "denied";
      record_.action = "auth";
      Fail({net::ErrorSource::kPolicy, net::ErrorKind::kRefused,
            "the gateway could not identify the user, and auth.unidentified = \"deny\"", 403});
      return;
    case Unidentified::kChallenge:
      if (record_.auth.empty()) record_.auth = "required";
      Challenge("proxy authentication required");
      return;
    case Unidentified::kDecryptToLogin:
      record_.auth = "login_required";
      login_required_ = true;
      if (request_.head().method == "CONNECT") {
        // Decided with identity_known = false: decrypted with the login CA, and the first
        // request inside goes to the login page.
        RouteRequest();
      } else {
        RedirectToLogin();
      }
      return;
  }
}

void Session::Challenge(const std::string& why) {
  record_.status = 407;
  record_.action = "auth";
  record_.note = why;
  const bool keep = keep_client_alive_ && request_.complete() && !client_.ended;
  std::string response = ErrorResponse(407, why, !keep);
  // The challenges go right after the status line.
  response.insert(response.find("\r\n") + 2, runtime().auth->ChallengeHeaders());
  AnswerAndContinue(std::move(response));
}

void Session::RedirectToLogin() {
  const PortalConfig& portal = runtime().config.portal;
  const std::string original =
      decrypting_ ? "https://" + tls_host_ +
                        (url_.port == 443 ? std::string() : ":" + std::to_string(url_.port)) +
                        request_.head().target
                  : request_.head().target;
  const std::string location =
      "https://" + portal.host + "/login?return=" + PercentEncode(original);
  record_.status = 302;
  record_.auth = "login_required";
  record_.action = decrypting_ ? "decrypt" : "http";
  if (decrypting_) record_.ca = profile_;
  const std::string body =
      "<!doctype html><title>Sign in</title><p>Sign in to the web gateway: "
      "<a href=\"" +
      EscapeHtml(location) + "\">" + EscapeHtml(location) + "</a>\n";
  // The connection ends after it: the next one, after the login, is decided for the user.
  keep_client_alive_ = false;
  AnswerAndContinue("HTTP/1.1 302 Found\r\nLocation: " + location +
                    "\r\nCache-Control: no-store\r\nContent-Type: text/html; charset=utf-8\r\n"
                    "Content-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

void Session::AnswerAndContinue(std::string response) {
  Write(Leg::kClient, std::move(response));
  LogExchange();
  if (!keep_client_alive_ || !request_.complete() || client_.ended || draining_) {
    CloseWhenFlushed();
    return;
  }
  request_.Resume();
  ReadRequest();
}

void Session::RecordIdentity() {
  if (!identified_) return;
  record_.user = identity_.user;
  record_.groups = identity_.groups;
  record_.auth = identity_.source;
}

}  // namespace mintgate::proxy
