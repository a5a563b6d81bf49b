// The portal over HTTPS: a CONNECT to portal.host is answered by the gateway itself, under a
// leaf from the login CA (auth.login_ca, else inspection.default_ca), never sent anywhere.
// Inside it the portal serves its pages, and /login and /logout bind a client address to a
// user after a password check (decrypt-to-login's surrogate identity). The form carries a CSRF
// token that must match its cookie; failures are throttled per address and per user name; the
// password is never logged or kept.
#include <strings.h>

#include <chrono>
#include <cstring>
#include <ctime>

#include "proxy/config/admin_token.h"
#include "proxy/http/error_page.h"
#include "proxy/http/form.h"
#include "proxy/runtime/login_page.h"
#include "proxy/session/session.h"
#include "proxy/session/session_context.h"

namespace mintgate::proxy {
namespace {

constexpr std::size_t kMaxFormBytes = 8 << 10;
constexpr char kCsrfCookie[] = "mintgate_login";
// The device that signed in: only it sees who is signed in and may sign out.
constexpr char kSessionCookie[] = "mintgate_session";

std::int64_t EpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Constant-time comparison of two tokens of the same length.
bool SameToken(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

std::string PathOf(const std::string& target) { return target.substr(0, target.find('?')); }

}  // namespace

bool Session::IsPortalHost(const std::string& host) const {
  const Runtime& rt = runtime();
  return rt.portal && rt.portal->enabled() && !rt.config.portal.host.empty() &&
         strcasecmp(host.c_str(), rt.config.portal.host.c_str()) == 0;
}

void Session::StartPortalTls() {
  const Runtime& rt = runtime();
  const std::string& profile =
      rt.config.auth.login_ca.empty() ? rt.config.inspection.default_ca : rt.config.auth.login_ca;
  const tls::CertAuthority* signer = rt.mint ? rt.mint->Find(profile) : nullptr;
  if (signer == nullptr || signer->not_after() <= std::time(nullptr)) {
    Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable,
          "no usable CA profile \"" + profile + "\" to serve the portal over HTTPS", 0});
    return;
  }
  profile_ = profile;
  record_.ca = profile;
  tls_host_ = rt.config.portal.host;
  decrypting_ = true;
  ReleaseUpstream(false);
  RequestLeaf();
}

void Session::AnswerPortal(const PortalResponse& response) {
  record_.action = "portal";
  record_.status = response.status;
  keep_client_alive_ = false;
  Write(Leg::kClient, SerializePortalResponse(response, request_.head().method == "HEAD", true));
  LogExchange();
  CloseWhenFlushed();
}

void Session::ShowLoginPage(int status, const std::string& message, bool signed_out,
                            const std::string& set_session) {
  const Runtime& rt = runtime();
  LoginPage page;
  page.status = status;
  page.portal_host = rt.config.portal.host;
  page.message = message;
  page.signed_out = signed_out;
  page.return_url = SafeReturnUrl(QueryValue(request_.head().target, "return"));
  const std::int64_t now = EpochMs();
  // Just signed in: the cookie is being set by this very answer.
  const std::string session = !set_session.empty()
                                  ? set_session.substr(std::strlen(kSessionCookie) + 1, 64)
                                  : CookieValue(request_.head().headers, kSessionCookie);
  if (rt.auth && !signed_out && rt.auth->logins().Owns(client_address_, session, now)) {
    if (auto user = rt.auth->logins().Find(client_address_, now)) {
      page.signed_in_user = *user;
      page.signed_in_until_ms = rt.auth->logins().Until(client_address_, now).value_or(0);
    }
  }
  std::string csrf = CookieValue(request_.head().headers, kCsrfCookie);
  if (csrf.size() != 64) csrf = GenerateAdminToken();
  page.csrf = csrf;
  PortalResponse response = RenderLoginPage(page);
  response.headers.emplace_back("Set-Cookie", std::string(kCsrfCookie) + "=" + csrf +
                                                  "; Path=/; Secure; HttpOnly; SameSite=Strict");
  if (!set_session.empty()) response.headers.emplace_back("Set-Cookie", set_session);
  if (signed_out) {
    response.headers.emplace_back(
        "Set-Cookie",
        std::string(kSessionCookie) + "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
  }
  AnswerPortal(response);
}

void Session::ServePortalTls() {
  const HttpHead& head = request_.head();
  const std::string path = PathOf(head.target);
  record_.url = "https://" + tls_host_ + head.target;
  record_.action = "portal";
  record_.ca = profile_;
  const bool login_path = path == "/login" || path == "/logout";
  if (!login_path) {
    AnswerPortal(runtime().portal->Handle(head.method, head.target, local_address_,
                                          balancer_ip_ ? local_port_ : 0));
    return;
  }
  if (!runtime().auth) {
    ShowLoginPage(404, "Sign-in is not configured on this gateway.", false);
    return;
  }
  if (head.method == "GET" || head.method == "HEAD") {
    ShowLoginPage(200, "", false);  // /logout too: signing out takes the form's POST
    return;
  }
  if (head.method != "POST") {
    ShowLoginPage(405, "Use the form.", false);
    return;
  }
  if (head.chunked || !head.content_length || *head.content_length > kMaxFormBytes) {
    Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTooLarge,
          "the sign-in form must be sent with a Content-Length of at most 8 KiB", 413});
    return;
  }
  // The form arrives through ProcessClientInput (often with the head, in the same read).
  Enter(Phase::kPortalBody, timeouts().request_head_ms);
}

