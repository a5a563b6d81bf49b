// JSON string literals written by hand where a JSON library's DOM would cost more than the
// line it builds (the access log, once per request; the load generator's summary). Standard
// library only, so bench/loadgen compiles it without the rest of proxy/.
#pragma once

#include <string>
#include <string_view>

namespace mintgate::proxy {

// Appends `s` as a JSON string: quotes, backslashes and control characters escaped; bytes that
// are not valid UTF-8 (URLs are network input) replaced by U+FFFD, one per maximal subpart.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace mintgate::proxy
