// RFC 3339 instants on the command line ("2026-06-30T00:00:00+09:00", "...Z").
#pragma once

#include <optional>
#include <string_view>

#include "rules/rule.h"

namespace mintgate::proxy {

// Date, 'T' (or 't' or a space), time with optional fraction (ignored), and 'Z' or ±hh:mm.
std::optional<rules::Instant> ParseRfc3339(std::string_view text);

}  // namespace mintgate::proxy
