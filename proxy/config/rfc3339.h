// RFC 3339 instants on the command line ("2026-06-30T00:00:00+09:00", "...Z").
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "rules/rule.h"

namespace mintgate::proxy {

// Date, 'T' (or 't' or a space), time with optional fraction (ignored), and 'Z' or ±hh:mm.
std::optional<rules::Instant> ParseRfc3339(std::string_view text);

// The --at option of `rules test` and `ca audit`: now when empty, else the instant; nullopt
// after printing why the text is not one.
std::optional<rules::Instant> ParseAtOption(const std::string& text, std::ostream& err);

}  // namespace mintgate::proxy
