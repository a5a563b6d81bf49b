// Form, query and cookie text as browsers send it: percent-decoding, application/
// x-www-form-urlencoded bodies, a query parameter, a cookie, and percent-encoding. One home
// for the console, the portal and the portal's sign-in.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http_codec.h"

namespace mintgate::proxy {

// %XX decoded; an invalid % sequence is kept as it is; '+' is a space when plus_is_space.
std::string PercentDecode(std::string_view text, bool plus_is_space = false);
// RFC 3986: everything but ALPHA, DIGIT and - . _ ~ as %XX (upper case).
std::string PercentEncode(std::string_view text);
// application/x-www-form-urlencoded; a repeated name keeps its first value.
std::map<std::string, std::string> ParseForm(std::string_view body);
// The decoded value of `name` in the query of an origin-form target ("/p?a=1&b=2"); "" when
// absent.
std::string QueryValue(std::string_view target, std::string_view name);
// The value of cookie `name` in the request's Cookie headers; "" when absent.
std::string CookieValue(const std::vector<HttpHeader>& headers, std::string_view name);

}  // namespace mintgate::proxy
