#include "rules/action.h"

namespace mintgate::rules {

std::string_view ToString(Action action) {
  switch (action) {
    case Action::kDecrypt:
      return "decrypt";
    case Action::kTunnel:
      return "tunnel";
    case Action::kBlock:
      return "block";
  }
  return "unknown";
}

std::optional<Action> ParseAction(std::string_view text) {
  if (text == "decrypt") return Action::kDecrypt;
  if (text == "tunnel") return Action::kTunnel;
  if (text == "block") return Action::kBlock;
  return std::nullopt;
}

}  // namespace mintgate::rules
