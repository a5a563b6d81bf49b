#include "proxy/runtime/login_page.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace mintgate::proxy {
namespace {

constexpr char kEvil[] = "\"><script>alert(1)</script>";

std::string HeaderOf(const PortalResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

bool Has(const std::string& body, const std::string& part) {
  return body.find(part) != std::string::npos;
}

LoginPage SignedOutPage() {
  LoginPage page;
  page.portal_host = "mintgate.portal";
  page.return_url = "https://example.com/a?b=1&c=2";
  page.csrf = "tok123";
  return page;
}

TEST(LoginPage, SignInForm) {
  const PortalResponse r = RenderLoginPage(SignedOutPage());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  const std::string& b = r.body;
  EXPECT_EQ(b.rfind("<!doctype html>", 0), 0u);
  EXPECT_TRUE(Has(b, "<html lang=\"en\">"));
  EXPECT_TRUE(Has(b, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
  EXPECT_TRUE(Has(b, "<title>Sign in to the web gateway</title>"));
  EXPECT_TRUE(Has(b, "<form method=\"post\" action=\"/login\">"));
  EXPECT_TRUE(Has(b, "name=\"user\" autocomplete=\"username\" required"));
  EXPECT_TRUE(Has(b,
                  "<input type=\"password\" id=\"password\" name=\"password\" "
                  "autocomplete=\"current-password\" required>"));
  EXPECT_TRUE(Has(b, "<input type=\"hidden\" name=\"csrf\" value=\"tok123\">"));
  EXPECT_TRUE(Has(b,
                  "<input type=\"hidden\" name=\"return\" "
                  "value=\"https://example.com/a?b=1&amp;c=2\">"));
  EXPECT_TRUE(Has(b, ">Sign in</button>"));
  EXPECT_TRUE(Has(b, "network address"));
  EXPECT_TRUE(Has(b, "administrator"));
  EXPECT_FALSE(Has(b, "action=\"/logout\""));
  EXPECT_FALSE(Has(b, "Signed in as"));
  EXPECT_FALSE(Has(b, "signed out"));
  EXPECT_FALSE(Has(b, "class=\"message\""));
}

// An attribute like " onclick=" (white space, "on", letters, optional spaces, "=").
bool HasEventHandler(const std::string& html) {
  for (std::size_t i = 0; i + 3 < html.size(); ++i) {
    if (!std::isspace(static_cast<unsigned char>(html[i])) ||
        std::tolower(static_cast<unsigned char>(html[i + 1])) != 'o' ||
        std::tolower(static_cast<unsigned char>(html[i + 2])) != 'n') {
      continue;
    }
    std::size_t j = i + 3;
    while (j < html.size() && std::isalpha(static_cast<unsigned char>(html[j]))) ++j;
    if (j == i + 3) continue;
    while (j < html.size() && std::isspace(static_cast<unsigned char>(html[j]))) ++j;
    if (j < html.size() && html[j] == '=') return true;
  }
  return false;
}

TEST(LoginPage, NoScriptNoExternalAssetsOneStyle) {
  for (bool signed_in : {false, true}) {
    LoginPage page = SignedOutPage();
    if (signed_in) page.signed_in_user = "alice";
    const std::string b = RenderLoginPage(page).body;
    EXPECT_FALSE(Has(b, "<script")) << signed_in;
    EXPECT_FALSE(Has(b, "javascript:")) << signed_in;
    EXPECT_FALSE(HasEventHandler(b)) << signed_in;  // no onclick= and the like
    EXPECT_FALSE(Has(b, "<link")) << signed_in;
    EXPECT_FALSE(Has(b, "<img")) << signed_in;
    EXPECT_FALSE(Has(b, "src=")) << signed_in;
    EXPECT_FALSE(Has(b, "url(")) << signed_in;
    EXPECT_FALSE(Has(b, "@import")) << signed_in;
    const std::size_t style = b.find("<style>");
    ASSERT_NE(style, std::string::npos);
    EXPECT_EQ(b.find("<style", style + 1), std::string::npos);
    EXPECT_FALSE(Has(b, "style=\"")) << signed_in;
  }
}

TEST(LoginPage, MessageAndSignedOut) {
  LoginPage page = SignedOutPage();
  page.status = 403;
  page.message = "Wrong user name or password.";
  page.signed_out = true;
  const PortalResponse r = RenderLoginPage(page);
  EXPECT_EQ(r.status, 403);
  EXPECT_TRUE(Has(r.body, "<p class=\"message\" role=\"alert\">Wrong user name or password.</p>"));
  EXPECT_TRUE(Has(r.body, "You are signed out."));
  // The message comes before the form.
  EXPECT_LT(r.body.find("class=\"message\""), r.body.find("<form"));
}

TEST(LoginPage, SignedIn) {
  LoginPage page = SignedOutPage();
  page.signed_in_user = "alice";
  page.signed_in_until_ms = 1796493600000;  // 2026-12-05 18:00:00 UTC
  const std::string b = RenderLoginPage(page).body;
  EXPECT_TRUE(Has(b, "Signed in as <strong>alice</strong> until 2026-12-05 18:00 UTC"));
  EXPECT_TRUE(Has(b, "<a href=\"https://example.com/a?b=1&amp;c=2\">Continue</a>"));
  EXPECT_TRUE(Has(b, "<form method=\"post\" action=\"/logout\">"));
  EXPECT_TRUE(Has(b, "<input type=\"hidden\" name=\"csrf\" value=\"tok123\">"));
  EXPECT_TRUE(Has(b, ">Sign out</button>"));
  EXPECT_FALSE(Has(b, "action=\"/login\""));
  EXPECT_FALSE(Has(b, "name=\"password\""));

  page.return_url.clear();
  page.signed_in_until_ms = 1796493659999;  // seconds and milliseconds are not shown
  const std::string without = RenderLoginPage(page).body;
  EXPECT_FALSE(Has(without, "Continue"));
  EXPECT_TRUE(Has(without, "until 2026-12-05 18:00 UTC"));
}

TEST(LoginPage, EscapesEverythingUserControlled) {
  LoginPage page;
  page.portal_host = kEvil;
  page.return_url = kEvil;
  page.csrf = kEvil;
  page.message = kEvil;
  for (bool signed_in : {false, true}) {
    page.signed_in_user = signed_in ? kEvil : "";
    const std::string b = RenderLoginPage(page).body;
    EXPECT_FALSE(Has(b, "<script")) << signed_in;
    EXPECT_FALSE(Has(b, kEvil)) << signed_in;
    EXPECT_FALSE(Has(b, "\"><script")) << signed_in;
    EXPECT_TRUE(Has(b, "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;")) << signed_in;
  }
  page.signed_in_user = "";
  page.message = "line\r\nSet-Cookie: x=1";
  EXPECT_FALSE(Has(RenderLoginPage(page).body, "\r\n"));
}

TEST(LoginPage, SecurityHeaders) {
  for (bool signed_in : {false, true}) {
    LoginPage page = SignedOutPage();
    if (signed_in) page.signed_in_user = "alice";
    const PortalResponse r = RenderLoginPage(page);
    EXPECT_EQ(HeaderOf(r, "Cache-Control"), "no-store");
    EXPECT_EQ(HeaderOf(r, "Content-Security-Policy"),
              "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'");
    EXPECT_EQ(HeaderOf(r, "X-Frame-Options"), "DENY");
    EXPECT_EQ(HeaderOf(r, "Referrer-Policy"), "no-referrer");
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  }
}

TEST(SafeReturnUrl, AcceptsHttpAndHttps) {
  for (const char* ok :
       {"http://example.com", "https://example.com/", "https://example.com:8443/a/b?c=d&e=%20f#g",
        "http://[2001:db8::1]/x", "https://user@example.com/", "https://example.com/~a;b=c"}) {
    EXPECT_EQ(SafeReturnUrl(ok), ok) << ok;
  }
  const std::string longest = "https://example.com/" + std::string(2048 - 20, 'a');
  ASSERT_EQ(longest.size(), 2048u);
  EXPECT_EQ(SafeReturnUrl(longest), longest);
}

TEST(SafeReturnUrl, RefusesEverythingElse) {
  for (const char* bad : {
           "",
           "javascript:alert(1)",
           "JavaScript:alert(1)",
           "data:text/html,<script>alert(1)</script>",
           "data:text/html;base64,PHNjcmlwdD4=",
           "//evil.example/",
           "/local/path",
           "ftp://example.com/",
           "http:/example.com",
           "http://",
           "https://",
           "https:///evil.example",
           " https://example.com/",
           "https://example.com/ a",
           "https://example.com/\r\nSet-Cookie: x=1",
           "https://example.com/\n",
           "https://example.com/\t",
           "https://example.com/\"onmouseover=\"x",
           "https://example.com/'x",
           "https://example.com/<x>",
           "https://example.com\\@evil.example/",
           "https://example.com/\x7f",
       }) {
    EXPECT_EQ(SafeReturnUrl(bad), "") << bad;
  }
  EXPECT_EQ(SafeReturnUrl(std::string_view("https://example.com/\0x", 21)), "");
  EXPECT_EQ(SafeReturnUrl("https://example.com/" + std::string(2048 - 19, 'a')), "");
}

}  // namespace
}  // namespace mintgate::proxy
