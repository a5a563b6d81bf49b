#include "proxy/runtime/login_page.h"

#include <ctime>

#include "proxy/http/error_page.h"

namespace mintgate::proxy {
namespace {

std::string UtcMinute(std::int64_t epoch_ms) {
  const std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  char buf[64];
  if (gmtime_r(&t, &tm) == nullptr ||
      std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm) == 0) {
    return "";
  }
  return buf;
}

constexpr char kStyle[] =
    "body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2129}"
    "main{max-width:26rem;margin:3rem auto;padding:1.5rem;background:#fff;border-radius:8px;"
    "box-shadow:0 1px 3px rgba(0,0,0,.15)}"
    "h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .3rem}"
    "input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;"
    "font-size:1rem;border:1px solid #9aa1ab;border-radius:4px}"
    "button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;"
    "background:#1f5fbf;color:#fff;cursor:pointer}"
    ".message{padding:.6rem;border-radius:4px;background:#fdecea;color:#8a1c12;margin-bottom:1rem}"
    ".note{color:#555;font-size:.9rem}"
    "@media (max-width:480px){main{margin:0;border-radius:0;min-height:100vh}}";

}  // namespace

std::string SafeReturnUrl(std::string_view url) {
  if (url.size() > 2048) return "";
  const bool http = url.rfind("http://", 0) == 0 && url.size() > 7;
  const bool https = url.rfind("https://", 0) == 0 && url.size() > 8;
  if (!http && !https) return "";
  for (unsigned char c : url) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '\\' || c == '<' || c == '>') {
      return "";
    }
  }
  const std::string_view rest = url.substr(https ? 8 : 7);
  if (rest.front() == '/') return "";  // "https:///x" has no host
  return std::string(url);
}

PortalResponse RenderLoginPage(const LoginPage& page) {
  PortalResponse r;
  r.status = page.status;
  r.content_type = "text/html; charset=utf-8";
  r.headers = {
      {"Cache-Control", "no-store"},
      {"Content-Security-Policy",
       "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors "
       "'none'; base-uri 'none'"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
  };
  std::string h =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>Sign in to the web gateway</title><style>";
  h += kStyle;
  h += "</style></head><body><main>\n<h1>Sign in to the web gateway</h1>\n";
  if (!page.message.empty()) {
    h += "<p class=\"message\" role=\"alert\">" + EscapeHtml(page.message) + "</p>\n";
  }
  const std::string csrf = EscapeHtml(page.csrf);
  if (!page.signed_in_user.empty()) {
    h +=
        "<p id=\"signed-in\">Signed in as <strong>" + EscapeHtml(page.signed_in_user) + "</strong>";
    if (const std::string until =
            page.signed_in_until_ms > 0 ? UtcMinute(page.signed_in_until_ms) : std::string();
        !until.empty()) {
      h += " until " + until;
    }
    h += ".</p>\n";
    if (!page.return_url.empty()) {
      h += "<p><a href=\"" + EscapeHtml(page.return_url) + "\">Continue</a></p>\n";
    }
    h += "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"" +
         csrf + "\"><button type=\"submit\">Sign out</button></form>\n";
  } else {
    if (page.signed_out) h += "<p id=\"signed-out\">You are signed out.</p>\n";
    h += "<form method=\"post\" action=\"/login\">\n"
         "<label for=\"user\">User name</label>"
         "<input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" required "
         "autofocus>\n"
         "<label for=\"password\">Password</label>"
         "<input type=\"password\" id=\"password\" name=\"password\" "
         "autocomplete=\"current-password\" required>\n"
         "<input type=\"hidden\" name=\"csrf\" value=\"" +
         csrf + "\">\n<input type=\"hidden\" name=\"return\" value=\"" +
         EscapeHtml(page.return_url) +
         "\">\n<button type=\"submit\">Sign in</button>\n</form>\n"
         "<p class=\"note\">After you sign in, the gateway identifies this device by its "
         "network address, for the time your administrator set.</p>\n";
  }
  h += "<p class=\"note\">" + EscapeHtml(page.portal_host) + "</p>\n</main></body></html>\n";
  r.body = std::move(h);
  return r;
}

}  // namespace mintgate::proxy