// ProcessClientInput hands the form over once the parser has it whole.
void Session::OnPortalBodyBytes(const char* data, std::size_t size) {
  BufferClientBytes(data, size);
}

void Session::PortalBodyTimeout() {
  Fail({net::ErrorSource::kDownstream, net::ErrorKind::kTimeout,
        "the sign-in form did not arrive within " + Seconds(timeouts().request_head_ms), 408});
}

void Session::HandleLoginForm() {
  timer_->Stop();
  const HttpHead& head = request_.head();
  const std::string path = PathOf(head.target);
  const std::map<std::string, std::string> form = ParseForm(request_.TakeBody());
  auto field = [&](const char* name) {
    auto it = form.find(name);
    return it == form.end() ? std::string() : it->second;
  };
  // CSRF: the form's token must be the one in its cookie (which only this origin can set),
  // and a browser that says where the form came from must say this portal.
  const std::string cookie = CookieValue(head.headers, kCsrfCookie);
  const HttpHeader* origin = head.Find("Origin");
  const HttpHeader* site = head.Find("Sec-Fetch-Site");
  const bool same_origin =
      (origin == nullptr || origin->value == "https://" + tls_host_) &&
      (site == nullptr || site->value == "same-origin" || site->value == "none");
  if (!SameToken(cookie, field("csrf")) || !same_origin) {
    record_.auth = "csrf";
    ShowLoginPage(403, "The form expired or came from another site. Please sign in again.", false);
    return;
  }
  auth::Authenticator& authenticator = *runtime().auth;
  if (path == "/logout") {
    const std::string session = CookieValue(head.headers, kSessionCookie);
    if (!authenticator.logins().Owns(client_address_, session, EpochMs())) {
      ShowLoginPage(403, "This device is not signed in.", false);
      return;
    }
    authenticator.logins().Unbind(client_address_);
    record_.auth = "logout";
    ShowLoginPage(200, "", true);
    return;
  }
  const std::string user = field("user");
  const std::string password = field("password");
  if (user.empty() || password.empty() || user.size() > 256) {
    ShowLoginPage(400, "Enter your user name and password.", false);
    return;
  }
  const std::int64_t now = EpochMs();
  const std::int64_t wait =
      std::max(authenticator.throttle().WaitMs("client " + client_address_, now),
               authenticator.throttle().WaitMs("user " + user, now));
  if (wait > 0) {
    record_.auth = "throttled";
    record_.note = "sign-in throttled after repeated failures";
    ShowLoginPage(
        429,
        "Too many failed sign-ins. Try again in " + std::to_string((wait + 999) / 1000) + " s.",
        false);
    return;
  }
  Enter(Phase::kAuthenticate, timeouts().auth_ms);
  const std::uint64_t seq = ++auth_seq_;
  SessionContext* context = &context_;
  const std::uint64_t id = id_;
  const std::string return_url = SafeReturnUrl(field("return"));
  authenticator.CheckPassword(
      user, password, [context](std::function<void()> fn) { context->Post(std::move(fn)); },
      [context, id, seq, user, return_url](const auth::AuthResult& result) {
        context->Defer([context, id, seq, user, return_url, result] {
          if (Session* s = context->FindSession(id)) {
            s->OnLoginChecked(result, seq, user, return_url);
          }
        });
      });
}

void Session::OnLoginChecked(const auth::AuthResult& result, std::uint64_t seq,
                             const std::string& user, const std::string& return_url) {
  if (phase_ != Phase::kAuthenticate || seq != auth_seq_) return;
  timer_->Stop();
  auth::Authenticator& authenticator = *runtime().auth;
  const std::int64_t now = EpochMs();
  if (!result.ok()) {
    record_.auth = "login_failed";
    record_.user = user;
    record_.note = result.error;
    if (result.status == auth::AuthResult::Status::kFailed) {
      authenticator.throttle().Failed("client " + client_address_, now);
      authenticator.throttle().Failed("user " + user, now);
      ShowLoginPage(403, "Wrong user name or password.", false);
    } else {
      ShowLoginPage(503, "The gateway cannot check passwords right now. Try again later.", false);
    }
    return;
  }
  authenticator.throttle().Succeeded("client " + client_address_);
  authenticator.throttle().Succeeded("user " + user);
  const std::int64_t ttl_ms = static_cast<std::int64_t>(runtime().config.auth.login_ttl_ms);
  const std::string session = GenerateAdminToken();
  authenticator.logins().Bind(client_address_, result.identity.user, now + ttl_ms, session);
  const std::string session_cookie =
      std::string(kSessionCookie) + "=" + session +
      "; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(ttl_ms / 1000);
  record_.auth = "login";
  record_.user = result.identity.user;
  record_.groups = result.identity.groups;
  if (return_url.empty()) {
    ShowLoginPage(200, "", false, session_cookie);
    return;
  }
  PortalResponse response;
  response.status = 303;
  response.content_type = "text/html; charset=utf-8";
  response.headers.emplace_back("Location", return_url);
  response.headers.emplace_back("Cache-Control", "no-store");
  response.headers.emplace_back("Set-Cookie", session_cookie);
  response.body = "<!doctype html><title>Signed in</title><p>Signed in. <a href=\"" +
                  EscapeHtml(return_url) + "\">Continue</a>\n";
  AnswerPortal(response);
}

}  // namespace mintgate::proxy
