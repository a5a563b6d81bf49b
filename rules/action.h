// What a decryption rule does with a connection.
#pragma once

#include <optional>
#include <string_view>

namespace mintgate::rules {

enum class Action { kDecrypt, kTunnel, kBlock };

std::string_view ToString(Action action);
std::optional<Action> ParseAction(std::string_view text);  // "decrypt" | "tunnel" | "block"

}  // namespace mintgate::rules
