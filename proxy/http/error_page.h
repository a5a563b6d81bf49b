// The small HTML answers the gateway gives when it refuses or fails a request (SPEC §5).
#pragma once

#include <string>
#include <string_view>

namespace mintgate::proxy {

std::string_view StatusText(int status);

// Text for HTML element content and quoted attribute values: & < > " ' escaped, control bytes
// (network input may carry them) replaced by '?'.
std::string EscapeHtml(std::string_view text);

// A complete HTTP/1.1 response: status line, Content-Type, Content-Length, "Connection: close"
// when `close`, and an HTML page that names `reason` (escaped).
std::string ErrorResponse(int status, std::string_view reason, bool close = true);

}  // namespace mintgate::proxy
