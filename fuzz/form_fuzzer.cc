// Fuzzes the form, query and cookie text the portal's sign-in and the console take from the
// network (proxy/http/form.h): an application/x-www-form-urlencoded body, a request target's
// query, Cookie headers. Beyond "no crash": percent-encoding round-trips every byte string,
// and a form's values decode from what was sent (never longer than it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/form.h"

using namespace mintgate::proxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (PercentDecode(PercentEncode(text)) != text) std::abort();
  if (PercentDecode(text, true).size() > text.size()) std::abort();

  std::size_t total = 0;
  for (const auto& [name, value] : ParseForm(text)) total += name.size() + value.size();
  if (total > text.size()) std::abort();

  // The input as a target ("/login?" + input), and split at the first newline into a cookie
  // name and Cookie header values.
  (void)QueryValue("/login?" + std::string(text), "return");
  (void)QueryValue(text, "csrf");
  const std::size_t newline = text.find('\n');
  const std::string name(text.substr(0, newline == std::string_view::npos ? 0 : newline));
  std::vector<HttpHeader> headers;
  std::string_view rest = newline == std::string_view::npos ? text : text.substr(newline + 1);
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    headers.push_back({"Cookie", std::string(rest.substr(0, end))});
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  }
  const std::string value = CookieValue(headers, name.empty() ? "mintgate_login" : name);
  if (value.size() > text.size()) std::abort();
  return 0;
}
