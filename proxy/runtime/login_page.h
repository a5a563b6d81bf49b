// The portal's sign-in page for proxy users (decrypt-to-login): HTML only, no JavaScript, no
// external assets; the session serves it over HTTPS and handles the form.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/runtime/portal.h"

namespace mintgate::proxy {

struct LoginPage {
  int status = 200;
  std::string portal_host;              // e.g. "mintgate.portal"
  std::string return_url;               // where a successful sign-in goes ("" = none)
  std::string csrf;                     // the form's token (the caller sets it as a cookie too)
  std::string message;                  // an error or notice above the form ("" = none)
  std::string signed_in_user;           // "" = nobody signed in from this address
  std::int64_t signed_in_until_ms = 0;  // when that sign-in ends (epoch ms)
  bool signed_out = false;              // show "You are signed out."
};

PortalResponse RenderLoginPage(const LoginPage& page);

// A URL a successful sign-in may redirect to: http:// or https://, at most 2048 bytes, no
// control characters, spaces, quotes, backslashes or angle brackets; else "".
std::string SafeReturnUrl(std::string_view url);

}  // namespace mintgate::proxy
