// Private to proxy/auth: base64 (RFC 4648, padded) for credentials and tokens.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mintgate::proxy::auth {

// Strict: only the alphabet and final padding, a multiple of 4 characters, at most
// `max_bytes` decoded; nullopt for anything else.
std::optional<std::string> DecodeBase64(std::string_view in, std::size_t max_bytes);
std::string EncodeBase64(const void* data, std::size_t size);

}  // namespace mintgate::proxy::auth
