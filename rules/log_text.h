// Client-supplied text (an SNI, a host, a header) on its way into a log line: printable ASCII
// stays, everything else becomes \xNN, so a client cannot forge log lines, move a terminal's
// cursor or hide text with control bytes, and long input is cut. Standard library only, so
// every layer uses the same one.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mintgate::rules {

std::string EscapeForLog(std::string_view text, std::size_t max = 256);

}  // namespace mintgate::rules
