// Reads a TOML configuration into Config, reporting every problem with its file, line and
// column (unknown keys with a "did you mean", wrong types, bad values, unreadable category
// files). Cross-references between sections (a rule naming an unknown CA profile, successor
// chains) are checked by the modules that own them: rules::RuleSet and the CA loader.
#pragma once

#include <string>

#include "proxy/config/config.h"

namespace mintgate::proxy {

class ConfigLoader {
 public:
  // Reads and parses `path`. Relative paths inside are relative to its folder.
  static ConfigLoadResult LoadFile(const std::string& path);

  // Parses `text` as if read from `path` (used by tests and for the embedded default).
  static ConfigLoadResult Parse(const std::string& text, const std::string& path);
};

}  // namespace mintgate::proxy
